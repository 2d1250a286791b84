"""`python -m bench delivery`: emails/s through the real pipeline, batched vs one RQ job per email.

Per phase: bulk-create accounts (4 contacts each, an active plan each) enrolled in `nurture`, run
ONE scheduler tick (writes Message rows, enqueues delivery jobs after commit), start N real RQ
worker processes (`python -m bench.worker`), release them together and time from the first job's
start until every message is `sent` in PostgreSQL and captured by the SendGrid sink. The baseline
phase enqueues `deliver_batch([id])` once per message instead of the tick's batches of ≤1,000.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rq import Queue
from rq.job import Job

from bench.breakdown import measure, print_breakdown
from bench.common import (
    BenchEnv,
    add_service_arguments,
    bench_env,
    machine,
    print_table,
    profile_report,
    result_line,
)
from bench.fixtures import contacts_per_account, count_sent, create_accounts, enroll_all
from bench.pool import WorkerPool
from campaigns.jobs import deliver_batch
from campaigns.scheduler import DELIVERY_RETRY, run_tick
from engine import queue as job_queue
from engine.db import utcnow
from engine.queue import JobRunner, PendingJob

TARGET_EMAILS_PER_S = 2000
PROFILE_FOCUS = r"/(campaigns|content|engine|python_http_client|urllib)/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--emails", type=int, default=20000, help="emails in the batched run (%(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes (%(default)s)")
    parser.add_argument(
        "--baseline-emails",
        type=int,
        default=200,
        help="emails in the one-job-per-email baseline, a sample (rate compared, not time); 0 skips",
    )
    parser.add_argument("--contacts-per-account", type=int, default=4)
    parser.add_argument(
        "--worker-class",
        choices=("fork", "simple"),
        default="simple",
        help="simple = rq.SimpleWorker, jobs in the worker's process, as `northstar worker` runs them "
        "(default, ADR 0012); fork = rq.Worker, a work horse per job (`northstar worker --fork`)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the workers (SimpleWorker) too")
    parser.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip timing the stages of one 1,000-email batch in-process",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per phase")
    add_service_arguments(parser)


@dataclass
class Phase:
    label: str
    emails: int
    jobs: int = 0
    setup_s: float = 0.0
    tick_s: float = 0.0
    enqueue_s: float = 0.0
    window_s: float = 0.0
    rq_span_s: float = 0.0
    job_ms: float = 0.0
    requests: int = 0
    sent_in_db: int = 0
    duplicates: int = 0
    lost: int = 0
    failed_jobs: int = 0
    peak_rss_mb: float = 0.0
    profiles: list[Path] = field(default_factory=list)

    @property
    def emails_per_s(self) -> float:
        return self.emails / self.window_s if self.window_s else 0.0


class _CapturingRunner(JobRunner):
    """Keeps the jobs a commit would enqueue, so the baseline can enqueue them one per email."""

    def __init__(self, inner: JobRunner) -> None:
        super().__init__(inner.redis)
        self.captured: list[PendingJob] = []

    def enqueue_many(self, jobs: list[PendingJob]) -> None:
        self.captured.extend(jobs)


def _tick(env: BenchEnv, phase: Phase, now: dt.datetime, accounts: int, mode: str) -> list[int]:
    """One scheduler tick; returns the queued message ids. Enqueues the tick's batch jobs
    (mode "batched"), one job per email ("per-job"), or nothing ("inline")."""
    real = env.runner
    capture = _CapturingRunner(real) if mode != "batched" else None
    if capture is not None:
        job_queue.configure(capture)
    started = time.perf_counter()
    try:
        with env.database.transaction() as session:
            result = run_tick(session, now=now, limit=accounts + 1)
    finally:
        job_queue.configure(real)
    phase.tick_s = time.perf_counter() - started
    ids = [i for batch in result.batches for i in batch]
    if result.messages_queued != phase.emails or len(ids) != phase.emails:
        raise RuntimeError(f"tick queued {result.messages_queued} messages, expected {phase.emails}")
    phase.jobs = len(result.batches)
    if mode == "per-job":
        started = time.perf_counter()
        jobs = [PendingJob("delivery", deliver_batch, ([i],), DELIVERY_RETRY) for i in ids]
        for start in range(0, len(jobs), 1000):
            real.enqueue_many(jobs[start : start + 1000])
        phase.enqueue_s = time.perf_counter() - started
        phase.jobs = len(jobs)
    return ids


def _wait_done(env: BenchEnv, pool: WorkerPool, ids: list[int], timeout: float) -> float:
    """Poll until the sink holds every email and every row is `sent`; returns that wall time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if env.sink.message_count >= len(ids) and count_sent(env.database, ids) >= len(ids):
            return time.time()
        if pool.alive() == 0 and env.sink.message_count < len(ids):
            break  # every burst worker exited and mail is missing: report what arrived
        time.sleep(0.005 if env.sink.message_count < len(ids) else 0.02)
    return time.time()


def _job_times(env: BenchEnv) -> tuple[float | None, float | None, float, int]:
    queue = Queue("delivery", connection=env.redis)
    ids = queue.finished_job_registry.get_job_ids()
    failed = queue.failed_job_registry.count
    starts, ends = [], []
    for start in range(0, len(ids), 1000):
        for job in Job.fetch_many(ids[start : start + 1000], connection=env.redis):
            if job is not None and job.started_at and job.ended_at:
                starts.append(job.started_at.timestamp())
                ends.append(job.ended_at.timestamp())
    mean_ms = 1000 * sum(e - s for s, e in zip(starts, ends, strict=True)) / max(len(starts), 1)
    return (min(starts) if starts else None), (max(ends) if ends else None), mean_ms, failed


def _check(env: BenchEnv, phase: Phase, ids: list[int]) -> None:
    seen: Counter[int] = Counter()
    for request in env.sink.requests:
        for personalization in request.body.get("personalizations", []):
            seen[int(personalization["custom_args"]["message_id"])] += len(personalization["to"])
    phase.requests = len(env.sink.requests)
    phase.duplicates = sum(n - 1 for n in seen.values() if n > 1)
    phase.lost = len(set(ids) - set(seen))
    phase.sent_in_db = count_sent(env.database, ids)


def prepare(env: BenchEnv, args: argparse.Namespace, label: str, emails: int) -> tuple[Phase, list[int]]:
    """Accounts + contacts + plans, enrolled in `nurture`, one tick: the queued message ids."""
    phase = Phase(label, emails)
    env.sink.clear()
    now = utcnow()
    started = time.perf_counter()
    counts = contacts_per_account(emails, args.contacts_per_account)
    account_ids = create_accounts(env.database, counts, prefix=label.replace("-", ""), now=now)
    enroll_all(env.database, account_ids, "nurture", now)
    phase.setup_s = time.perf_counter() - started
    return phase, _tick(env, phase, now, len(account_ids), label)


def run_phase(env: BenchEnv, args: argparse.Namespace, workdir: Path, label: str, emails: int) -> Phase:
    phase, ids = prepare(env, args, label, emails)
    pool = WorkerPool(env.redis, env.worker_env(), workdir, args.workers, args.worker_class, args.profile)
    pool.start()
    try:
        go_at = pool.go()
        done_at = _wait_done(env, pool, ids, args.timeout)
        stats = pool.wait(timeout=60)
    finally:
        pool.stop()
    first_start, last_end, phase.job_ms, phase.failed_jobs = _job_times(env)
    phase.window_s = done_at - (first_start or go_at)
    phase.rq_span_s = (last_end - first_start) if first_start and last_end else 0.0
    phase.failed_jobs += sum(int(s["failed_jobs"]) for s in stats)
    rss_kb = max(max(int(s["maxrss_self_kb"]), int(s["maxrss_children_kb"])) for s in stats)
    phase.peak_rss_mb = rss_kb / 1024
    phase.profiles = [pool.profile_file(i) for i in range(args.workers) if pool.profile_file(i).exists()]
    _check(env, phase, ids)
    env.redis.delete("rq:finished:delivery", "rq:failed:delivery")
    return phase


def _row(p: Phase) -> list[object]:
    return [
        p.label,
        p.emails,
        p.jobs,
        p.requests,
        f"{p.tick_s:.2f}",
        f"{p.enqueue_s:.2f}",
        f"{p.window_s:.2f}",
        f"{p.rq_span_s:.2f}",
        f"{p.job_ms:.1f}",
        f"{p.emails_per_s:,.0f}",
        p.sent_in_db,
        p.duplicates,
        p.lost,
        p.failed_jobs,
        f"{p.peak_rss_mb:.0f}",
    ]


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp, bench_env(args) as env:
        workdir = Path(tmp)
        batched = run_phase(env, args, workdir, "batched", args.emails)
        baseline = (
            run_phase(env, args, workdir, "per-job", args.baseline_emails) if args.baseline_emails else None
        )
        found = measure(env.database, prepare(env, args, "inline", 1000)[1]) if args.breakdown else None
    phases = [batched, *([baseline] if baseline else [])]
    headers = ["mode", "emails", "jobs", "requests", "tick_s", "enqueue_s", "window_s", "rq_span_s", "job_ms"]
    headers += ["emails/s", "sent_in_db", "dup", "lost", "failed_jobs", "peak_rss_MB"]
    worker = "SimpleWorker" if args.worker_class == "simple" or args.profile else "Worker"
    title = f"delivery — {args.workers} × rq.{worker} processes, {machine()}"
    print_table(
        f"{title}, load avg {load_before:.1f} → {os.getloadavg()[0]:.1f}", headers, [_row(p) for p in phases]
    )
    print(
        "window_s = first RQ job start → all rows `sent` and all emails in the sink; rq_span_s = first job "
        "start → last job end; job_ms = mean RQ job duration; tick_s (writing Message rows, enqueueing "
        "after commit) and enqueue_s (per-job baseline's pipelined enqueue) are outside the window."
    )
    if baseline:
        print(
            f"baseline: a sample of {baseline.emails} emails, one RQ job each (rate compared, not scaled); "
            f"at its rate {args.emails} emails would take "
            f"≈{args.emails / max(baseline.emails_per_s, 1e-9):,.0f}s "
            f"(batched: {batched.window_s:.1f}s)."
        )
    met = batched.emails_per_s >= TARGET_EMAILS_PER_S
    print(f"target ≥ {TARGET_EMAILS_PER_S:,} emails/s with 2 workers: {'met' if met else 'MISSED'}")
    if found is not None:
        print_breakdown(found)
    for phase in phases:
        if phase.profiles:
            report = profile_report(phase.profiles, focus=PROFILE_FOCUS)
            print(f"\ncProfile of the {phase.label} workers:\n{report}")
    values: dict[str, Any] = {"emails": batched.emails, "workers": args.workers}
    values["emails_per_s"] = round(batched.emails_per_s)
    if baseline:
        values["baseline_per_job_emails_per_s"] = round(baseline.emails_per_s, 1)
        values["ratio"] = round(batched.emails_per_s / max(baseline.emails_per_s, 1e-9), 1)
    values["duplicates"] = sum(p.duplicates for p in phases)
    values["lost"] = sum(p.lost for p in phases)
    values["worker_peak_rss_mb"] = round(max(p.peak_rss_mb for p in phases))
    values["worker_class"] = args.worker_class
    print(f"duplicates={values['duplicates']} lost={values['lost']}")
    result_line("delivery", values)
    ok = all(p.duplicates == 0 and p.lost == 0 and p.sent_in_db == p.emails for p in phases)
    return 0 if ok else 1
