"""Weekly digests: one email per segment to CS ops with each report's headline numbers for last week
and what changed against the week before.

Recipients are console users who asked for it (`DigestPreference`, optionally limited to some
segments) and `NORTHSTAR_OPS_EMAIL` (every segment). Delivery follows the campaigns path: the
scheduler's hourly hook (`schedule_weekly_digests`) writes one `DigestSend` ledger row per (week,
segment, recipient) — unique, so a second scheduler, a retried tick or a restart never adds another —
and queues one RQ job per row on the `reports` queue after that commit. The job claims its row
(queued → sending) before the request to SendGrid, so a duplicated job sends nothing; a crash
between the claim and the answer leaves the row `sending` (at most once, like owner notices) until
the hourly hook marks it `unknown`. What the email says is composed in `campaigns.digest_compose`.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass
from typing import Any

from rq import Retry
from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.digest_compose import cached_summaries, compose_digest
from campaigns.mail import (
    AmbiguousSendError,
    BulkEmail,
    MailBackend,
    PermanentSendError,
    Recipient,
    TransientSendError,
)
from engine.accounts import Account, str_enum
from engine.config import Settings
from engine.db import Base, Database, utcnow
from engine.queue import enqueue_after_commit
from engine.users import User

log = logging.getLogger(__name__)

DIGEST_WEEKDAY = 0  # Monday (UTC): the digest covers the ISO week that just ended
DIGEST_HOUR = 7  # not before 07:00 UTC, so late events of Sunday are in
DIGEST_RETRY = Retry(max=4, interval=[60, 300, 900, 3600])
CATEGORY = "digest"
MAX_SEGMENTS_LISTED = 50


class DigestStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the provider may have sent it (timeout): never resent blindly


class DigestSend(Base):
    """The ledger: one row per (week, segment, recipient), written before anything is sent."""

    __tablename__ = "digest_sends"
    __table_args__ = (UniqueConstraint("week", "segment", "recipient"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[dt.date] = mapped_column(Date, index=True)  # the Monday of the week reported
    segment: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[DigestStatus] = mapped_column(str_enum(DigestStatus), default=DigestStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(String(300))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class DigestPreference(Base):
    """A console user wants the weekly digest: for every segment (`segments` empty) or only some."""

    __tablename__ = "digest_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    segments: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class DigestRecipient:
    email: str
    user_id: int | None
    segments: frozenset[str] | None  # None: every segment


# -- preferences ----------------------------------------------------------------------------------


def digest_preference(session: Session, user_id: int) -> DigestPreference | None:
    return session.get(DigestPreference, user_id)


def set_digest_preference(session: Session, user_id: int, segments: list[str] | None) -> None:
    """`segments` None stops the digest; an empty list means every segment."""
    found = session.get(DigestPreference, user_id)
    if segments is None:
        if found is not None:
            session.delete(found)
        return
    wanted = sorted({s.strip() for s in segments if s.strip()})[:MAX_SEGMENTS_LISTED]
    if found is None:
        session.add(DigestPreference(user_id=user_id, segments=wanted))
    else:
        found.segments = wanted


def digest_recipients(session: Session, settings: Settings) -> list[DigestRecipient]:
    rows = session.execute(
        select(User.id, User.email, DigestPreference.segments)
        .join(DigestPreference, DigestPreference.user_id == User.id)
        .order_by(User.email)
    )
    deactivated = getattr(User, "deactivated_at", None)  # console people (issue 10) may deactivate users
    inactive: set[int] = set()
    if deactivated is not None:
        inactive = set(session.scalars(select(User.id).where(deactivated.is_not(None))))
    found = [
        DigestRecipient(email, user_id, frozenset(segments) if segments else None)
        for user_id, email, segments in rows
        if user_id not in inactive
    ]
    ops = settings.ops_email
    if ops and ops.lower() not in {r.email.lower() for r in found}:
        found.append(DigestRecipient(ops, None, None))
    return found


# -- scheduling -----------------------------------------------------------------------------------


def week_due(now: dt.datetime) -> dt.date | None:
    """The Monday of the week whose digest is due at `now`: the week before the current one, once
    the current week's Monday 07:00 UTC has passed (so a scheduler down on Monday catches up)."""
    monday = now.date() - dt.timedelta(days=now.weekday())
    if now.weekday() == DIGEST_WEEKDAY and now.hour < DIGEST_HOUR:
        return None
    return monday - dt.timedelta(days=7)


def schedule_weekly_digests(session: Session, settings: Settings, *, now: dt.datetime) -> int:
    """Called from the scheduler's hourly hook: write this week's ledger rows and queue their jobs
    (after the caller commits). Returns how many were queued; 0 (two cheap queries) when none is due."""
    week = week_due(now)
    if week is None:
        return 0
    if session.scalar(select(DigestSend.id).where(DigestSend.week == week).limit(1)) is not None:
        return 0
    recipients = digest_recipients(session, settings)
    if not recipients:
        return 0
    segments = list(session.scalars(select(Account.segment).distinct().order_by(Account.segment)))
    rows = [
        {"week": week, "segment": segment, "recipient": r.email, "user_id": r.user_id, "created_at": now}
        for r in recipients
        for segment in segments
        if r.segments is None or segment in r.segments
    ]
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = list(
        session.scalars(
            insert(DigestSend)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["week", "segment", "recipient"])
            .returning(DigestSend.id)
        )
    )
    for digest_id in created:
        enqueue_after_commit(session, "reports", send_digest_job, digest_id, retry=DIGEST_RETRY)
    if created:
        log.info("digests: %d queued for the week of %s", len(created), week.isoformat())
    return len(created)


# -- sending --------------------------------------------------------------------------------------


def send_digest(database: Database, backend: MailBackend, digest_id: int, *, now: dt.datetime) -> bool:
    """Send one ledger row's digest; False when another job already claimed it. The reports run
    before the claim, so a failure while composing leaves the row queued for RQ's retry."""
    settings = database.settings
    with database.session() as session:
        digest = session.get(DigestSend, digest_id)
        if digest is None or digest.status != DigestStatus.QUEUED:
            return False
        week, segment, to, personal = (
            digest.week,
            digest.segment,
            digest.recipient,
            digest.user_id is not None,
        )
        summaries = cached_summaries(session, settings, segment, week)
    composed = compose_digest(settings, segment, week, summaries, personal=personal)
    with database.transaction() as session:
        claimed = session.execute(
            update(DigestSend)
            .where(DigestSend.id == digest_id, DigestSend.status == DigestStatus.QUEUED)
            .values(status=DigestStatus.SENDING, sent_at=now)  # the attempt's start (recovery reads it)
            .returning(DigestSend.id)
        ).first()
    if claimed is None:
        return False
    email = BulkEmail(
        settings.mail_from,
        composed.html,
        composed.text,
        # message_id 0: provider events for a digest must never match a campaign Message row.
        [Recipient(message_id=0, email=to, name="", subject=composed.subject, substitutions={})],
        category=CATEGORY,
    )
    try:
        provider_id = backend.send(email)
    except PermanentSendError as exc:
        _record(database, digest_id, DigestStatus.FAILED, str(exc)[:300])
        return False
    except AmbiguousSendError as exc:
        _record(database, digest_id, DigestStatus.UNKNOWN, str(exc)[:300])
        return False
    except TransientSendError as exc:
        _record(database, digest_id, DigestStatus.QUEUED, str(exc)[:300])
        raise  # RQ's Retry runs the job again; the row is claimable again
    _record(database, digest_id, DigestStatus.SENT, None, provider_id=provider_id, sent_at=now)
    return True


def _record(
    database: Database,
    digest_id: int,
    status: DigestStatus,
    reason: str | None,
    *,
    provider_id: str | None = None,
    sent_at: dt.datetime | None = None,
) -> None:
    with database.transaction() as session:
        session.execute(
            update(DigestSend)
            .where(DigestSend.id == digest_id, DigestSend.status == DigestStatus.SENDING)
            .values(status=status, reason=reason, provider_message_id=provider_id, sent_at=sent_at)
        )


ATTEMPT_TIMEOUT = dt.timedelta(minutes=15)  # an attempt is one HTTP request to the provider
STUCK_AFTER = dt.timedelta(hours=3)  # rows claimed before attempts were stamped: past every retry


def recover_stuck_digests(session: Session, *, now: dt.datetime) -> int:
    """Digests left `sending` by a worker that stopped between its claim and the provider's answer
    (killed, the machine lost) become `unknown`: the email may have gone out, so it is never sent
    again blindly (as campaign messages, ADR 0005), and the row no longer looks in flight. The
    claim stamps `sent_at` (the attempt's start, replaced by the send time when it succeeds), so a
    row `sending` for longer than one request can take was abandoned. Returns how many it settled."""
    abandoned = or_(
        DigestSend.sent_at < now - ATTEMPT_TIMEOUT,
        and_(DigestSend.sent_at.is_(None), DigestSend.created_at < now - STUCK_AFTER),
    )
    settled = session.execute(
        update(DigestSend)
        .where(DigestSend.status == DigestStatus.SENDING, abandoned)
        .values(status=DigestStatus.UNKNOWN, reason="the sending worker stopped mid-send: not resent")
        .returning(DigestSend.id)
    ).all()
    if settled:
        log.warning("%d digests were left sending by a stopped worker: marked unknown", len(settled))
    return len(settled)


def send_digest_job(digest_id: int) -> bool:
    """RQ entry point (queue `reports`): takes the ledger row's id, safe to run twice."""
    from campaigns.mail import backend_for
    from engine import db

    database = db.current()
    return send_digest(database, backend_for(database.settings), int(digest_id), now=utcnow())
