"""SendGrid's event webhook: signature and freshness checks, each event stored once (`sg_event_id`),
forward-only message statuses, contact suppressions, and the reconciler for ambiguous sends."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from campaigns.models import Message, MessageStatus, WebhookEvent
from campaigns.webhook_request import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    WebhookNotConfigured,
    parse_events,
    verify_request,
)
from engine.accounts import Contact
from engine.db import MAX_ID

log = logging.getLogger(__name__)

# SendGrid retries a failed webhook post for 24 h: after that, silence means it never had the mail.
UNKNOWN_GRACE = dt.timedelta(hours=24)
UNKNOWN_FAILED_REASON = "no provider event after 24 h; not resent to avoid a duplicate"
RECONCILE_LIMIT = 5000
# Ids per IN (...): a batch costs a handful of statements, never one per event.
CHUNK = 2000

# How far a message got. Events only move a message forward: a late `delivered` never undoes
# `clicked`. A later asynchronous bounce outranks `delivered`; an open or a click outranks a bounce
# (the mail demonstrably arrived). `failed` is here because the reconciler's "failed" is a guess
# that a late event may still correct; statuses missing here (suppressed, deferred, seen,
# dismissed) were never handed to SendGrid and no event changes them.
PROGRESS: dict[MessageStatus, int] = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 0,
    MessageStatus.UNKNOWN: 0,
    MessageStatus.FAILED: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.BOUNCED: 3,
    MessageStatus.DROPPED: 3,
    MessageStatus.OPENED: 4,
    MessageStatus.CLICKED: 5,
}
# Any event about a message proves SendGrid accepted it: at least `sent`.
EVENT_STATUS: dict[str, MessageStatus] = {
    "processed": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "open": MessageStatus.OPENED,
    "click": MessageStatus.CLICKED,
    "bounce": MessageStatus.BOUNCED,
    "dropped": MessageStatus.DROPPED,
}
EVENT_TIMESTAMP = {"delivered": "delivered_at", "open": "opened_at", "click": "clicked_at"}
CONTACT_EVENTS = {
    "spamreport": "spam_reported_at",
    "unsubscribe": "unsubscribed_at",
    "group_unsubscribe": "unsubscribed_at",
}
# SendGrid drops mail to addresses on its own suppression lists: mirror them so we stop trying.
DROP_REASONS = {
    "bounced address": "bounced_at",
    "spam reporting address": "spam_reported_at",
    "unsubscribed address": "unsubscribed_at",
}
KNOWN_EVENTS = {*EVENT_STATUS, *CONTACT_EVENTS, "deferred", "group_resubscribe"}
CONTACT_COLUMNS = ("bounced_at", "spam_reported_at", "unsubscribed_at")


@dataclass
class WebhookReceipt:
    received: int = 0
    stored: int = 0  # new events
    duplicates: int = 0  # sg_event_id seen before (SendGrid retried or replayed the post)
    unmatched: int = 0  # no message of ours with that message_id: stored and logged
    unknown_types: int = 0
    skipped: int = 0  # array items that are not JSON objects


@dataclass
class ReconcileResult:
    resolved: int = 0
    failed: int = 0
    waiting: int = 0


# -- storing and applying events --------------------------------------------------------------


@dataclass
class _Event:
    provider_event_id: str
    kind: str
    message_ref: int | None
    email: str
    occurred_at: dt.datetime | None
    payload: dict[str, Any]
    message_id: int | None = None


@dataclass
class _MessageState:
    id: int
    contact_id: int
    email: str
    status: MessageStatus
    reason: str | None
    sent_at: dt.datetime | None
    delivered_at: dt.datetime | None
    opened_at: dt.datetime | None
    clicked_at: dt.datetime | None
    updated_at: dt.datetime
    changed: bool = False


@dataclass
class _ContactChanges:
    values: dict[int, dict[str, dt.datetime]] = field(default_factory=dict)

    def stamp(self, contact_id: int, column: str, when: dt.datetime) -> None:
        columns = self.values.setdefault(contact_id, {})
        columns[column] = min(columns.get(column, when), when)


def record_events(session: Session, items: Sequence[Any], *, now: dt.datetime) -> WebhookReceipt:
    """Store every new event once and apply it to its message and contact. A constant number of
    statements per batch; a replayed batch changes nothing."""
    receipt = WebhookReceipt(received=len(items))
    events: dict[str, _Event] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            receipt.skipped += 1
            log.warning("sendgrid webhook: item %d is %s, not an event object; skipped", index, type(item))
            continue
        event = _event(_without_nul(item), now)
        if event.provider_event_id in events:
            receipt.duplicates += 1
            continue
        events[event.provider_event_id] = event
    refs = sorted({e.message_ref for e in events.values() if e.message_ref is not None})
    states = _lock_messages(session, refs)
    unmatched: list[_Event] = []
    for event in events.values():
        state = states.get(event.message_ref) if event.message_ref is not None else None
        if state is not None and (not event.email or event.email == state.email.lower()):
            event.message_id = state.id
        else:
            unmatched.append(event)
    new_ids = _insert_new(session, list(events.values()), now)
    receipt.duplicates += len(events) - len(new_ids)
    fresh = [e for e in events.values() if e.provider_event_id in new_ids]
    receipt.stored = len(fresh)
    contacts = _ContactChanges()
    for event in sorted(fresh, key=lambda e: e.occurred_at or now):
        if event.kind not in KNOWN_EVENTS:
            receipt.unknown_types += 1
        if event.message_id is not None:
            _apply_event(
                states[event.message_id], event.kind, event.payload, event.occurred_at or now, contacts
            )
    _write(session, states.values(), contacts, now)
    unmatched_new = [e for e in unmatched if e.provider_event_id in new_ids]
    receipt.unmatched = len(unmatched_new)
    if unmatched_new:
        log.warning(
            "sendgrid webhook: %d event(s) for no message of ours, stored unlinked: %s",
            len(unmatched_new),
            ", ".join(
                f"{e.kind} sg_event_id={e.provider_event_id} message_id={e.payload.get('message_id')!r}"
                for e in unmatched_new[:10]
            ),
        )
    unknown = sorted({e.kind for e in fresh if e.kind not in KNOWN_EVENTS})
    if unknown:
        log.warning(
            "sendgrid webhook: stored %d event(s) of unknown types %s", receipt.unknown_types, unknown
        )
    return receipt


def reconcile_unknown(
    session: Session, *, now: dt.datetime, grace: dt.timedelta = UNKNOWN_GRACE
) -> ReconcileResult:
    """Resolve `unknown` sends (the request timed out) from the events SendGrid posted for them;
    after `grace` without any event, mark them `failed`. Never resends: SendGrid has no idempotency
    key, so a resend could reach the customer twice."""
    result = ReconcileResult()
    ids = list(
        session.scalars(
            select(Message.id)
            .where(Message.status == MessageStatus.UNKNOWN)
            .order_by(Message.id)
            .limit(RECONCILE_LIMIT)
        )
    )
    states = {i: s for i, s in _lock_messages(session, ids).items() if s.status == MessageStatus.UNKNOWN}
    if not states:
        return result
    contacts = _ContactChanges()
    for ref_ids in _chunks(sorted(states), CHUNK):
        for kind, message_id, occurred_at, received_at, payload in session.execute(
            select(
                WebhookEvent.event,
                WebhookEvent.message_id,
                WebhookEvent.occurred_at,
                WebhookEvent.received_at,
                WebhookEvent.payload,
            )
            .where(WebhookEvent.message_id.in_(ref_ids))
            .order_by(WebhookEvent.occurred_at, WebhookEvent.id)
        ):
            _apply_event(states[message_id], kind, payload, occurred_at or received_at, contacts)
    failed: list[int] = []
    for state in states.values():
        if state.status != MessageStatus.UNKNOWN:
            result.resolved += 1
        elif (state.sent_at or state.updated_at) <= now - grace:  # sent_at: when the attempt began
            state.status, state.reason, state.changed = MessageStatus.FAILED, UNKNOWN_FAILED_REASON, True
            failed.append(state.id)
        else:
            result.waiting += 1
    result.failed = len(failed)
    _write(session, states.values(), contacts, now)
    if result.resolved or failed:
        log.info(
            "reconciled unknown sends: %d resolved from SendGrid events, %d failed after %s without"
            " any event (not resent; message ids %s)",
            result.resolved,
            len(failed),
            grace,
            failed[:20],
        )
    return result


def _event(item: dict[str, Any], now: dt.datetime) -> _Event:
    sg_event_id = item.get("sg_event_id")
    provider_event_id = str(sg_event_id) if isinstance(sg_event_id, str | int) and sg_event_id != "" else ""
    if not provider_event_id or len(provider_event_id) > 200:
        # SendGrid always sends one; without it, the content itself identifies a retried post.
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
        provider_event_id = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    ref = item.get("message_id")  # our custom_args arrive as top-level keys
    message_ref = int(ref) if isinstance(ref, str | int) and str(ref).isdigit() else None
    if message_ref is not None and message_ref > MAX_ID:
        message_ref = None
    email = item.get("email")
    return _Event(
        provider_event_id=provider_event_id,
        kind=str(item.get("event") or "")[:40],
        message_ref=message_ref,
        email=email.strip().lower() if isinstance(email, str) else "",
        occurred_at=_timestamp(item.get("timestamp")),
        payload=item,
    )


def _timestamp(value: object) -> dt.datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _without_nul(value: Any) -> Any:
    """PostgreSQL's JSONB refuses \\u0000; a stray one must not cost the whole batch."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def _lock_messages(session: Session, ids: Sequence[int]) -> dict[int, _MessageState]:
    """The messages events refer to, locked in id order (two concurrent posts cannot deadlock, and
    the delivery job's outcome update waits for us)."""
    states: dict[int, _MessageState] = {}
    for chunk in _chunks(list(ids), CHUNK):
        rows = session.execute(
            select(
                Message.id,
                Message.contact_id,
                Contact.email,
                Message.status,
                Message.reason,
                Message.sent_at,
                Message.delivered_at,
                Message.opened_at,
                Message.clicked_at,
                Message.updated_at,
            )
            .join(Contact, Contact.id == Message.contact_id)
            .where(Message.id.in_(chunk))
            .order_by(Message.id)
            .with_for_update(of=Message)
        )
        for row in rows:
            states[row.id] = _MessageState(*row)
    return states


def _insert_new(session: Session, events: list[_Event], now: dt.datetime) -> set[str]:
    """INSERT … ON CONFLICT (provider_event_id) DO NOTHING: returns the ids that were new, so two
    concurrent posts of the same batch apply it once."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(WebhookEvent)
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(WebhookEvent.provider_event_id)
        # One multi-row INSERT for any batch SendGrid posts (≈768 KB, a few thousand events), and
        # 6 columns x 5,000 rows stays under PostgreSQL's 65,535 parameters per statement.
        .execution_options(insertmanyvalues_page_size=5000)
    )
    rows = [
        {
            "provider_event_id": e.provider_event_id,
            "event": e.kind,
            "message_id": e.message_id,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": now,
        }
        for e in events
    ]
    new: set[str] = set(session.scalars(statement, rows)) if rows else set()
    return new


def _apply_event(
    state: _MessageState, kind: str, payload: dict[str, Any], when: dt.datetime, contacts: _ContactChanges
) -> None:
    if state.status in PROGRESS:
        target = EVENT_STATUS.get(kind, MessageStatus.SENT)
        if PROGRESS[target] > PROGRESS[state.status]:
            state.reason = _reason(kind, payload, state.status)
            state.status = target
            state.changed = True
        if state.sent_at is None and PROGRESS[state.status] >= PROGRESS[MessageStatus.SENT]:
            state.sent_at, state.changed = when, True
    if column := EVENT_TIMESTAMP.get(kind):
        current = getattr(state, column)
        if current is None or when < current:
            setattr(state, column, when)
            state.changed = True
    if column := _contact_column(kind, payload):
        contacts.stamp(state.contact_id, column, when)


def _contact_column(kind: str, payload: dict[str, Any]) -> str | None:
    """Which suppression an event sets on the contact, if any."""
    if kind == "bounce":
        # A block is the receiving server refusing for now (reputation, content): SendGrid does not
        # suppress the address for it, nor do we.
        return None if str(payload.get("type") or "bounce").lower() == "blocked" else "bounced_at"
    if kind == "dropped":
        return DROP_REASONS.get(str(payload.get("reason") or "").strip().lower())
    return CONTACT_EVENTS.get(kind)


def _reason(kind: str, payload: dict[str, Any], previous: MessageStatus) -> str | None:
    detail = str(payload.get("reason") or payload.get("response") or payload.get("status") or "").strip()
    if kind == "bounce":
        return f"bounce ({payload.get('type') or 'bounce'}): {detail or 'no reason given'}"[:300]
    if kind == "dropped":
        return f"dropped: {detail or 'no reason given'}"[:300]
    if previous in (MessageStatus.UNKNOWN, MessageStatus.FAILED):
        return f"was {previous.value}; SendGrid's {kind or 'unnamed'} event shows it accepted the mail"[:300]
    return None


def _write(session: Session, states: Any, contacts: _ContactChanges, now: dt.datetime) -> None:
    """One executemany for the messages and one for the contacts, whatever the batch size."""
    changed = [s for s in states if s.changed]
    if changed:
        table = cast(Table, Message.__table__)
        session.execute(
            update(table)
            .where(table.c.id == bindparam("m_id"))
            .values(
                status=bindparam("m_status", type_=table.c.status.type),
                reason=bindparam("m_reason"),
                sent_at=bindparam("m_sent_at", type_=table.c.sent_at.type),
                delivered_at=bindparam("m_delivered_at", type_=table.c.delivered_at.type),
                opened_at=bindparam("m_opened_at", type_=table.c.opened_at.type),
                clicked_at=bindparam("m_clicked_at", type_=table.c.clicked_at.type),
                updated_at=bindparam("m_updated_at", type_=table.c.updated_at.type),
            ),
            [
                {
                    "m_id": s.id,
                    "m_status": s.status,
                    "m_reason": s.reason,
                    "m_sent_at": s.sent_at,
                    "m_delivered_at": s.delivered_at,
                    "m_opened_at": s.opened_at,
                    "m_clicked_at": s.clicked_at,
                    "m_updated_at": now,
                }
                for s in changed
            ],
        )
    if contacts.values:
        table = cast(Table, Contact.__table__)
        # COALESCE: the first time wins, and a concurrent unsubscribe is never written back to NULL.
        session.execute(
            update(table)
            .where(table.c.id == bindparam("c_id"))
            .values(
                {
                    column: func.coalesce(
                        table.c[column], bindparam(f"c_{column}", type_=table.c[column].type)
                    )
                    for column in CONTACT_COLUMNS
                }
            ),
            [
                {"c_id": contact_id, **{f"c_{c}": columns.get(c) for c in CONTACT_COLUMNS}}
                for contact_id, columns in contacts.values.items()
            ],
        )


T = TypeVar("T")


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SignatureRejected",
    "WebhookNotConfigured",
    "parse_events",
    "reconcile_unknown",
    "record_events",
    "verify_request",
]
