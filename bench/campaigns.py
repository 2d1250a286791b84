"""`python -m bench campaigns`: one scheduler tick over 100,000 due enrolments, then worker memory
over the 100,000 sends it queued.

Phase 1 bulk-creates accounts (one contact each by default, an active `hire_faster_plan` with its
milestones each) enrolled in the recruiting `nurture` campaign, all due now, runs ANALYZE (a live
database has statistics) and times `run_tick` in its transaction, commit and enqueue included:
it writes a `Message` per contact for the `welcome` step and the in-app `plan_ready` card, parks
each enrolment on `wait_first_job` and enqueues the batches of ≤1,000. The bulk tick (the default
on PostgreSQL, campaigns.bulk) runs `--repeat` times on the same rows, each run but the last rolled
back and followed by VACUUM ANALYZE; `--baseline` first times the per-enrolment tick
(`bulk=False`) once on the same rows, also rolled back, for the ratio. SQL statements are counted
on the engine (the bulk tick's pipelined INSERT/UPDATE per chunk are added from the chunk count).

Phase 2 starts N real RQ worker processes (`python -m bench.worker`, prepared as `northstar worker`
prepares them), releases them together on those jobs and samples the resident set size of every
worker and of its forked work horses from /proc until every email is in the SendGrid sink and
every row is `sent`; it reports RSS when 10k, 50k and 100k emails have been sent.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.common import (
    DEFAULT_DATABASE_URL,
    BenchEnv,
    add_service_arguments,
    bench_env,
    machine,
    print_table,
    profile_report,
    result_line,
)
from bench.fixtures import count_sent, create_accounts, enroll_all
from bench.pool import WorkerPool
from campaigns.bulk import CHUNK
from campaigns.scheduler import TickResult, run_tick
from engine.db import utcnow

TARGET_TICK_S = 10.0
MILESTONES = (10_000, 50_000, 100_000)
PROFILE_FOCUS = r"/(campaigns|engine)/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enrollments", type=int, default=100_000, help="due enrolments (%(default)s)")
    parser.add_argument("--contacts-per-account", type=int, default=1, help="(%(default)s)")
    parser.add_argument("--no-plans", dest="plans", action="store_false", help="accounts without plans")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes (%(default)s)")
    parser.add_argument(
        "--worker-class",
        choices=("fork", "simple"),
        default="simple",
        help="simple: jobs in the worker's process, as `northstar worker` runs them; fork: `--fork`",
    )
    parser.add_argument("--no-send", dest="send", action="store_false", help="the tick only")
    parser.add_argument("--profile", action="store_true", help="cProfile the (last) bulk tick")
    parser.add_argument("--repeat", type=int, default=3, help="bulk ticks on the same rows (%(default)s)")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the per-enrolment tick once on the same rows (default: yes)",
    )
    parser.add_argument("--chunk", type=int, default=CHUNK, help="bulk tick chunk size (%(default)s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for the sends")
    add_service_arguments(parser)
    parser.set_defaults(
        database_url=os.environ.get(
            "BENCH_DATABASE_URL",
            make_url(DEFAULT_DATABASE_URL).set(database="bench_campaigns").render_as_string(),
        ),
        redis_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3"),
    )


@dataclass
class TickRun:
    enrollments: int
    setup_s: float = 0.0
    tick_s: float = 0.0  # the median of the bulk runs
    runs_s: list[float] = field(default_factory=list)  # every bulk run, in order
    baseline_s: float | None = None  # the per-enrolment tick on the same rows
    # CPU seconds of each bulk run: this process, and its PostgreSQL backend (None if not local)
    cpu_s: list[tuple[float, float | None]] = field(default_factory=list)
    queries: int = 0
    result: TickResult = field(default_factory=TickResult)
    profile: Path | None = None

    @property
    def best_s(self) -> float:
        return min(self.runs_s)


@dataclass
class Sample:
    sent: int
    elapsed_s: float
    worker_rss_mb: float  # the largest long-lived worker process
    horse_rss_mb: float  # the largest work horse seen since the previous sample


@dataclass
class SendRun:
    emails: int
    window_s: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    duplicates: int = 0
    lost: int = 0
    sent_in_db: int = 0
    requests: int = 0

    @property
    def emails_per_s(self) -> float:
        return self.emails / self.window_s if self.window_s else 0.0


def run_the_tick(env: BenchEnv, args: argparse.Namespace, workdir: Path) -> TickRun:
    run = TickRun(args.enrollments)
    now = utcnow()
    started = time.perf_counter()
    counts = [args.contacts_per_account] * args.enrollments
    plan_template = "hire_faster_plan" if args.plans else None
    account_ids = create_accounts(env.database, counts, prefix="tick", now=now, plan_template=plan_template)
    enroll_all(env.database, account_ids, "nurture", now)
    _vacuum(env)
    run.setup_s = time.perf_counter() - started
    if args.baseline:
        run.baseline_s, _, _, _ = _timed_tick(env, args, now, bulk=False, keep=False)
        _vacuum(env)
    repeat = max(1, args.repeat)
    for i in range(repeat):
        last = i == repeat - 1
        profiler = cProfile.Profile() if args.profile and last else None
        seconds, queries, result, cpu = _timed_tick(env, args, now, bulk=True, keep=last, profiler=profiler)
        run.runs_s.append(seconds)
        run.cpu_s.append(cpu)
        if last:
            run.queries, run.result = queries, result
        else:
            _vacuum(env)
        if profiler is not None:
            run.profile = workdir / "tick.prof"
            profiler.dump_stats(str(run.profile))
    run.tick_s = statistics.median(run.runs_s)
    return run


def _timed_tick(
    env: BenchEnv,
    args: argparse.Namespace,
    now: dt.datetime,
    *,
    bulk: bool,
    keep: bool,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, int, TickResult, tuple[float, float | None]]:
    """One tick over every due enrolment in its transaction: committed (and its jobs enqueued) when
    `keep`, else rolled back so the next run finds the same rows due. Also the CPU seconds it took
    here and in its PostgreSQL backend (a figure a busy machine disturbs less than the wall clock)."""
    session = env.database.session()
    backend = int(session.scalar(text("SELECT pg_backend_pid()")) or 0)
    with _counting_statements() as counted:
        started = time.perf_counter()
        client_started, server_started = time.process_time(), _backend_cpu_s(backend)
        if profiler is not None:
            profiler.enable()
        try:
            result = run_tick(session, now=now, limit=args.enrollments + 1, bulk=bulk, chunk=args.chunk)
            client_s, server_ended = time.process_time() - client_started, _backend_cpu_s(backend)
            if keep:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - started
    server_s = (
        server_ended - server_started if server_ended is not None and server_started is not None else None
    )
    return seconds, counted[0], result, (client_s, server_s)


def _backend_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a local PostgreSQL backend, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _counting_statements() -> Iterator[list[int]]:
    """Count every statement sent to PostgreSQL: the bulk tick sends most of its own through psycopg
    (plain reads, pipelined writes), past the engine's events, so count at psycopg's cursor."""
    counted = [0]
    execute = psycopg.Cursor.execute

    def counting(self: psycopg.Cursor[Any], *args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return execute(self, *args, **kwargs)

    psycopg.Cursor.execute = counting  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]


def _vacuum(env: BenchEnv) -> None:
    """Statistics, and no dead rows left by a rolled-back run (a live database is vacuumed)."""
    with env.database.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("enrollments", "messages", "accounts", "contacts", "success_plans", "milestones"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass  # the process (a work horse) has just exited
    return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_the_sends(env: BenchEnv, args: argparse.Namespace, workdir: Path, ids: list[int]) -> SendRun:
    run = SendRun(len(ids))
    env.sink.clear()
    pool = WorkerPool(env.redis, env.worker_env(), workdir, args.workers, args.worker_class)
    pool.start()
    targets = [m for m in MILESTONES if m <= len(ids)] or [len(ids)]
    try:
        go_at = time.monotonic()
        pool.go()
        pids = [p.pid for p in pool.processes]
        worker_peak = horse_peak = 0.0
        deadline = go_at + args.timeout
        while time.monotonic() < deadline:
            worker_peak = max([worker_peak, *(rss_mb(pid) for pid in pids)])
            horse_peak = max([horse_peak, *(rss_mb(h) for pid in pids for h in children(pid))])
            sent = env.sink.message_count
            while targets and sent >= targets[0]:
                run.samples.append(Sample(targets.pop(0), time.monotonic() - go_at, worker_peak, horse_peak))
                worker_peak = horse_peak = 0.0
            if not targets and count_sent(env.database, ids) >= len(ids):
                break
            if pool.alive() == 0 and env.sink.message_count < len(ids):
                break
            time.sleep(0.05)
        run.window_s = time.monotonic() - go_at
        pool.wait(timeout=60)
    finally:
        pool.stop()
    seen: Counter[int] = Counter()
    for request in env.sink.requests:
        for personalization in request.body.get("personalizations", []):
            seen[int(personalization["custom_args"]["message_id"])] += len(personalization["to"])
    run.requests = len(env.sink.requests)
    run.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    run.lost = len(set(ids) - set(seen))
    run.sent_in_db = count_sent(env.database, ids)
    return run


def report_the_tick(tick: TickRun, load: str) -> dict[str, Any]:
    """Print the tick's table now (a failure in the sends phase must not lose it)."""
    r = tick.result
    runs = ", ".join(f"{t:.2f}" for t in tick.runs_s)
    baseline = f"{tick.baseline_s:.2f}" if tick.baseline_s is not None else "-"
    ratio = tick.baseline_s / tick.tick_s if tick.baseline_s is not None else None
    print_table(
        f"campaigns — one scheduler tick on PostgreSQL, {machine()}, {load}",
        ["due enrolments", "setup_s", "bulk tick_s (runs)", "best_s", "median_s", "enrolments/s",
         "per-enrolment tick_s", "ratio", "messages written", "steps run", "jobs", "SQL statements"],
        [[tick.enrollments, f"{tick.setup_s:.1f}", runs, f"{tick.best_s:.2f}", f"{tick.tick_s:.2f}",
          f"{tick.enrollments / tick.tick_s:,.0f}", baseline, f"{ratio:.1f}" if ratio else "-",
          r.messages_queued, r.steps_run, len(r.batches), tick.queries]],
    )  # fmt: skip
    cpu = ", ".join(f"{c:.2f} / {'-' if s is None else f'{s:.2f}'}" for c, s in tick.cpu_s)
    print(f"CPU s per bulk run, this process / its PostgreSQL backend: {cpu}")
    met = tick.tick_s < TARGET_TICK_S
    print(
        f"target: {tick.enrollments:,} due enrolments in < {TARGET_TICK_S:.0f} s "
        f"(median of {len(tick.runs_s)}): {'met' if met else 'MISSED'}"
    )
    if tick.profile:
        print(f"\ncProfile of the tick:\n{profile_report([tick.profile], focus=PROFILE_FOCUS)}")
    values: dict[str, Any] = {"enrollments": tick.enrollments, "tick_100k_s": round(tick.tick_s, 2)}
    values["tick_best_s"] = round(tick.best_s, 2)
    values["rows_per_s"] = round(tick.enrollments / tick.tick_s)
    if tick.baseline_s is not None and ratio is not None:
        values["baseline_tick_s"] = round(tick.baseline_s, 2)
        values["ratio"] = round(ratio, 1)
    values["client_cpu_s"] = round(statistics.median(c for c, _ in tick.cpu_s), 2)
    servers = [s for _, s in tick.cpu_s if s is not None]
    if servers:
        values["server_cpu_s"] = round(statistics.median(servers), 2)
    values["messages"] = r.messages_queued
    values["queries"] = tick.queries
    return values


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-campaigns-") as tmp, bench_env(args) as env:
        workdir = Path(tmp)
        tick = run_the_tick(env, args, workdir)
        values = report_the_tick(tick, f"load avg {load_before:.1f} → {os.getloadavg()[0]:.1f}")
        ids = [i for batch in tick.result.batches for i in batch]
        sends = run_the_sends(env, args, workdir, ids) if args.send and ids else None
    r = tick.result
    ok = r.messages_queued == tick.enrollments * args.contacts_per_account
    if sends is not None:
        worker = "SimpleWorker" if args.worker_class == "simple" else "Worker (fork per job)"
        print_table(
            f"campaigns — {args.workers} × rq.{worker} sending {sends.emails:,} emails to the sink",
            ["emails sent", "elapsed_s", "worker RSS MB", "work horse peak RSS MB"],
            [[f"{s.sent:,}", f"{s.elapsed_s:.1f}", f"{s.worker_rss_mb:.0f}", f"{s.horse_rss_mb:.0f}"]
             for s in sends.samples],
        )  # fmt: skip
        print(
            f"{sends.emails:,} emails in {sends.window_s:.1f} s = {sends.emails_per_s:,.0f} emails/s; "
            f"{sends.requests} requests; duplicates={sends.duplicates} lost={sends.lost} "
            f"sent_in_db={sends.sent_in_db}"
        )
        by_sent = {s.sent: s for s in sends.samples}
        for mark in MILESTONES:
            if mark in by_sent:
                rss = by_sent[mark].worker_rss_mb
                if args.worker_class == "fork":
                    rss = max(rss, by_sent[mark].horse_rss_mb)
                values[f"worker_rss_mb_{mark // 1000}k"] = round(rss)
        values["emails_per_s"] = round(sends.emails_per_s)
        values["duplicates"] = sends.duplicates
        values["lost"] = sends.lost
        values["worker_class"] = args.worker_class
        ok = ok and sends.duplicates == 0 and sends.lost == 0 and sends.sent_in_db == sends.emails
    result_line("campaigns", values)
    return 0 if ok else 1
