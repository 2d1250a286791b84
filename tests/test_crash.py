"""Crashes during delivery: workers SIGKILLed at random moments, Redis restarted, and still every
nudge is sent once or accounted for (campaigns.recovery, docs/adr/0005-delivery-crash-recovery.md)."""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select

from bench.fixtures import create_accounts, enroll_all
from campaigns import scheduler
from campaigns.delivery import begin_attempt, claim
from campaigns.guards import Caps
from campaigns.jobs import deliver_batch
from campaigns.mail import BulkEmail
from campaigns.models import Message, MessageStatus
from campaigns.recovery import STALE_QUEUED, STALE_SENDING
from campaigns.scheduler import run_tick
from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from engine import queue as job_queue
from engine.db import Database, utcnow
from engine.playbook import import_playbook, resolve_playbook
from engine.queue import JobRunner
from tests.conftest import SECRET, TEST_DATABASE_URL, TEST_REDIS_URL
from tests.test_delivery import enrol

Worker = Callable[[], bool]
NUDGES = 10_000
CONTACTS_PER_ACCOUNT = 4
SEND_LATENCY_S = 0.1  # the sink records each request, then answers this much later (a slow provider)
FINAL = {MessageStatus.SENT, MessageStatus.UNKNOWN}


def statuses_of(database: Database, ids: list[int]) -> list[str]:
    with database.session() as session:
        return sorted(s.value for s in session.scalars(select(Message.status).where(Message.id.in_(ids))))


def later(moment: dt.datetime, stale: dt.timedelta) -> dt.datetime:
    return moment + stale + dt.timedelta(seconds=1)


def claimed_batch(database: Database) -> tuple[list[int], list[Message], dt.datetime]:
    """A tick's first batch claimed by a worker at `now`: its message ids, the messages, and `now`."""
    enrol(database)
    batch = tick_once(database).batches[0]
    now = utcnow()
    with database.transaction() as session:
        claim(session, batch, now)
    with database.session() as session:
        group = list(session.scalars(select(Message).where(Message.id.in_(batch))))
    return batch, group, now


def test_a_claim_the_worker_died_holding_is_sent_once_by_the_next_tick(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    enrol(database)
    batch = tick_once(database).batches[0]
    with database.transaction() as session:
        claim(session, batch, utcnow())  # the worker is SIGKILLed here, before its request
    with database.transaction() as session:
        result = run_tick(session, now=later(utcnow(), STALE_SENDING))
    assert (result.messages_recovered, result.messages_unknown) == (2, 0)
    run_worker()
    assert len(sink.messages()) == 2
    assert statuses_of(database, batch) == ["sent", "sent"]


def test_an_attempt_the_worker_died_during_becomes_unknown_and_is_never_resent(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    batch, group, now = claimed_batch(database)
    begin_attempt(database, deliver_email_stub(), group, now)  # ...and SIGKILLed during the request
    with database.transaction() as session:
        result = run_tick(session, now=later(utcnow(), STALE_SENDING))
    assert (result.messages_recovered, result.messages_unknown) == (0, 2)
    run_worker()
    deliver_batch(batch)
    assert sink.messages() == []
    assert statuses_of(database, batch) == ["unknown", "unknown"]


def test_a_queued_message_whose_job_was_lost_gets_a_new_job(
    recruiting: object, database: Database, sink: SendGridSink, redis_conn: Redis, run_worker: Worker
) -> None:
    enrol(database)
    tick_once(database)
    redis_conn.flushdb()  # Redis lost its data
    with database.transaction() as session:
        assert run_tick(session, now=utcnow()).messages_recovered == 0  # not before the retry backoff
    with database.transaction() as session:
        assert run_tick(session, now=later(utcnow(), STALE_QUEUED)).messages_recovered == 2
    run_worker()
    assert len(sink.messages()) == 2


def test_a_recovered_claim_is_not_sent_by_the_slow_worker_that_held_it(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    batch, group, now = claimed_batch(database)
    with database.transaction() as session:
        run_tick(session, now=later(utcnow(), STALE_SENDING))  # the slow worker is presumed dead
    run_worker()
    email, kept = begin_attempt(database, deliver_email_stub(), group, now)  # it wakes up
    assert kept == [] and email.recipients == []
    assert len(sink.messages()) == 2


def deliver_email_stub() -> BulkEmail:
    return BulkEmail("Northstar <hello@northstar.test>", "<p>x</p>", "x", [])


@pytest.mark.slow
def test_a_rate_limited_batch_is_retried_by_the_worker_after_its_backoff(
    recruiting: object, database: Database, sink: SendGridSink, redis_conn: Redis, tmp_path: Path
) -> None:
    enrol(database)
    tick_once(database)
    sink.fail_next(429)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL,
        "NORTHSTAR_REDIS_URL": TEST_REDIS_URL,
        "NORTHSTAR_SECRET_KEY": SECRET,
        "NORTHSTAR_MAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": "SG.retry-test",
        "NORTHSTAR_SENDGRID_API_HOST": sink.url,
    }
    workers = Workers(env, tmp_path)
    workers.start()
    try:
        messages = sink.wait_for(2, timeout=60)  # the first retry waits 10 s, then RQ's scheduler
    finally:
        workers.stop()
    assert sorted(m.to for m in messages) == ["johnny@acme.example", "sofia@acme.example"]
    assert [r.status for r in sink.rejected] == [429]


# -- the crash run ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisServer:
    """A private redis-server (the shared one on 6379 is never restarted): AOF on, fsync every
    second, in a temp dir, so a restart keeps what was acknowledged more than a second before."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)  # not SHUTDOWN: the last second may be lost
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("the crash test starts its own redis-server (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Workers:
    """`northstar worker` processes, each in its own process group so that a SIGKILL takes the
    worker and any work horse together, as losing a container does. They alternate between the
    default (jobs in the worker's process, ADR 0012) and `--fork` (a work horse per job, which
    alone can lose just its horse, as to the OOM killer)."""

    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    forking: set[int] = field(default_factory=set)  # pids of the `--fork` ones

    def start(self) -> subprocess.Popen[bytes]:
        fork = ["--fork"] if len(self.processes) % 2 else []
        with (self.logs / f"worker-{len(self.processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "web.cli", "worker", *fork],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        if fork:
            self.forking.add(process.pid)
        return process

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def supervise(self, count: int) -> int:
        """Restart exited workers until `count` run, as systemd or Kubernetes would; how many."""
        missing = max(0, count - len(self.alive()))
        for _ in range(missing):
            self.start()
        return missing

    def busy(self) -> list[subprocess.Popen[bytes]]:
        """Workers mid-job: a forking one with a work horse; one that runs jobs itself, always
        (with a queue of 100 jobs it is rarely idle, and RQ does not say so from outside)."""
        return [p for p in self.alive() if p.pid not in self.forking or _children(p.pid)]

    def kill(self, process: subprocess.Popen[bytes], *, horse_only: bool) -> str:
        horses = _children(process.pid)
        if horse_only and horses:  # the OOM killer takes the work horse, the worker survives
            os.kill(horses[0], signal.SIGKILL)
            return "work horse"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        return "worker + horse" if horses else "worker (mid-job if it had one)"

    def stop(self) -> None:
        for process in self.alive():
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def one_step_campaign(database: Database) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["campaigns"].append(
        {
            "key": "crash_welcome",
            "name": "Crash test welcome",
            "caps": False,
            "steps": [
                {
                    "key": "welcome",
                    "kind": "email",
                    "template": "welcome_plan",
                    "to": ["champion", "exec_sponsor", "power_user", "other"],
                }
            ],
        }
    )
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump(document))


def counts_by_status(database: Database) -> Counter[str]:
    with database.session() as session:
        rows = session.execute(select(Message.status, func.count()).group_by(Message.status))
        return Counter({status.value: int(n) for status, n in rows})


def wait_quiet(database: Database, queue: Queue, workers: Workers, timeout: float) -> Counter[str]:
    """Until the queue is empty and the ledger stops moving (what is left needs recovery)."""
    deadline = time.monotonic() + timeout
    last: Counter[str] | None = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        workers.supervise(2)
        now_counts = counts_by_status(database)
        pending = now_counts["queued"] + now_counts["sending"]
        if now_counts != last:
            last, stable_since = now_counts, time.monotonic()
        elif queue.count == 0 and (pending == 0 or time.monotonic() - stable_since > 3.0):
            return now_counts
        time.sleep(0.25)
    raise AssertionError(f"delivery did not settle within {timeout}s: {last}")


@pytest.mark.slow
def test_sigkilled_workers_and_a_redis_restart_lose_and_duplicate_nothing(
    recruiting: object,
    database: Database,
    sink: SendGridSink,
    private_redis: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    print(f"crash test seed {seed} (CRASH_SEED={seed} to replay)")
    one_step_campaign(database)
    now = utcnow()
    accounts = create_accounts(
        database,
        [CONTACTS_PER_ACCOUNT] * (NUDGES // CONTACTS_PER_ACCOUNT),
        prefix="crash",
        now=now,
        plan_template=None,
    )
    enroll_all(database, accounts, "crash_welcome", now)

    redis = Redis.from_url(private_redis.url)
    queue = Queue("delivery", connection=redis)
    previous = job_queue.current()
    job_queue.configure(JobRunner(redis))
    monkeypatch.setattr(scheduler, "BATCH_SIZE", 100)  # 100 jobs: many moments to die in
    try:
        with database.transaction() as session:
            ticked = run_tick(session, now=now, limit=len(accounts) + 1, caps=Caps(0, 0))
        assert ticked.messages_queued == NUDGES and queue.count == NUDGES // 100

        sink.delay_next(SEND_LATENCY_S, count=10 * NUDGES)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL,
            "NORTHSTAR_REDIS_URL": private_redis.url,
            "NORTHSTAR_SECRET_KEY": SECRET,
            "NORTHSTAR_MAIL_BACKEND": "sendgrid",
            "SENDGRID_API_KEY": "SG.crash-test",
            "NORTHSTAR_SENDGRID_API_HOST": sink.url,
        }
        workers = Workers(env, tmp_path)
        workers.supervise(2)
        chaos: list[str] = []
        started = time.monotonic()

        def note(what: str) -> None:
            chaos.append(f"{time.monotonic() - started:5.1f}s  {what} ({sink.message_count} in the sink)")

        # Six random moments spread over the run (by progress at the sink, then a random pause).
        moments = sorted(rng.sample(range(NUDGES // 20, NUDGES * 8 // 10), 6))
        kills = 0
        try:
            for kill, at in enumerate(moments):
                while sink.message_count < at and time.monotonic() - started < 120:
                    workers.supervise(2)
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.3))
                if workers.supervise(2):
                    note("restarted a worker that exited")
                victim = rng.choice(workers.busy() or workers.alive())  # mid-job when one is
                note(f"SIGKILL {workers.kill(victim, horse_only=rng.random() < 0.3)}")
                kills += 1
                workers.supervise(2)
                if kill == 2:
                    private_redis.crash()
                    time.sleep(rng.uniform(0.2, 1.0))
                    private_redis.start()
                    note("Redis crashed (SIGKILL) and restarted")
            workers.supervise(2)
            print("\n".join(chaos))
            settled = wait_quiet(database, queue, workers, timeout=90)
            print(f"after the chaos: {dict(settled)}")
            for _ in range(3):  # the recovery a deployment runs, shown an hour later
                if settled["queued"] + settled["sending"] == 0:
                    break
                abandoned = queue.started_job_registry
                abandoned.cleanup(timestamp=time.time() + 3600)  # RQ: retry jobs of dead workers
                with database.transaction() as session:
                    moment = later(utcnow(), max(STALE_SENDING, STALE_QUEUED))
                    recovered = run_tick(session, now=moment, caps=Caps(0, 0))
                print(
                    f"recovery: {recovered.messages_recovered} re-enqueued, "
                    f"{recovered.messages_unknown} unknown"
                )
                settled = wait_quiet(database, queue, workers, timeout=60)
                print(f"after recovery: {dict(settled)}")
        finally:
            workers.stop()
    finally:
        job_queue.configure(previous)
        redis.close()

    received: Counter[int] = Counter()
    for message in sink.messages():
        received[int(message.custom_args["message_id"])] += 1
    with database.session() as session:
        rows = session.execute(select(Message.id, Message.status, Message.sent_at)).all()
    assert len(rows) == NUDGES
    duplicated = {i: n for i, n in received.items() if n > 1}
    not_final = [(i, s.value) for i, s, _ in rows if s not in FINAL]
    sent_not_received = [i for i, s, _ in rows if s == MessageStatus.SENT and received[i] != 1]
    unknown = [i for i, s, _ in rows if s == MessageStatus.UNKNOWN]
    unattempted_unknown = [i for i, s, at in rows if s == MessageStatus.UNKNOWN and at is None]
    never_received = [i for i in unknown if received[i] == 0]
    print(
        f"sink: {sum(received.values())} emails for {len(received)} ids; "
        f"ledger: {Counter(s.value for _, s, _ in rows)}; "
        f"unknown {len(unknown)} ({len(never_received)} of them never reached the sink)"
    )
    assert duplicated == {}
    assert not_final == []
    assert sent_not_received == []
    assert unattempted_unknown == []  # unknown only where a request was actually begun
    assert set(received) <= {i for i, _, _ in rows}
    lost = [i for i, s, _ in rows if received[i] == 0 and s != MessageStatus.UNKNOWN]
    assert lost == []
    assert kills == 6 and any("Redis" in line for line in chaos)
