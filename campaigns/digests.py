"""Weekly digests: one email per segment to CS ops with each report's headline numbers for last week
and what changed against the week before.

Recipients are console users who asked for it (`DigestPreference`, optionally limited to some
segments) and `NORTHSTAR_OPS_EMAIL` (every segment). Delivery follows the campaigns path: the
scheduler's hourly hook (`schedule_weekly_digests`) writes one `DigestSend` ledger row per (week,
segment, recipient) — unique, so a second scheduler, a retried tick or a restart never adds another —
and queues one RQ job per row on the `reports` queue after that commit. The job claims its row
(queued → sending) before the request to SendGrid, so a duplicated job sends nothing; a crash
between the claim and the answer leaves the row `sending` (at most once, like owner notices).
"""

from __future__ import annotations

import datetime as dt
import enum
import html
import json
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import Date, ForeignKey, String, UniqueConstraint, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.mail import (
    AmbiguousSendError,
    BulkEmail,
    MailBackend,
    PermanentSendError,
    Recipient,
    TransientSendError,
)
from engine import queue
from engine.accounts import Account, str_enum
from engine.config import Settings
from engine.db import Base, Database, utcnow
from engine.errors import NorthstarError
from engine.queue import enqueue_after_commit
from engine.reports import Column, Filters, ReportResult, available_reports, run_report
from engine.users import User

log = logging.getLogger(__name__)

DIGEST_WEEKDAY = 0  # Monday (UTC): the digest covers the ISO week that just ended
DIGEST_HOUR = 7  # not before 07:00 UTC, so late events of Sunday are in
DIGEST_RETRY = Retry(max=4, interval=[60, 300, 900, 3600])
CATEGORY = "digest"
MAX_SEGMENTS_LISTED = 50
SUMMARY_CACHE_S = 86_400
HEADLINE_WORDS = {"ttv": "time to value", "kr": "KR", "nps": "NPS", "csat": "CSAT", "pct": "%"}


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


# -- composing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadlineChange:
    label: str
    this_week: str
    previous: str
    change: str


@dataclass(frozen=True)
class ReportSummary:
    name: str
    title: str
    url: str
    lines: list[HeadlineChange]


@dataclass(frozen=True)
class ComposedDigest:
    subject: str
    html: str
    text: str


def summarise(session: Session, settings: Settings, segment: str, week: dt.date) -> list[ReportSummary]:
    """Each available report's headline for `week` next to the week before, for one segment."""
    current = Filters(week, week + dt.timedelta(days=6), segment=segment)
    previous = Filters(week - dt.timedelta(days=7), week - dt.timedelta(days=1), segment=segment)
    summaries = []
    for definition in available_reports():
        try:
            now_result = run_report(session, definition.name, current)
            before = run_report(session, definition.name, previous)
        except NorthstarError as exc:  # e.g. the segment no longer exists: say so, send the rest
            log.warning("digest %s/%s: %s", segment, definition.name, exc.detail)
            continue
        query = urlencode(current.as_params())
        url = f"{settings.public_url}/admin/reports/{definition.name}?{query}"
        summaries.append(ReportSummary(definition.name, now_result.title, url, _changes(now_result, before)))
    return summaries


def cached_summaries(
    session: Session, settings: Settings, segment: str, week: dt.date
) -> list[ReportSummary]:
    """summarise(), computed once per (week, segment) however many recipients it has: the first
    job stores it in Redis for a day, the others read it (each recipient costs one email, not twelve
    report runs)."""
    redis = queue.current().redis
    key = f"northstar:digest:{week.isoformat()}:{segment}"
    if redis is not None:
        try:
            raw = redis.get(key)
        except RedisError as exc:
            log.warning("digest cache unavailable: %s", exc)
            raw = None
        if raw:
            return [
                ReportSummary(s["name"], s["title"], s["url"], [HeadlineChange(*line) for line in s["lines"]])
                for s in json.loads(raw)
            ]
    summaries = summarise(session, settings, segment, week)
    if redis is not None:
        stored = [
            {
                "name": s.name,
                "title": s.title,
                "url": s.url,
                "lines": [[x.label, x.this_week, x.previous, x.change] for x in s.lines],
            }
            for s in summaries
        ]
        try:
            redis.set(key, json.dumps(stored), ex=SUMMARY_CACHE_S)
        except RedisError as exc:
            log.warning("digest cache unavailable: %s", exc)
    return summaries


def _changes(result: ReportResult, before: ReportResult) -> list[HeadlineChange]:
    columns = {c.key: c for c in result.columns}
    lines = []
    for key, value in result.headline.items():
        kind = _kind(columns.get(key), key, value)
        label = columns[key].label if key in columns else _label(key, kind)
        old = before.headline.get(key)
        if value is None and old is None:
            continue  # nothing to say (a rate with no denominator either week)
        lines.append(
            HeadlineChange(label, _format(value, kind), _format(old, kind), _delta(value, old, kind))
        )
    return lines


def _label(key: str, kind: str) -> str:
    """A headline key with no column of its own as words: ttv_median_days -> Time to value median."""
    words = [HEADLINE_WORDS.get(word, word) for word in key.split("_")]
    if kind == "days" and len(words) > 1 and words[-1] == "days":
        words = words[:-1]  # the value already says "days"
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _kind(column: Column | None, key: str, value: float | int | None) -> str:
    if column is not None:
        return column.kind
    if isinstance(value, float) and any(h in key for h in ("rate", "share", "pct", "lift", "conversion")):
        return "pct"
    if "days" in key:
        return "days"
    return "int" if isinstance(value, int) else "number"


def _format(value: float | int | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "days":
        return f"{value:,.1f} days"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _delta(value: float | int | None, old: float | int | None, kind: str) -> str:
    if value is None or old is None:
        return "new" if old is None and value is not None else "–"
    change = value - old
    if abs(change) < 1e-9:
        return "no change"
    word = "up" if change > 0 else "down"
    if kind == "pct":
        amount = f"{abs(change) * 100:.1f} pts"
    elif kind == "int":
        amount = f"{abs(int(change)):,}"
    elif kind == "days":
        amount = f"{abs(change):,.1f} days"
    else:
        amount = f"{abs(change):,.2f}".rstrip("0").rstrip(".")
    return f"{'▲' if change > 0 else '▼'} {word} {amount}"


def compose_digest(
    settings: Settings, segment: str, week: dt.date, summaries: list[ReportSummary], *, personal: bool
) -> ComposedDigest:
    end = week + dt.timedelta(days=6)
    period = f"{week.strftime('%b %-d')} – {end.strftime('%b %-d, %Y')}"
    subject = f"Weekly digest · {segment} · {period}"
    blocks, text = [], [f"{segment}: the week of {period} against the week before.", ""]
    cell = "padding:6px 8px;border-bottom:1px solid #e3e7ec;"
    th = f'style="{cell}text-align:left;color:#5f6b7a;font-size:13px;"'
    thn = f'style="{cell}text-align:right;color:#5f6b7a;font-size:13px;"'
    td = f'style="{cell}font-size:14px;"'
    tdn = f'style="{cell}font-size:14px;text-align:right;"'
    for summary in summaries:
        rows = "".join(
            f"<tr><td {td}>{html.escape(line.label)}</td>"
            f"<td {tdn}><strong>{html.escape(line.this_week)}</strong></td>"
            f"<td {tdn}>{html.escape(line.previous)}</td><td {tdn}>{html.escape(line.change)}</td></tr>"
            for line in summary.lines
        )
        blocks.append(
            f'<h2 style="font-size:17px;margin:24px 0 6px;">{html.escape(summary.title)}</h2>'
            + (
                f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
                f'style="border-collapse:collapse;"><tr><th {th}>Measure</th><th {thn}>This week</th>'
                f"<th {thn}>Week before</th><th {thn}>Change</th></tr>{rows}</table>"
                if rows
                else '<p style="color:#5f6b7a;font-size:14px;">No numbers for this week.</p>'
            )
            + f'<p style="margin:8px 0 0;font-size:14px;"><a href="{html.escape(summary.url)}" '
            f'style="color:#2457d6;">Open the report</a></p>'
        )
        text.append(summary.title)
        text.extend(
            f"  {line.label}: {line.this_week} (week before {line.previous}; {line.change})"
            for line in summary.lines
        )
        text.extend([f"  Open the report: {summary.url}", ""])
    if not summaries:
        blocks.append("<p>No report could run for this segment this week.</p>")
        text.append("No report could run for this segment this week.")
    intro = (
        f'<h1 style="font-size:22px;margin:0 0 4px;">{html.escape(segment)}</h1>'
        f'<p style="margin:0;color:#5f6b7a;">Weekly digest for {html.escape(period)}, '
        "against the week before.</p>"
    )
    manage = f"{settings.public_url}/admin/reports#digest"
    why = (
        "You get this because you asked for the weekly digest in the Northstar console."
        if personal
        else "This goes to the CS ops address configured as NORTHSTAR_OPS_EMAIL."
    )
    page = _layout().format(
        subject=html.escape(subject),
        preheader=html.escape(f"{segment}: last week's reports and what changed"),
        body=intro + "".join(blocks),
        why=html.escape(why),
        manage=html.escape(manage),
        postal=html.escape(settings.postal_address),
    )
    text.extend(["--", why, f"Change your digest: {manage}", settings.postal_address])
    return ComposedDigest(subject, page, "\n".join(text) + "\n")


def _layout() -> str:
    return (resources.files("content") / "layouts" / "digest.html").read_text(encoding="utf-8")


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
