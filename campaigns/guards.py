"""Guards before every send, each recorded on the message: suppression (unsubscribed, bounced,
spam report, category opt-out), holdout, frequency caps per account and per contact across email
and in-app, and the send window in the contact's timezone (quiet hours defer, never drop)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session

from campaigns.models import Enrollment, Message, MessageStatus
from engine.accounts import Contact
from engine.db import id_in
from engine.privacy import email_erased

CAP_WINDOW = dt.timedelta(days=7)
# Messages that reached (or are on their way to) a person count against the caps.
COUNTED = (
    MessageStatus.QUEUED,
    MessageStatus.DEFERRED,
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.UNKNOWN,
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
    MessageStatus.SEEN,
    MessageStatus.DISMISSED,
)


@dataclass(frozen=True)
class Caps:
    account_per_week: int = 3
    contact_per_week: int = 3


def held_out(account_id: int, campaign_key: str, percent: int) -> bool:
    """A stable, random-looking share of accounts per campaign (hash of account and campaign)."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{campaign_key}:{account_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


def suppression(contact: Contact, category: str) -> str | None:
    session = object_session(contact)
    if session is not None and email_erased(session, contact.email):
        return "erased: privacy request"
    return opted_out(contact, category)


class Reachable(Protocol):
    """What the guards read about a contact: an ORM `Contact`, or a row of the bulk tick."""

    @property
    def unsubscribed_at(self) -> dt.datetime | None: ...
    @property
    def bounced_at(self) -> dt.datetime | None: ...
    @property
    def spam_reported_at(self) -> dt.datetime | None: ...
    @property
    def unsubscribed_categories(self) -> list[Any]: ...


def opted_out(contact: Reachable, category: str) -> str | None:
    """The contact's own suppressions (the bulk tick checks erased emails itself, per chunk)."""
    if contact.unsubscribed_at is not None:
        return "unsubscribed"
    if contact.bounced_at is not None:
        return "bounced"
    if contact.spam_reported_at is not None:
        return "spam report"
    if category in (contact.unsubscribed_categories or []):
        return f"unsubscribed from {category}"
    return None


@dataclass
class CapLedger:
    """Counts of the trailing 7 days for the accounts of one tick, updated as the tick writes."""

    caps: Caps
    nudges: Counter[int] = field(default_factory=Counter)  # account id → campaign steps sent
    messages: Counter[int] = field(default_factory=Counter)  # contact id → messages

    @classmethod
    def load(
        cls,
        session: Session,
        caps: Caps,
        account_ids: Iterable[int],
        now: dt.datetime,
        *,
        portable: bool = False,
    ) -> CapLedger:
        """On PostgreSQL as plain rows (CapReads) unless `portable` (the ORM's queries, as on
        SQLite: the reference tests/test_tick_reads.py compares them with)."""
        ledger = cls(caps)
        ids = list(account_ids)
        if not ids or (caps.account_per_week <= 0 and caps.contact_per_week <= 0):
            return ledger
        if session.get_bind().dialect.name == "postgresql" and not portable:
            driver = session.connection().connection.driver_connection
            return CapReads(driver, caps, "{" + ",".join(map(str, ids)) + "}", now).collect()  # type: ignore[arg-type]
        since = now - CAP_WINDOW
        recent = (
            select(Enrollment.account_id, Message.enrollment_id, Message.step_id, Message.contact_id)
            .join(Enrollment, Enrollment.id == Message.enrollment_id)
            .where(
                id_in(session, Enrollment.account_id, ids),
                Message.created_at >= since,
                Message.status.in_(COUNTED),
            )
            .subquery()
        )
        steps = select(recent.c.account_id, recent.c.enrollment_id, recent.c.step_id).distinct().subquery()
        for account_id, n in session.execute(
            select(steps.c.account_id, func.count()).group_by(steps.c.account_id)
        ):
            ledger.nudges[account_id] = int(n)
        for contact_id, n in session.execute(
            select(recent.c.contact_id, func.count()).group_by(recent.c.contact_id)
        ):
            ledger.messages[contact_id] = int(n)
        return ledger

    def account_capped(self, account_id: int) -> str | None:
        cap = self.caps.account_per_week
        if cap > 0 and self.nudges[account_id] >= cap:
            return f"frequency cap: {cap} nudges per account per week"
        return None

    def contact_capped(self, contact_id: int) -> str | None:
        cap = self.caps.contact_per_week
        if cap > 0 and self.messages[contact_id] >= cap:
            return f"frequency cap: {cap} messages per contact per week"
        return None


# The trailing week's counted messages of the tick's accounts: campaign steps per account ('a') and
# messages per contact ('c'), in one statement.
_RECENT = (
    "WITH recent AS (SELECT e.account_id, m.enrollment_id, m.step_id, m.contact_id FROM messages AS m "
    "JOIN enrollments AS e ON e.id = m.enrollment_id WHERE e.account_id = ANY(%s::int[]) "
    "AND m.created_at >= %s AND m.status = ANY(%s::varchar[])) "
    "SELECT 'a', account_id, count(*) FROM (SELECT DISTINCT account_id, enrollment_id, step_id FROM recent) "
    "AS s GROUP BY account_id UNION ALL SELECT 'c', contact_id, count(*) FROM recent GROUP BY contact_id"
)


class CapReads:
    """CapLedger.load on PostgreSQL, as plain psycopg rows; the query is sent when this is built and
    read by `collect()` (in psycopg's pipeline mode, campaigns.bulk sends it with its other reads)."""

    def __init__(
        self, driver: psycopg.Connection[Any], caps: Caps, account_ids: str, now: dt.datetime
    ) -> None:
        self.caps = caps
        self.counting = caps.account_per_week > 0 or caps.contact_per_week > 0
        if self.counting:
            statuses = [status.value for status in COUNTED]
            self.cursor = driver.cursor().execute(_RECENT, (account_ids, now - CAP_WINDOW, statuses))

    def collect(self) -> CapLedger:
        ledger = CapLedger(self.caps)
        if self.counting:
            for what, key, n in self.cursor.fetchall():
                (ledger.nudges if what == "a" else ledger.messages)[key] = int(n)
        return ledger


class Zoned(Protocol):
    @property
    def timezone(self) -> str | None: ...


def contact_zone(contact: Zoned, account: Zoned) -> ZoneInfo:
    for name in (contact.timezone, account.timezone, "UTC"):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def window_opens(window: dict[str, Any] | None, zone: ZoneInfo, now: dt.datetime) -> dt.datetime | None:
    """None when `now` is inside the send window in `zone`; else the UTC moment it next opens."""
    if not window:
        return None
    start, end = int(window.get("start_hour", 8)), int(window.get("end_hour", 20))
    weekdays_only = bool(window.get("weekdays_only", False))
    local = now.astimezone(zone)

    def open_at(day: dt.date) -> bool:
        return not weekdays_only or day.weekday() < 5

    if open_at(local.date()) and start <= local.hour < end:
        return None
    day = local.date()
    if local.hour >= start or not open_at(day):
        day += dt.timedelta(days=1)
    while not open_at(day):
        day += dt.timedelta(days=1)
    # Wall-clock start in the zone (DST-safe: zoneinfo resolves the offset of that local time).
    opening = dt.datetime(day.year, day.month, day.day, start, tzinfo=zone)
    return opening.astimezone(dt.UTC)
