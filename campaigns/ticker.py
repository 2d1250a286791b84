"""The scheduler loop: a Redis lock makes a second scheduler wait; each tick is one transaction."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.lock import Lock

from campaigns.digests import recover_stuck_digests, schedule_weekly_digests
from campaigns.guards import Caps
from campaigns.notify import LOST_AFTER, sweep_unnotified
from campaigns.scheduler import TickResult, run_tick
from campaigns.triggers import fire_time_triggers
from campaigns.webhooks import reconcile_unknown
from engine.config import Settings
from engine.db import Database, utcnow
from engine.plans.progress import refresh_plans
from surveys.rules_queue import sweep_stranded

log = logging.getLogger(__name__)
LOCK_NAME = "northstar:scheduler"
PLAN_REFRESH_SECONDS = 3600.0  # milestones slip with the calendar: recompute every plan hourly
SWEEP_SECONDS = 30.0  # responses whose rules job was lost (surveys.rules_queue) wait at most this


def refresh_all_plans(database: Database) -> int:
    """Recompute every active plan's milestone statuses (date-driven slips, achieved criteria)."""
    with database.transaction() as session:
        now = utcnow()
        result = refresh_plans(session, None, now=now, channel="schedule")
        fire_time_triggers(session, now=now)
        reconcile_unknown(session, now=now)  # timed-out sends: settle from SendGrid events, never resend
        schedule_weekly_digests(session, database.settings, now=now)  # nothing unless one is due
        recover_stuck_digests(session, now=now)  # a worker killed mid-send: `unknown`, never resent
    if result.slipped or result.achieved:
        log.info("plans: %d milestones slipped, %d achieved", len(result.slipped), len(result.achieved))
    return len(result.slipped) + len(result.achieved)


def sweep_rules(database: Database) -> bool:
    """Re-queue the rules job for completed responses whose job was lost."""
    with database.transaction() as session:
        swept = sweep_stranded(session, now=utcnow())
    if swept:
        log.warning("responses waited over 30 s for their rules: the rules job is queued again")
    return swept


def sweep_notifications(database: Database) -> int:
    """Re-queue owner notifications whose job was lost (campaigns.notify)."""
    with database.transaction() as session:
        queued = sweep_unnotified(session, now=utcnow())
    if queued:
        log.warning("%d owner notifications waited over %s: their jobs are queued again", queued, LOST_AFTER)
    return queued


def caps_of(settings: Settings) -> Caps:
    return Caps(settings.cap_account_per_week, settings.cap_contact_per_week)


def tick_once(database: Database) -> TickResult:
    with database.transaction() as session:
        return run_tick(session, now=utcnow(), caps=caps_of(database.settings))


LOCK_POLL_SECONDS = 0.1  # between attempts to take the lock while another scheduler holds it
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@contextmanager
def _stops_held() -> Iterator[None]:
    """SIGTERM and SIGINT wait (kept, not lost) until the block ends, then arrive: between Redis
    setting the lock and redis-py recording its token, a stop would leave a lock this process
    cannot release for its whole TTL. Python runs signal handlers in the main thread whichever
    thread the signal reached, so the handlers are swapped there (elsewhere nothing is held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {
        number: signal.signal(number, lambda number, _frame: pending.append(number))
        for number in STOP_SIGNALS
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for stop in dict.fromkeys(pending):
            signal.raise_signal(stop)  # the process's own handler, now


def _take(lock: Lock) -> None:
    """Wait for the lock, one attempt at a time with stops held, so a stop while waiting still
    ends the process at once, and a stop as it is taken finds it owned (and released)."""
    while True:
        with _stops_held():
            if lock.acquire(blocking=False):
                return
        time.sleep(LOCK_POLL_SECONDS)


def scheduler_loop(database: Database, redis: Redis, *, interval: float, once: bool = False) -> None:
    lock = Lock(redis, LOCK_NAME, timeout=max(30.0, interval * 6), blocking=True)
    log.info("scheduler waiting for the lock %r", LOCK_NAME)
    last_plan_refresh = last_sweep = float("-inf")
    # Taken inside the try: a stop (SIGTERM → SystemExit, Ctrl-C) the moment the lock is taken
    # still releases it, rather than leaving it to block a restart for its whole TTL.
    try:
        _take(lock)
        log.info("scheduler holds the lock; ticking every %.1fs", interval)
        while True:
            started = time.monotonic()
            if started - last_sweep >= SWEEP_SECONDS:
                sweep_rules(database)
                sweep_notifications(database)
                last_sweep = started
            if started - last_plan_refresh >= PLAN_REFRESH_SECONDS:
                refresh_all_plans(database)
                last_plan_refresh = started
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
        if lock.owned():
            lock.release()
