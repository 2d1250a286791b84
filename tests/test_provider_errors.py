"""SendGrid's answers, classified: 429/5xx retry later, other 4xx fail with the reason, a lost answer
is `unknown` (never resent). Each case is the real client talking to the sink over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from campaigns.jobs import deliver_batch
from campaigns.mail import TransientSendError
from campaigns.models import Message, MessageStatus
from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from engine.db import Database, utcnow
from surveys.service import ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers

Worker = Callable[[], bool]


@pytest.fixture
def batch(recruiting: object, database: Database) -> list[int]:
    """The welcome email for Sofia and Johnny, written to the ledger and waiting for its job."""
    with database.transaction() as session:
        make_account(session, "acme")
        submit_response(
            session,
            "outcomes",
            ResponseIn(client_response_id="acme-response", account="acme", answers=outcomes_answers()),
            now=utcnow(),
        )
    batches = tick_once(database).batches
    emails = [b for b in batches if len(b) == 2]
    assert len(emails) == 1
    return emails[0]


def emails(database: Database, ids: list[int]) -> list[Message]:
    with database.session() as session:
        return list(session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limits_and_server_errors_go_back_to_queued_and_the_retry_sends_once(
    batch: list[int], database: Database, sink: SendGridSink, status: int
) -> None:
    sink.fail_next(status)
    with pytest.raises(TransientSendError, match=str(status)):
        deliver_batch(batch)
    assert [m.status for m in emails(database, batch)] == [MessageStatus.QUEUED] * 2
    assert sink.messages() == []

    deliver_batch(batch)  # what RQ's Retry does later
    assert [m.status for m in emails(database, batch)] == [MessageStatus.SENT] * 2
    assert len(sink.messages()) == 2


def test_the_worker_schedules_the_retry_with_backoff(
    batch: list[int], database: Database, sink: SendGridSink, redis_conn: Redis, run_worker: Worker
) -> None:
    sink.fail_next(500)
    run_worker()
    delivery = Queue("delivery", connection=redis_conn)
    assert ScheduledJobRegistry(queue=delivery).count == 1  # RQ runs it again in 10 s
    assert [m.status for m in emails(database, batch)] == [MessageStatus.QUEUED] * 2
    assert sink.messages() == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "The from object must be provided for every email send."),
        (401, "The provided authorization grant is invalid, expired, or revoked"),
        (403, "The from address does not match a verified Sender Identity."),
        (413, "Payload Too Large"),
    ],
)
def test_other_client_errors_fail_with_the_providers_reason_and_are_not_retried(
    batch: list[int], database: Database, sink: SendGridSink, status: int, message: str
) -> None:
    sink.fail_next(status, body={"errors": [{"message": message, "field": None, "help": None}]})
    deliver_batch(batch)  # no exception: nothing for RQ to retry
    failed = emails(database, batch)
    assert [m.status for m in failed] == [MessageStatus.FAILED] * 2
    assert all(str(status) in (m.reason or "") and message in (m.reason or "") for m in failed)
    deliver_batch(batch)
    assert sink.messages() == [] and len(sink.rejected) == 1


def test_a_read_timeout_is_unknown_and_never_resent(
    batch: list[int], database: Database, sink: SendGridSink
) -> None:
    sink.delay_next(3.0)  # the client gives up after 2 s; SendGrid has the mail
    deliver_batch(batch)
    assert [m.status for m in emails(database, batch)] == [MessageStatus.UNKNOWN] * 2
    deliver_batch(batch)
    sink.wait_for(2)
    time.sleep(0.2)
    assert len(sink.requests) == 1


def test_a_connection_broken_after_the_request_is_unknown_and_never_resent(
    batch: list[int], database: Database, sink: SendGridSink
) -> None:
    sink.drop_next()
    deliver_batch(batch)
    unknown = emails(database, batch)
    assert [m.status for m in unknown] == [MessageStatus.UNKNOWN] * 2
    assert all("answer was lost" in (m.reason or "") for m in unknown)
    deliver_batch(batch)
    assert len(sink.requests) == 1 and len(sink.messages()) == 2


def test_an_unreachable_provider_is_retried_later(
    batch: list[int], database: Database, sink: SendGridSink
) -> None:
    sink.stop()  # connection refused: SendGrid never saw the request
    with pytest.raises(TransientSendError, match="unreachable"):
        deliver_batch(batch)
    assert [m.status for m in emails(database, batch)] == [MessageStatus.QUEUED] * 2
