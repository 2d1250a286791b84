"""Event ingest: validate a whole batch first, store it idempotently, then evaluate milestones."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import ARRAY, String, Table, Text, any_, bindparam, column, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from engine.accounts import Account, Contact
from engine.db import id_in
from engine.errors import ValidationFailed
from engine.events.models import Event, EventType
from engine.plans.milestones import evaluate_milestones

MAX_BATCH = 1000
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
_TIMES = ("occurred_at", "received_at")  # the row's timestamps, sent as ISO 8601 with their offset


@dataclass(frozen=True)
class EventIn:
    account: str
    name: str
    idempotency_key: str
    occurred_at: dt.datetime
    contact: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    milestones_achieved: list[int]


def ingest_events(session: Session, events: list[EventIn], *, now: dt.datetime) -> IngestResult:
    """Store new events (duplicates by idempotency key are counted, not stored) atomically."""
    if len(events) > MAX_BATCH:
        raise ValidationFailed({"events": f"at most {MAX_BATCH} events per batch, got {len(events)}"})
    session.flush()  # the lookups below are Core statements on the session's connection
    accounts = _accounts_by_external_id(session, {e.account for e in events})
    known_names = set(session.scalars(select(EventType.name)))
    errors: dict[str, str] = {}
    for i, e in enumerate(events):
        if e.account not in accounts:
            errors[f"events.{i}.account"] = f"unknown account {e.account!r}"
        if e.name not in known_names:
            errors[f"events.{i}.name"] = f"undeclared event name {e.name!r}"
        if e.occurred_at > now + FUTURE_TOLERANCE:
            errors[f"events.{i}.timestamp"] = "timestamp is in the future"
        elif not _representable_in_utc(e.occurred_at):
            errors[f"events.{i}.timestamp"] = "timestamp is out of range"
    if errors:
        raise ValidationFailed(errors)
    contacts = _contacts(session, list(accounts.values())) if any(e.contact for e in events) else {}
    rows = []
    seen: set[str] = set()
    for e in events:
        if e.idempotency_key in seen:
            continue
        seen.add(e.idempotency_key)
        account_id = accounts[e.account]
        rows.append(
            {
                "account_id": account_id,
                "contact_id": contacts.get((account_id, (e.contact or "").lower())),
                "name": e.name,
                "properties": e.properties,
                "occurred_at": e.occurred_at,
                "received_at": now,
                "idempotency_key": e.idempotency_key,
            }
        )
    inserted_accounts = _insert_new(session, rows)
    achieved = evaluate_milestones(session, sorted(inserted_accounts), now=now)
    return IngestResult(
        accepted=sum(inserted_accounts.values()),
        duplicates=len(events) - sum(inserted_accounts.values()),
        milestones_achieved=achieved,
    )


def _representable_in_utc(moment: dt.datetime) -> bool:
    """False for e.g. 0001-01-01T00:00+14:00, which is before datetime.min in UTC."""
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    """INSERT … ON CONFLICT DO NOTHING; returns {account_id: events actually inserted}.

    On PostgreSQL the batch goes as one JSON document unpacked by the server
    (`INSERT … SELECT … FROM jsonb_to_recordset(:batch) AS r(<column> <type>, …)`): one
    parameter, encoded by `json.dumps` in one call, instead of an array per column whose every
    element the driver adapts in Python (a third of the time of a batch of 1,000, in CPU).
    SQLite (the demo) takes the rows as an executemany."""
    if not rows:
        return {}
    table = cast(Table, Event.__table__)
    key = [table.c.idempotency_key]
    if session.get_bind().dialect.name == "postgresql":
        names = list(rows[0])
        document = json.dumps([{**row, **{n: row[n].isoformat() for n in _TIMES}} for row in rows])
        batch = (
            func.jsonb_to_recordset(sql_cast(bindparam("batch", document, type_=Text), JSONB))
            .table_valued(*[column(name, table.c[name].type) for name in names])
            .render_derived(with_types=True)
        )
        insert = postgresql.insert(table).from_select(names, select(*[batch.c[name] for name in names]))
        stmt = insert.on_conflict_do_nothing(index_elements=key).returning(table.c.account_id)
        parameters: list[dict[str, Any]] | None = None
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=key).returning(table.c.account_id)
        parameters = rows
    counts: dict[int, int] = {}
    for account_id in session.connection().execute(stmt, parameters).scalars().all():
        counts[account_id] = counts.get(account_id, 0) + 1
    return counts


def _accounts_by_external_id(session: Session, external_ids: set[str]) -> dict[str, int]:
    if not external_ids:
        return {}
    if session.get_bind().dialect.name == "postgresql":  # one array parameter, not one per id
        wanted = Account.external_id == any_(bindparam(None, sorted(external_ids), type_=ARRAY(String())))
    else:
        wanted = Account.external_id.in_(external_ids)
    found = session.connection().execute(select(Account.external_id, Account.id).where(wanted)).all()
    return {external_id: account_id for external_id, account_id in found}


def _contacts(session: Session, account_ids: list[int]) -> dict[tuple[int, str], int]:
    if not account_ids:
        return {}
    rows = (
        session.connection()
        .execute(
            select(Contact.account_id, Contact.email, Contact.external_id, Contact.id).where(
                id_in(session, Contact.account_id, account_ids)
            )
        )
        .all()
    )
    found: dict[tuple[int, str], int] = {}
    for account_id, email, external_id, contact_id in rows:
        found[(account_id, email.lower())] = contact_id
        if external_id:
            found[(account_id, external_id.lower())] = contact_id
    return found
