"""The bulk tick on PostgreSQL: the due enrolments read and written as plain rows, in chunks.

The per-enrolment tick spends ~0.5 ms of ORM work per enrolment (identity map, attribute events,
a unit-of-work flush); 100,000 due enrolments took 47-80 s. Here the same steps
(campaigns.steps.advance) run on slotted dataclass rows:

1. one `SELECT … FOR UPDATE SKIP LOCKED` takes the due enrolments (the tick's row locks; a second
   scheduler skips them), with what enrolled each one read from its history in SQL;
2. then everything a step can ask, each in one query (array parameters): accounts and contacts,
   plan states, the caps ledger (counted forward in memory as the tick writes, as before), and
   only where a version needs them facts (branch and exit conditions), event counts
   (`wait_until: event`) and erased emails;
3. per chunk of `CHUNK` enrolments, in psycopg's pipeline mode (chunk k is written while chunk
   k+1 is computed): the ledger rows in one `INSERT … SELECT FROM unnest(…) ON CONFLICT
   (dedupe_key) DO NOTHING` (a row whose dedupe key exists is never written, counted or enqueued
   twice), and the enrolments in one `UPDATE … FROM unnest(…)` that appends this tick's
   transitions to `history` (`history || new`: the stored history is never read back).

Arrays (`unnest`) rather than a `VALUES` list: one bind parameter per column instead of one per
value (PostgreSQL allows 65,535 per statement), dumped by psycopg in binary (`%b`) in one go.
docs/scheduler.md has the whole picture.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import ARRAY, ColumnElement, Connection, Integer, any_, bindparam, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.guards import CapLedger, Caps, opted_out
from campaigns.models import RUNNABLE_STATES, Enrollment, StepKind
from campaigns.planstate import plan_states, waited_on
from campaigns.steps import (
    AccountRow,
    AnyAccount,
    AnyContact,
    ContactRow,
    EnrollmentRow,
    Tick,
    TickResult,
    Version,
    advance,
    load_versions,
    not_paused,
)
from engine.accounts import Account, Contact
from engine.privacy import email_erased
from engine.rules.facts import load_facts

log = logging.getLogger(__name__)

CHUNK = 2000  # enrolments per chunk: ~4,000 ledger rows per INSERT stays within work_mem

# What enrolled the account in its current run: the reason of the last `enrolled`/`re-entered`
# entry of the history (campaigns.steps.enrolled_because reads the same from an ORM enrolment).
_ENROLLED_BECAUSE = literal_column(
    "(SELECT h.entry -> 'reason' FROM jsonb_array_elements(CASE WHEN jsonb_typeof(enrollments.history) "
    "= 'array' THEN enrollments.history ELSE '[]'::jsonb END) WITH ORDINALITY AS h(entry, n) "
    "WHERE h.entry ->> 'event' IN ('enrolled', 're-entered') ORDER BY h.n DESC LIMIT 1)",
    type_=JSONB,
)

# What the tick sends per ledger row; a row's channel and template are its step's (read from
# campaign_steps by the INSERT), and created_at = updated_at = the tick's moment (one parameter).
_MESSAGE_COLUMNS = (
    ("enrollment_id", "int"),
    ("step_id", "int"),
    ("contact_id", "int"),
    ("status", "varchar"),
    ("reason", "varchar"),
    ("dedupe_key", "varchar"),
    ("not_before", "timestamptz"),
    ("trace", "jsonb"),
)
_MESSAGE_VALUES = operator.itemgetter(*(name for name, _ in _MESSAGE_COLUMNS))
_dumps = json.JSONEncoder(separators=(",", ":")).encode
# One statement per chunk: write the rows in the tick's order (their ids too); answer with the new
# queued email ids per step (what the caller enqueues) and the rows whose dedupe key was already in
# the ledger (normally none).
_INSERT_MESSAGES = (
    "WITH v AS MATERIALIZED (SELECT v.*, s.kind AS channel, s.config ->> 'template' AS template_key "
    f"FROM unnest({', '.join(f'%b::{kind}[]' for _, kind in _MESSAGE_COLUMNS)}) WITH ORDINALITY "
    f"AS v({', '.join(name for name, _ in _MESSAGE_COLUMNS)}, n) "
    "JOIN campaign_steps AS s ON s.id = v.step_id), "
    "ins AS (INSERT INTO messages (enrollment_id, step_id, contact_id, channel, status, reason, dedupe_key, "
    "template_key, created_at, updated_at, not_before, trace) SELECT enrollment_id, step_id, contact_id, "
    "channel, status, reason, dedupe_key, template_key, %b::timestamptz, %b::timestamptz, not_before, trace "
    "FROM v ORDER BY n ON CONFLICT (dedupe_key) DO NOTHING "
    "RETURNING id, step_id, dedupe_key, status, channel) "
    "SELECT step_id, array_agg(id ORDER BY id), NULL::varchar[], NULL::varchar[], NULL::varchar[] FROM ins "
    "WHERE status = 'queued' AND channel = 'email' GROUP BY step_id "
    "UNION ALL SELECT NULL, NULL, array_agg(v.dedupe_key), array_agg(v.status), array_agg(v.channel) FROM v "
    "WHERE v.dedupe_key NOT IN (SELECT dedupe_key FROM ins) HAVING count(*) > 0"
)
_UPDATE_ENROLLMENTS = (
    "UPDATE enrollments AS e SET state = v.state, current_step = v.current_step, "
    "step_started_at = v.step_started_at, next_run_at = v.next_run_at, finished_at = v.finished_at, "
    "exited_reason = v.exited_reason, history = e.history || v.history "
    "FROM unnest(%b::int[], %b::varchar[], %b::int[], %b::timestamptz[], %b::timestamptz[], "
    "%b::timestamptz[], %b::varchar[], %b::jsonb[]) "
    "AS v(id, state, current_step, step_started_at, next_run_at, finished_at, exited_reason, history) "
    "WHERE e.id = v.id"
)
_EVENT_COUNTS = (
    "SELECT v.account_id, v.name, v.since, (SELECT count(*) FROM events AS ev WHERE "
    "ev.account_id = v.account_id AND ev.name = v.name AND ev.occurred_at >= v.since) "
    "FROM unnest(%b::int[], %b::varchar[], %b::timestamptz[]) AS v(account_id, name, since)"
)


@dataclass
class BulkTick(Tick):
    """The tick's lookups answered from what was read before the first write: while the writes are
    in flight (pipeline mode) the connection cannot answer a query."""

    events: dict[tuple[int, str, dt.datetime], int] = field(default_factory=dict)
    erased: set[int] = field(default_factory=set)  # contacts whose email was erased (privacy)

    def facts_for(self, account: AnyAccount) -> dict[str, Any]:
        found = self.facts.get(account.id)
        if found is None:
            raise LookupError(f"the bulk tick did not read the facts of account {account.id}")
        return found

    def event_count(self, account_id: int, name: str, since: dt.datetime) -> int:
        found = self.events.get((account_id, name, since))
        if found is None:
            raise LookupError(f"the bulk tick did not count {name!r} events of account {account_id}")
        return found

    def suppression(self, contact: AnyContact, category: str) -> str | None:
        # The order of campaigns.guards.suppression: an erased email first, then the opt-outs.
        if contact.id in self.erased:
            return "erased: privacy request"
        return opted_out(contact, category)


@dataclass(frozen=True)
class _Needs:
    """What a version's steps read beyond the enrolment, its account and contacts."""

    facts: bool  # a branch, or an exit condition
    events: frozenset[str]  # event names its `wait_until` steps wait for


def _needs(version: Version) -> _Needs:
    steps, settings = version
    facts = any(s.kind is StepKind.BRANCH for s in steps) or (
        (settings.get("exit_when") or {}).get("condition") is not None
    )
    events = frozenset(
        str(s.config["event"]) for s in steps if s.kind is StepKind.WAIT_UNTIL and s.config.get("event")
    )
    return _Needs(facts, events)


def advance_in_bulk(
    session: Session, *, now: dt.datetime, limit: int, caps: Caps, result: TickResult, chunk: int = CHUNK
) -> dict[int, list[int]]:
    """Advance up to `limit` due enrolments; returns step id → ids of the new `queued` email rows
    (the caller enqueues them after commit)."""
    session.flush()  # pending ORM changes first: the statements below bypass the unit of work
    # The tick builds ~10 container objects per enrolment that all live until it ends and form no
    # cycles; the cyclic collector would rescan them again and again (a third of the Python time
    # at 100k enrolments) without ever freeing one.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _advance_due(session, now=now, limit=limit, caps=caps, result=result, chunk=chunk)
    finally:
        if collecting:
            gc.enable()


def _advance_due(
    session: Session, *, now: dt.datetime, limit: int, caps: Caps, result: TickResult, chunk: int
) -> dict[int, list[int]]:
    connection = session.connection()
    due = _lock_due(connection, now, limit)
    if not due:
        return {}
    versions = load_versions(session, {(row.campaign_id, row.campaign_version) for row in due})
    needs = {key: _needs(version) for key, version in versions.items()}
    need = [needs[(row.campaign_id, row.campaign_version)] for row in due]
    with_facts = {row.account_id for row, n in zip(due, need, strict=True) if n.facts}
    account_ids = {row.account_id for row in due}
    accounts = _load_accounts(connection, account_ids, with_facts)
    for row in due:
        row.account = accounts[row.account_id]
    tick = BulkTick(
        session=session,
        now=now,
        result=result,
        caps=CapLedger.load(session, caps, account_ids, now),
        plans=plan_states(session, account_ids, *waited_on(versions)),
        versions=versions,
        facts=_facts(session, [accounts[i] for i in with_facts], now, chunk),
        events=_event_counts(connection, due, need, now),
        erased={c.id for a in accounts.values() for c in a.contacts if email_erased(session, c.email)},
    )
    with _LedgerWriter(connection, result) as writer:
        for start in range(0, len(due), chunk):
            rows = due[start : start + chunk]
            for row in rows:
                result.enrollments += 1
                advance(tick, row)
            writer.write(tick.new_messages, rows, steps=list(tick.new_queued))
            tick.new_messages.clear()
            tick.new_queued.clear()
    _expire_enrollments(session, {row.id for row in due})
    return {step_id: ids for step_id, ids in writer.queued.items() if ids}


def _facts(
    session: Session, accounts: list[AccountRow], now: dt.datetime, chunk: int
) -> dict[int, dict[str, Any]]:
    """Facts of the accounts whose steps evaluate a condition (load_facts binds an IN list: chunks)."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(accounts), chunk):
        found.update(load_facts(session, accounts[start : start + chunk], now))  # type: ignore[arg-type]
    return found


class _LedgerWriter:
    """Sends each chunk's INSERT and UPDATE in psycopg's pipeline mode and reads the answers at the
    end: PostgreSQL writes chunk k while Python computes chunk k+1 (two cores, not one)."""

    def __init__(self, connection: Connection, result: TickResult) -> None:
        self.driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        self.result = result
        self.pending: list[psycopg.Cursor[Any]] = []
        self.queued: dict[int, list[int]] = {}

    def __enter__(self) -> _LedgerWriter:
        self.pipeline = self.driver.pipeline()
        self.pipeline.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.__exit__(*exc)  # type: ignore[arg-type]  # syncs: every statement has run
        if exc[0] is None:
            for cursor in self.pending:
                self._collect(cursor.fetchall())

    def write(
        self, messages: list[dict[str, Any]], rows: Sequence[EnrollmentRow], *, steps: list[int]
    ) -> None:
        """Send a chunk's writes. `steps`: the steps with queued emails, in the order the tick
        queued them first (the order of the delivery batches, as on the per-enrolment path)."""
        for step_id in steps:
            self.queued.setdefault(step_id, [])
        if messages:
            values = map(_MESSAGE_VALUES, messages)
            columns: list[Any] = [list(column) for column in zip(*values, strict=True)]
            columns[3] = list(map(str, columns[3]))  # a MessageStatus as its value (psycopg dumps the name)
            columns[7] = list(map(_dumps, columns[7]))
            now = messages[0]["created_at"]
            cursor = self.driver.cursor()
            cursor.execute(_INSERT_MESSAGES, [*columns, now, now])
            self.pending.append(cursor)
        if rows:
            self.driver.cursor().execute(
                _UPDATE_ENROLLMENTS,
                (
                    [row.id for row in rows],
                    [row.state.value for row in rows],
                    [row.current_step for row in rows],
                    [row.step_started_at for row in rows],
                    [row.next_run_at for row in rows],
                    [row.finished_at for row in rows],
                    [row.exited_reason for row in rows],
                    [_dumps(row.history) for row in rows],
                ),
            )

    def _collect(self, answer: list[tuple[Any, ...]]) -> None:
        for step_id, ids, existing, statuses, channels in answer:
            if step_id is not None:
                self.queued.setdefault(step_id, []).extend(ids)
            elif existing:
                self._existing(existing, statuses, channels)

    def _existing(self, keys: list[str], statuses: list[str], channels: list[str]) -> None:
        result = self.result
        for status, channel in zip(statuses, channels, strict=True):
            result.messages_existing += 1
            if status == "suppressed":
                result.messages_suppressed -= 1
            elif status == "deferred":
                result.messages_deferred -= 1
            elif channel == StepKind.EMAIL.value:
                result.messages_queued -= 1
        log.warning(
            "%d ledger rows were already written (dedupe keys %s…): left as they are, not sent again",
            len(keys),
            ", ".join(keys[:5]),
        )


def _lock_due(connection: Connection, now: dt.datetime, limit: int) -> list[EnrollmentRow]:
    """The due enrolments of campaigns not paused, oldest first, locked for this transaction
    (`SKIP LOCKED`: rows another tick holds are left to it)."""
    stmt: Any = (
        select(  # in the order of EnrollmentRow's fields
            Enrollment.id,
            Enrollment.account_id,
            Enrollment.campaign_id,
            Enrollment.campaign_version,
            Enrollment.state,
            Enrollment.current_step,
            Enrollment.step_started_at,
            Enrollment.entry,
            Enrollment.held_out,
            _ENROLLED_BECAUSE,
            Enrollment.next_run_at,
        )
        .where(
            Enrollment.state.in_(RUNNABLE_STATES),
            Enrollment.next_run_at <= now,
            not_paused(Enrollment.campaign_id),  # held while paused: still due when resumed
        )
        .order_by(Enrollment.next_run_at, Enrollment.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Enrollment.__table__)
    )
    nobody = AccountRow(0, "", "UTC", False)  # replaced by its account once the accounts are read
    return [
        EnrollmentRow(*values[:10], account=nobody, next_run_at=values[10])  # type: ignore[misc]
        for values in connection.execute(stmt)
    ]


def _load_accounts(connection: Connection, ids: set[int], with_facts: set[int]) -> dict[int, AccountRow]:
    """The chunk's accounts with their contacts (ordered by id, as `Account.contacts` is); the
    columns rules read as facts only when some enrolment of the chunk evaluates a condition."""
    accounts: dict[int, AccountRow] = {}
    columns: list[Any] = [Account.id, Account.segment, Account.timezone, Account.holdout_group]
    if with_facts:
        columns += [Account.external_id, Account.plan_tier, Account.lifecycle_stage, Account.traits]
    for values in connection.execute(select(*columns).where(_any(Account.id, ids))):
        account = AccountRow(values[0], values[1], values[2], values[3])
        if with_facts:
            account.external_id, account.plan_tier, account.lifecycle_stage = values[4], values[5], values[6]
            account.traits = dict(values[7] or {})
        accounts[account.id] = account
    contacts: Any = select(  # in the order of ContactRow's fields
        Contact.id,
        Contact.account_id,
        Contact.email,
        Contact.role,
        Contact.timezone,
        Contact.unsubscribed_at,
        Contact.bounced_at,
        Contact.spam_reported_at,
        Contact.unsubscribed_categories,
    ).where(_any(Contact.account_id, ids))
    for values in connection.execute(contacts.order_by(Contact.account_id, Contact.id)):
        contact = ContactRow(*values)
        contact.unsubscribed_categories = contact.unsubscribed_categories or []
        accounts[contact.account_id].contacts.append(contact)
    return accounts


def _any(column: InstrumentedAttribute[int], ids: Iterable[int]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`: one array parameter however many ids (engine.db.id_in on PostgreSQL)."""
    return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))


def _event_counts(
    connection: Connection, rows: Sequence[EnrollmentRow], need: Sequence[_Needs], now: dt.datetime
) -> dict[tuple[int, str, dt.datetime], int]:
    """Events counted for every `wait_until: event` the chunk can check this tick: the one an
    enrolment sits on (since its step started) and any it reaches now (since now)."""
    wanted: set[tuple[int, str, dt.datetime]] = set()
    for row, n in zip(rows, need, strict=True):
        for name in n.events:
            wanted.add((row.account_id, name, now))
            wanted.add((row.account_id, name, row.step_started_at))
    if not wanted:
        return {}
    account_ids, names, sinces = (list(column) for column in zip(*wanted, strict=True))
    found = connection.exec_driver_sql(_EVENT_COUNTS, (account_ids, names, sinces))
    return {(account_id, name, since.astimezone(dt.UTC)): int(n) for account_id, name, since, n in found}


def _expire_enrollments(session: Session, ids: set[int]) -> None:
    """Enrolments the session already holds as objects were changed behind its back: reload them."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Enrollment) and obj.id in ids:
            session.expire(obj)
