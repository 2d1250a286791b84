"""Weekly digests on the real services: ledger rows per (week, segment, recipient) written by the
scheduler's hourly hook, RQ jobs on the `reports` queue, SendGrid (the local sink), sent once."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from campaigns.digests import (
    DigestSend,
    DigestStatus,
    digest_recipients,
    recover_stuck_digests,
    schedule_weekly_digests,
    send_digest,
    set_digest_preference,
    week_due,
)
from campaigns.mail import TransientSendError, backend_for
from campaigns.sink import SendGridSink
from campaigns.ticker import refresh_all_plans
from engine.config import Settings
from engine.db import Database, utcnow
from engine.users import Role, create_user
from tests.test_admin_plans import make_plan

OPS = "cs-ops@northstar.example"
MONDAY_9 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(ops_email=OPS)


@pytest.fixture
def accounts(database: Database, recruiting: dict[str, int]) -> None:
    make_plan(database, "acme")  # starter
    make_plan(database, "globex", segment="enterprise", stage="adoption")


def subscribe(database: Database, email: str, segments: list[str] | None) -> None:
    with database.transaction() as session:
        user = create_user(session, email, "a long enough password", role=Role.VIEWER)
        set_digest_preference(session, user.id, segments)


def ledger(database: Database) -> list[tuple[str, str, DigestStatus]]:
    with database.session() as session:
        rows = session.scalars(select(DigestSend).order_by(DigestSend.recipient, DigestSend.segment))
        return [(r.recipient, r.segment, r.status) for r in rows]


def test_the_digest_for_last_week_is_due_from_monday_seven_utc() -> None:
    assert week_due(dt.datetime(2026, 11, 30, 6, 59, tzinfo=dt.UTC)) is None
    assert week_due(dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 23)
    # A scheduler that was down on Monday catches up later in the week.
    assert week_due(dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 23)


def test_one_email_per_segment_and_recipient_sent_once(
    database: Database,
    accounts: None,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
    redis_conn: Redis,
) -> None:
    subscribe(database, "lena@northstar.example", ["starter"])
    with database.transaction() as session:
        assert schedule_weekly_digests(session, database.settings, now=MONDAY_9) == 3
    with database.transaction() as session:  # the next hourly hook: already written, nothing added
        assert schedule_weekly_digests(session, database.settings, now=MONDAY_9 + dt.timedelta(hours=1)) == 0
    assert ledger(database) == [
        (OPS, "enterprise", DigestStatus.QUEUED),
        (OPS, "starter", DigestStatus.QUEUED),
        ("lena@northstar.example", "starter", DigestStatus.QUEUED),
    ]

    run_worker()

    messages = sorted(sink.messages(), key=lambda m: (m.to, m.subject or ""))
    assert [(m.to, m.subject) for m in messages] == [
        (OPS, "Weekly digest · enterprise · Nov 23 – Nov 29, 2026"),
        (OPS, "Weekly digest · starter · Nov 23 – Nov 29, 2026"),
        ("lena@northstar.example", "Weekly digest · starter · Nov 23 – Nov 29, 2026"),
    ]
    starter = messages[1]
    if path := os.environ.get("NORTHSTAR_SAVE_DIGEST"):  # to look at it in a browser
        Path(path).write_text(starter.html or "", encoding="utf-8")
    assert starter.categories == ["digest"]
    assert starter.custom_args == {"message_id": "0"}  # never matches a campaign message's events
    assert starter.html and "This week" in starter.html and "Week before" in starter.html
    assert (
        "/admin/reports/plan-adoption?from=2026-11-23&amp;to=2026-11-29&amp;segment=starter" in starter.html
    )
    assert starter.text and "Open the report: http://northstar.test/admin/reports/" in starter.text
    assert "NORTHSTAR_OPS_EMAIL" in starter.text
    assert "asked for the weekly digest" in (messages[2].text or "")
    assert {status for _to, _segment, status in ledger(database)} == {DigestStatus.SENT}
    # The reports ran once per segment; the second starter email reused them.
    assert sorted(redis_conn.keys("northstar:digest:*")) == [
        b"northstar:digest:2026-11-23:enterprise",
        b"northstar:digest:2026-11-23:starter",
    ]
    assert starter.html.split("</h1>")[1].split("Change your digest")[0].count("<tr>") == (
        (messages[2].html or "").split("</h1>")[1].split("Change your digest")[0].count("<tr>")
    )

    # A duplicated job finds its row already sent and sends nothing.
    with database.session() as session:
        first = session.scalars(select(DigestSend.id)).first()
    assert first is not None
    assert send_digest(database, backend_for(database.settings), first, now=MONDAY_9) is False
    assert sink.message_count == 3


def test_a_provider_hiccup_leaves_the_row_queued_for_the_retry(
    database: Database, accounts: None, sink: SendGridSink
) -> None:
    with database.transaction() as session:
        schedule_weekly_digests(session, database.settings, now=MONDAY_9)
    with database.session() as session:
        digest_id = session.scalars(select(DigestSend.id).where(DigestSend.segment == "starter")).one()
    sink.fail_next(503)
    with pytest.raises(TransientSendError):  # claimed, stamped, then put back unstamped
        send_digest(database, backend_for(database.settings), digest_id, now=MONDAY_9)
    assert (OPS, "starter", DigestStatus.QUEUED) in ledger(database)
    with database.session() as session:
        assert session.get_one(DigestSend, digest_id).sent_at is None
    assert send_digest(database, backend_for(database.settings), digest_id, now=MONDAY_9) is True
    assert (OPS, "starter", DigestStatus.SENT) in ledger(database)
    assert sink.message_count == 1
    with database.transaction() as session:  # sent: the stamp is the send time, nothing to recover
        assert session.get_one(DigestSend, digest_id).sent_at is not None
        assert recover_stuck_digests(session, now=MONDAY_9 + dt.timedelta(days=1)) == 0


def test_a_digest_left_sending_by_a_stopped_worker_becomes_unknown_and_is_not_resent(
    database: Database, accounts: None, sink: SendGridSink
) -> None:
    with database.transaction() as session:
        schedule_weekly_digests(session, database.settings, now=MONDAY_9)
        rows = session.scalars(select(DigestSend).order_by(DigestSend.id)).all()
        assert len(rows) == 2
        for row in rows:  # both claimed; written four hours ago
            row.status, row.created_at = DigestStatus.SENDING, MONDAY_9 - dt.timedelta(hours=4)
        old, current = rows
        old.sent_at = None  # claimed before claims were stamped
        current.sent_at = MONDAY_9 - dt.timedelta(minutes=1)  # an attempt under way
        ids = [old.id, current.id]

    def statuses() -> list[DigestStatus]:
        with database.session() as session:
            return [session.get_one(DigestSend, i).status for i in ids]

    with database.transaction() as session:
        assert recover_stuck_digests(session, now=MONDAY_9) == 1
    assert statuses() == [DigestStatus.UNKNOWN, DigestStatus.SENDING]
    later = MONDAY_9 + dt.timedelta(minutes=20)  # that attempt's worker never answered
    with database.transaction() as session:
        assert recover_stuck_digests(session, now=later) == 1
        assert recover_stuck_digests(session, now=later) == 0  # settled once
    assert statuses() == [DigestStatus.UNKNOWN, DigestStatus.UNKNOWN]
    with database.session() as session:
        reason = session.get_one(DigestSend, ids[0]).reason
        assert reason is not None and "not resent" in reason
    assert send_digest(database, backend_for(database.settings), ids[0], now=later) is False
    assert sink.message_count == 0


def test_nobody_to_tell_means_nothing_is_written(database: Database, accounts: None) -> None:
    settings = database.settings.with_overrides(ops_email=None)
    with database.transaction() as session:
        assert digest_recipients(session, settings) == []
        assert schedule_weekly_digests(session, settings, now=MONDAY_9) == 0
    assert ledger(database) == []


def test_the_schedulers_hourly_hook_writes_the_due_digests(database: Database, accounts: None) -> None:
    refresh_all_plans(database)
    expected = 0 if week_due(utcnow()) is None else 2
    assert len(ledger(database)) == expected
