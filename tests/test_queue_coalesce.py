"""engine.queue: coalesced jobs on real Redis and RQ, and in the demo's synchronous mode."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from flask import Flask
from redis import Redis
from rq import Queue, SimpleWorker

from engine import queue
from engine.queue import COALESCE_SECONDS, JobRunner, PendingJob, lingering

RAN: list[str] = []


def note(what: str) -> None:
    RAN.append(what)


def test_one_job_waits_per_name_until_it_starts(redis_conn: Redis) -> None:
    runner = JobRunner(redis_conn)
    reports = Queue("reports", connection=redis_conn)
    default = Queue("default", connection=redis_conn)
    runner.enqueue_many(
        [
            PendingJob("reports", note, ("a",), None, "refresh"),
            PendingJob("reports", note, ("b",), None, "refresh"),
            PendingJob("default", note, ("plain",), None),
            PendingJob("default", note, ("plain",), None),
        ]
    )
    assert (reports.count, default.count) == (1, 2)  # uncoalesced jobs are never merged
    runner.enqueue_many([PendingJob("reports", note, ("c",), None, "refresh")])
    assert reports.count == 1
    ttl = redis_conn.ttl("northstar:coalesce:refresh")
    assert 0 < ttl <= COALESCE_SECONDS  # a lost job holds the name for a minute at most
    runner.release_coalesced("refresh")
    runner.enqueue_many([PendingJob("reports", note, ("d",), None, "refresh")])
    assert reports.count == 2
    assert [job.args for job in reports.jobs] == [("a",), ("d",)]


def test_synchronous_mode_runs_every_coalesced_job() -> None:
    RAN.clear()
    runner = JobRunner(None)
    runner.enqueue_many([PendingJob("reports", note, (x,), None, "refresh") for x in "xy"])
    runner.release_coalesced("refresh")  # nothing to release without Redis
    assert RAN == ["x", "y"]


# -- lingering (ADR 0012) -----------------------------------------------------------------------

QUEUED = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def test_a_fresh_job_lingers_until_its_time_and_a_late_one_starts_at_once() -> None:
    at = QUEUED + dt.timedelta(milliseconds=100)
    assert lingering(QUEUED, 0.25, now=at) == pytest.approx(0.15)
    assert lingering(QUEUED, 0.25, now=QUEUED + dt.timedelta(seconds=3)) == 0  # waited in the queue
    assert lingering(QUEUED, 0.0, now=QUEUED) == 0  # lingering off
    # RQ's timestamps are UTC; a naive one is read as such.
    assert lingering(QUEUED.replace(tzinfo=None), 0.25, now=at) == pytest.approx(0.15)
    # A worker whose clock runs behind the web server's never waits more than the linger.
    assert lingering(QUEUED + dt.timedelta(minutes=5), 0.25, now=QUEUED) == 0.25


RELEASED: list[tuple[str, float, float]] = []


def linger_then_note(what: str, linger: bool) -> None:
    began = time.perf_counter()
    queue.current().release_coalesced("refresh", linger=linger)
    RELEASED.append((what, began, time.perf_counter()))


def test_a_coalesced_job_holds_its_name_while_it_lingers_and_a_backlog_does_not_linger(
    redis_conn: Redis, app: Flask
) -> None:
    """The worker runs a coalesced job that lingers: the name stays taken until `linger_s` after
    the job was queued (so commits of that moment queue nothing more), then is freed;
    `linger=False` (a job that continues a backlog) frees it at once. (The job runs in this
    process, so its clock is the test's.)"""
    runner = queue.current()
    runner.linger_s = 1.0
    RELEASED.clear()
    queued = time.perf_counter()
    runner.enqueue_many([PendingJob("reports", linger_then_note, ("fresh", True), None, "refresh")])
    SimpleWorker(["reports"], connection=redis_conn).work(burst=True, logging_level="WARNING")
    [(what, _began, released)] = RELEASED
    assert what == "fresh" and released - queued >= 0.95  # not before its linger was up (clock slack)
    assert not redis_conn.exists("northstar:coalesce:refresh")

    runner.enqueue_many([PendingJob("reports", linger_then_note, ("backlog", False), None, "refresh")])
    SimpleWorker(["reports"], connection=redis_conn).work(burst=True, logging_level="WARNING")
    what, began, released = RELEASED[-1]
    assert what == "backlog" and released - began < 0.5  # one Redis DELETE, no wait


def test_outside_a_worker_nothing_lingers(redis_conn: Redis) -> None:
    runner = JobRunner(redis_conn, linger_s=5.0)
    runner.enqueue_many([PendingJob("reports", note, ("a",), None, "refresh")])
    started = time.perf_counter()
    runner.release_coalesced("refresh")  # called by hand (northstar reports refresh): no RQ job
    assert time.perf_counter() - started < 1.0
    assert not redis_conn.exists("northstar:coalesce:refresh")
