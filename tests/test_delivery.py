"""Scheduler tick and delivery: ledger first, batched jobs after commit, each nudge sent once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select

from campaigns import scheduler
from campaigns.jobs import deliver_batch
from campaigns.models import Enrollment, EnrollmentState, Message, MessageStatus
from campaigns.sink import SendGridSink
from campaigns.ticker import LOCK_NAME, scheduler_loop, tick_once
from engine.accounts import ContactRole
from engine.db import Database, utcnow
from engine.queue import enqueue_after_commit
from surveys.service import ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers

Worker = Callable[[], bool]


def enrol(database: Database, external_id: str = "acme", **account_kwargs: object) -> None:
    with database.transaction() as session:
        make_account(session, external_id, **account_kwargs)  # type: ignore[arg-type]
        submit_response(
            session,
            "outcomes",
            ResponseIn(
                client_response_id=f"{external_id}-response", account=external_id, answers=outcomes_answers()
            ),
            now=utcnow(),
        )


EMAILS = select(Message).where(Message.channel == "email")  # the nurture campaign also writes an in-app card


def statuses(database: Database) -> list[str]:
    with database.session() as session:
        return sorted(m.status.value for m in session.scalars(EMAILS))


def test_tick_writes_the_ledger_and_enqueues_one_job_per_batch(
    recruiting: object, database: Database, redis_conn: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "BATCH_SIZE", 2)
    enrol(database, contacts=tuple((f"p{i}@acme.example", ContactRole.POWER_USER) for i in range(5)))
    result = tick_once(database)
    assert result.messages_queued == 5
    assert [len(b) for b in result.batches] == [2, 2, 1]
    assert statuses(database) == ["queued"] * 5
    assert Queue("delivery", connection=redis_conn).count == 3


def test_jobs_are_not_enqueued_when_the_transaction_rolls_back(
    app: object, database: Database, redis_conn: Redis
) -> None:
    with pytest.raises(RuntimeError), database.transaction() as session:
        enqueue_after_commit(session, "delivery", deliver_batch, [1])
        raise RuntimeError("rolled back")
    assert Queue("delivery", connection=redis_conn).count == 0


def test_running_a_delivery_job_twice_sends_once(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    enrol(database)
    batch = tick_once(database).batches[0]
    run_worker()
    deliver_batch(batch)  # a retried or duplicated job
    assert len(sink.messages()) == 2
    assert statuses(database) == ["sent", "sent"]


def test_rate_limited_batch_goes_back_to_queued_and_is_retried(
    recruiting: object, database: Database, sink: SendGridSink, redis_conn: Redis
) -> None:
    enrol(database)
    batch = tick_once(database).batches[0]
    sink.fail_next(429)
    with pytest.raises(Exception, match="429"):
        deliver_batch(batch)
    assert statuses(database) == ["queued", "queued"]
    assert sink.messages() == []
    deliver_batch(batch)  # what RQ's Retry does later
    assert statuses(database) == ["sent", "sent"] and len(sink.messages()) == 2


def test_permanent_provider_error_marks_failed_with_the_reason(
    recruiting: object, database: Database, sink: SendGridSink
) -> None:
    enrol(database)
    batch = tick_once(database).batches[0]
    sink.fail_next(400, body={"errors": [{"message": "bad from address"}]})
    deliver_batch(batch)
    with database.session() as session:
        messages = session.scalars(EMAILS).all()
    assert {m.status for m in messages} == {MessageStatus.FAILED}
    assert all("400" in (m.reason or "") for m in messages)


def test_timeout_marks_unknown_and_is_never_resent(
    recruiting: object, database: Database, sink: SendGridSink, settings: object
) -> None:
    enrol(database)
    batch = tick_once(database).batches[0]
    sink.delay_next(3.0)  # longer than sendgrid_timeout_s=2.0
    deliver_batch(batch)
    assert statuses(database) == ["unknown", "unknown"]
    deliver_batch(batch)
    sink.wait_for(2)
    time.sleep(0.2)
    assert len(sink.messages()) == 2  # the provider got it once; we did not send again


def test_unsubscribed_and_holdout_recipients_are_recorded_not_sent(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    enrol(database, "acme")
    enrol(database, "heldout", contacts=(("h@held.example", ContactRole.CHAMPION),))
    with database.transaction() as session:
        from engine.accounts import Account, Contact

        session.scalars(
            select(Contact).where(Contact.email == "sofia@acme.example")
        ).one().unsubscribed_at = utcnow()
        session.scalars(select(Account).where(Account.external_id == "heldout")).one().holdout_group = True
    tick_once(database)
    run_worker()
    assert [m.to for m in sink.messages()] == ["johnny@acme.example"]
    with database.session() as session:
        reasons = sorted(
            m.reason or "" for m in session.scalars(EMAILS) if m.status == MessageStatus.SUPPRESSED
        )
    assert reasons == ["holdout", "unsubscribed"]


def test_wait_until_milestone_times_out_and_moves_on(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    enrol(database)
    tick_once(database)
    with database.transaction() as session:
        later = utcnow() + dt.timedelta(days=8)
        result = scheduler.run_tick(session, now=later)
    assert result.messages_queued == 1
    with database.session() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert any(h["event"] == "timed_out" for h in enrollment.history)
        assert enrollment.state == EnrollmentState.WAITING


def test_a_second_scheduler_waits_for_the_lock(app: object, database: Database, redis_conn: Redis) -> None:
    from redis.lock import Lock

    held = Lock(redis_conn, LOCK_NAME, timeout=30)
    assert held.acquire(blocking=False)
    finished = threading.Event()

    def second() -> None:
        scheduler_loop(database, redis_conn, interval=0.1, once=True)
        finished.set()

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    assert not finished.wait(1.0)  # blocked while the first scheduler holds the lock
    held.release()
    assert finished.wait(5.0)
