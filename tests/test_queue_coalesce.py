"""engine.queue: coalesced jobs on real Redis and RQ, and in the demo's synchronous mode."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from engine.queue import COALESCE_SECONDS, JobRunner, PendingJob

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
