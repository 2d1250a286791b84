"""RQ wiring: named queues, jobs enqueued only after the transaction that needs them commits.

In the zero-setup demo there may be no Redis; then (and only when the settings allow it) jobs run
in-process right after commit, and the log says so once.

A job whose input is durable state rather than its arguments (the reports' summary refresh reads
its keys from a table) can be *coalesced*: `enqueue_after_commit(..., coalesce="name")` queues it
only when no job of that name is waiting (`SET … NX EX` in Redis), and the job calls
`release_coalesced("name")` as it starts, so a commit after that start queues the next one. A
burst of commits then costs one job, not one per transaction; the expiry bounds how long a lost
job can hold the name.

In a worker, a coalesced job *lingers* as it starts: it waits until `linger_s` (the settings'
`job_linger_ms`, 250 ms) after it was queued before it releases its name and reads its rows. The
commits of that moment then join it, as a producer's `linger.ms` fills a batch: at a steady 100
answers a second the `rules` job takes about 30 responses per run instead of four or five, and its
CPU per response falls with the per-run costs it no longer repeats (ADR 0012). A job that waited in
the queue longer than that starts at once: under a backlog nothing lingers.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from sqlalchemy import event
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.errors import ConfigurationError

log = logging.getLogger(__name__)

QUEUE_NAMES = ("default", "delivery", "reports")
_PENDING_KEY = "northstar.jobs_after_commit"
COALESCE_SECONDS = 60


@dataclass(frozen=True)
class PendingJob:
    queue: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    retry: Retry | None
    coalesce: str | None = None


class JobRunner:
    """Hands jobs to RQ queues, or runs them synchronously in demo mode."""

    def __init__(
        self, redis: Redis | None, *, refuse_reason: str | None = None, linger_s: float = 0.0
    ) -> None:
        self.redis = redis
        self.refuse_reason = refuse_reason
        self.linger_s = linger_s
        self.synchronous = redis is None and refuse_reason is None
        self.queues = {name: Queue(name, connection=redis) for name in QUEUE_NAMES} if redis else {}
        self.ran_synchronously = 0

    def enqueue(self, queue: str, func: Callable[..., Any], *args: Any, retry: Retry | None = None) -> None:
        if queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {queue!r}")
        if self.refuse_reason:
            raise ConfigurationError(self.refuse_reason)
        if self.redis is None:
            self.ran_synchronously += 1
            func(*args)
            return
        self.queues[queue].enqueue(func, *args, retry=retry)

    def enqueue_many(self, jobs: list[PendingJob]) -> None:
        if self.redis is None:
            for job in jobs:
                self.enqueue(job.queue, job.func, *job.args)
            return
        jobs = self._uncoalesced(jobs)
        by_queue: dict[str, list[PendingJob]] = {}
        for job in jobs:
            by_queue.setdefault(job.queue, []).append(job)
        if not by_queue:
            return
        with self.redis.pipeline() as pipe:
            for name, queued in by_queue.items():
                queue = self.queues[name]
                queue.enqueue_many(
                    [Queue.prepare_data(j.func, j.args, retry=j.retry) for j in queued],
                    pipeline=pipe,
                )
            pipe.execute()

    def _uncoalesced(self, jobs: list[PendingJob]) -> list[PendingJob]:
        """`jobs` without the coalesced ones whose name is already taken by a waiting job."""
        names = list(dict.fromkeys(job.coalesce for job in jobs if job.coalesce))
        if not names:
            return jobs
        assert self.redis is not None
        with self.redis.pipeline() as pipe:
            for name in names:
                pipe.set(_coalesce_key(name), 1, nx=True, ex=COALESCE_SECONDS)
            taken = {name for name, ok in zip(names, pipe.execute(), strict=True) if ok}
        kept = []
        for job in jobs:
            if job.coalesce is None:
                kept.append(job)
            elif job.coalesce in taken:
                kept.append(job)
                taken.discard(job.coalesce)  # one job per name, however many commits asked
        return kept

    def release_coalesced(self, name: str, *, linger: bool = True) -> None:
        """Called by a coalesced job as it starts: the next commit queues a new one.

        In a worker, the job first lingers until `linger_s` after it was queued, so the commits of
        that moment join it rather than each waking a job of a few rows (see the module's
        docstring); `linger=False` for a job that continues a backlog, which has rows enough."""
        if self.redis is None:
            return
        job = get_current_job() if linger else None
        if job is not None and job.enqueued_at is not None:
            wait = lingering(job.enqueued_at, self.linger_s, now=dt.datetime.now(dt.UTC))
            if wait > 0:
                time.sleep(wait)
        self.redis.delete(_coalesce_key(name))


def lingering(enqueued_at: dt.datetime, linger_s: float, *, now: dt.datetime) -> float:
    """Seconds a coalesced job queued at `enqueued_at` still waits before it starts (0: none); never
    more than `linger_s`, whatever the clocks say."""
    if enqueued_at.tzinfo is None:  # RQ stores UTC
        enqueued_at = enqueued_at.replace(tzinfo=dt.UTC)
    waited = (now - enqueued_at).total_seconds()
    return min(linger_s, max(0.0, linger_s - waited))


def _coalesce_key(name: str) -> str:
    return f"northstar:coalesce:{name}"


def connect_redis(url: str, *, timeout: float = 2.0) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout * 5)


def redis_reachable(redis: Redis) -> bool:
    try:
        return bool(redis.ping())
    except RedisError:
        return False


def build_runner(settings: Settings) -> JobRunner:
    """Redis from the settings; synchronous only where allowed (the demo), said once in the log."""
    if settings.redis_url:
        redis = connect_redis(settings.redis_url)
        if not settings.allow_sync_jobs or redis_reachable(redis):
            return JobRunner(redis, linger_s=settings.job_linger_ms / 1000)
        log.warning(
            "Redis at %s is unreachable: RQ runs in synchronous mode, every job executes in this "
            "process right after its transaction commits",
            settings.redis_url,
        )
        return JobRunner(None)
    if not settings.allow_sync_jobs:
        return JobRunner(None, refuse_reason="NORTHSTAR_REDIS_URL is not set: background jobs need Redis")
    log.warning(
        "Redis is not configured (NORTHSTAR_REDIS_URL unset): RQ runs in synchronous mode, "
        "every job executes in this process right after its transaction commits"
    )
    return JobRunner(None)


_runner: JobRunner | None = None


def configure(runner: JobRunner) -> JobRunner:
    global _runner
    _runner = runner
    return runner


def current() -> JobRunner:
    if _runner is None:
        raise ConfigurationError("the job runner is not configured (create_app or the CLI does this)")
    return _runner


def enqueue_after_commit(
    session: Session,
    queue: str,
    func: Callable[..., Any],
    *args: Any,
    retry: Retry | None = None,
    coalesce: str | None = None,
) -> None:
    """Queue `func(*args)` to run once `session` commits; dropped if it rolls back. With
    `coalesce`, not queued while a job of that name waits (see the module's docstring)."""
    session.info.setdefault(_PENDING_KEY, []).append(PendingJob(queue, func, args, retry, coalesce))


@event.listens_for(Session, "after_commit")
def _flush_jobs(session: Session) -> None:
    jobs: list[PendingJob] = session.info.pop(_PENDING_KEY, [])
    if jobs:
        current().enqueue_many(jobs)


@event.listens_for(Session, "after_rollback")
def _drop_jobs(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
