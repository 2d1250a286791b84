"""The scheduler loop: a Redis lock makes a second scheduler wait; each tick is one transaction."""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.lock import Lock

from campaigns.scheduler import TickResult, run_tick
from engine.db import Database, utcnow

log = logging.getLogger(__name__)
LOCK_NAME = "northstar:scheduler"


def tick_once(database: Database) -> TickResult:
    with database.transaction() as session:
        return run_tick(session, now=utcnow())


def scheduler_loop(database: Database, redis: Redis, *, interval: float, once: bool = False) -> None:
    lock = Lock(redis, LOCK_NAME, timeout=max(30.0, interval * 6), blocking=True)
    log.info("scheduler waiting for the lock %r", LOCK_NAME)
    lock.acquire()
    log.info("scheduler holds the lock; ticking every %.1fs", interval)
    try:
        while True:
            started = time.monotonic()
            result = tick_once(database)
            if result.enrollments:
                log.info(
                    "tick: %d enrolments, %d steps, %d messages queued in %d batches",
                    result.enrollments,
                    result.steps_run,
                    result.messages_queued,
                    len(result.batches),
                )
            lock.extend(max(30.0, interval * 6), replace_ttl=True)
            if once:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        lock.release()
