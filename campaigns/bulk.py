"""The bulk tick on PostgreSQL: the due enrolments read and written as plain rows, in chunks.

The per-enrolment tick spends ~0.5 ms of ORM work per enrolment (identity map, attribute events,
a unit-of-work flush); 100,000 due enrolments took 47-80 s. Here the same steps
(campaigns.steps.advance) run on slotted dataclass rows:

1. one `SELECT … FOR UPDATE SKIP LOCKED` takes the due enrolments (the tick's row locks; a second
   scheduler skips them), with what enrolled each one read from its history in SQL;
2. then everything a step can ask, each in one query (array parameters): accounts and contacts,
   plan states, the caps ledger (counted forward in memory as the tick writes, as before) — these
   four sent together in pipeline mode, as plain psycopg rows — and only where a version needs
   them facts (branch and exit conditions), event counts (`wait_until: event`) and erased emails;
3. per chunk of `CHUNK` enrolments, in psycopg's pipeline mode (chunk k is written while chunk
   k+1 is computed): the ledger rows in one `INSERT … SELECT FROM unnest(…) ON CONFLICT
   (dedupe_key) DO NOTHING` (a row whose dedupe key exists is never written, counted or enqueued
   twice), and the enrolments in one `UPDATE … FROM unnest(…)` that appends this tick's
   transitions to `history` (`history || new`: the stored history is never read back); how those
   are built cheaply (rows by kind, array literals) is campaigns.bulk_ledger.

docs/scheduler.md has the whole picture.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from campaigns.bulk_ledger import ChunkLedger, LedgerWriter, array_literal
from campaigns.guards import CapReads, Caps, opted_out
from campaigns.models import RUNNABLE_STATES, Enrollment, EnrollmentState, StepKind
from campaigns.planstate import PlanStateReads, waited_on
from campaigns.steps import (
    AccountRow,
    AnyAccount,
    AnyContact,
    AnyEnrollment,
    ContactRow,
    EnrollmentRow,
    StepSpec,
    Tick,
    TickResult,
    Verdict,
    Version,
    advance,
    load_versions,
)
from engine.privacy import email_erased
from engine.reports.summaries import wake_refresh
from engine.rules.facts import load_facts

log = logging.getLogger(__name__)

CHUNK = 2000  # enrolments per chunk: ~4,000 ledger rows per INSERT stays within work_mem

# The due enrolments of campaigns not paused (campaigns.steps.not_paused), oldest first, locked for
# this transaction (`SKIP LOCKED`: rows another tick holds are left to it). What enrolled each, for
# the traces: the reason of the last `enrolled`/`re-entered` entry of its history, as JSON text
# (campaigns.steps.enrolled_because reads the same from an ORM enrolment).
_LOCK_DUE = (
    "SELECT e.id, e.account_id, e.campaign_id, e.campaign_version, e.state, e.current_step, "
    "e.step_started_at, e.entry, e.held_out, (SELECT h.entry -> 'reason' FROM jsonb_array_elements("
    "CASE WHEN jsonb_typeof(e.history) = 'array' THEN e.history ELSE '[]'::jsonb END) WITH ORDINALITY "
    "AS h(entry, n) WHERE h.entry ->> 'event' IN ('enrolled', 're-entered') ORDER BY h.n DESC "
    "LIMIT 1)::text, e.next_run_at FROM enrollments AS e "
    # constants, as in the partial index ix_enrollments_due, so the planner can use it
    f"WHERE e.state IN ({', '.join(repr(state.value) for state in RUNNABLE_STATES)}) AND e.next_run_at <= %s "
    "AND e.campaign_id NOT IN (SELECT c.id FROM campaigns AS c WHERE c.paused IS true) "
    "ORDER BY e.next_run_at, e.id LIMIT %s FOR UPDATE OF e SKIP LOCKED"
)
_ACCOUNTS = "SELECT id, segment, timezone, holdout_group FROM accounts WHERE id = ANY(%s::int[])"
# The columns rules read as facts, only when some enrolment of the tick evaluates a condition.
_ACCOUNTS_WITH_FACTS = (
    "SELECT id, segment, timezone, holdout_group, external_id, plan_tier, lifecycle_stage, traits "
    "FROM accounts WHERE id = ANY(%s::int[])"
)
# In the order of ContactRow's fields, and of `Account.contacts` (by id); an empty list of
# unsubscribed categories comes back as NULL (nothing to decode).
_CONTACTS = (
    "SELECT id, account_id, email, role, timezone, unsubscribed_at, bounced_at, spam_reported_at, "
    "NULLIF(unsubscribed_categories, '[]'::jsonb) FROM contacts WHERE account_id = ANY(%s::int[]) "
    "ORDER BY account_id, id"
)
_STATES = {state.value: state for state in EnrollmentState}
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
    ledger: ChunkLedger = field(default_factory=ChunkLedger)  # the chunk's ledger rows, as columns

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

    def add_message(
        self, enrollment: AnyEnrollment, step: StepSpec, contact: AnyContact, verdict: Verdict
    ) -> None:
        assert isinstance(enrollment, EnrollmentRow)
        self.ledger.add(enrollment, step, contact, verdict)


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
    driver = _driver(connection)
    wanted = array_literal(account_ids)
    # Sent together: PostgreSQL runs each query while Python turns the rows of the previous one
    # into objects (the reads before the first step are the part of the tick nothing overlaps).
    with driver.pipeline():
        accounts_query = driver.cursor().execute(_ACCOUNTS_WITH_FACTS if with_facts else _ACCOUNTS, (wanted,))
        contacts_query = driver.cursor().execute(_CONTACTS, (wanted,))
        plans_query = PlanStateReads(driver, wanted, *waited_on(versions))
        caps_query = CapReads(driver, caps, wanted, now)
        accounts = _accounts(accounts_query.fetchall(), contacts_query.fetchall(), bool(with_facts))
        plans = plans_query.collect()
        cap_ledger = caps_query.collect()
    for row in due:
        row.account = accounts[row.account_id]
    tick = BulkTick(
        session=session,
        now=now,
        result=result,
        caps=cap_ledger,
        plans=plans,
        versions=versions,
        facts=_facts(session, [accounts[i] for i in with_facts], now, chunk),
        events=_event_counts(connection, due, need, now),
        erased={c.id for a in accounts.values() for c in a.contacts if email_erased(session, c.email)},
    )
    with LedgerWriter(connection, result, now) as writer:
        for start in range(0, len(due), chunk):
            rows = due[start : start + chunk]
            for row in rows:
                result.enrollments += 1
                advance(tick, row)
            writer.write(tick.ledger, rows)
    _expire_enrollments(session, {row.id for row in due})
    wake_refresh(session)  # the ledger went in through the driver, which no ORM listener sees
    return {step_id: ids for step_id, ids in writer.queued.items() if ids}


def _facts(
    session: Session, accounts: list[AccountRow], now: dt.datetime, chunk: int
) -> dict[int, dict[str, Any]]:
    """Facts of the accounts whose steps evaluate a condition (load_facts binds an IN list: chunks)."""
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(accounts), chunk):
        found.update(load_facts(session, accounts[start : start + chunk], now))  # type: ignore[arg-type]
    return found


def _lock_due(connection: Connection, now: dt.datetime, limit: int) -> list[EnrollmentRow]:
    """The due enrolments, locked. Plain psycopg rows: the ORM's or Core's per-row processing cost
    more than the query at 100,000 rows."""
    nobody = AccountRow(0, "", "UTC", False)  # replaced by its account once the accounts are read
    states = _STATES
    rows = _driver(connection).execute(_LOCK_DUE, (now, limit)).fetchall()
    return [
        EnrollmentRow(
            eid, aid, cid, version, states[state], step, started, entry, held, enrolled, nobody, next_run
        )
        for eid, aid, cid, version, state, step, started, entry, held, enrolled, next_run in rows
    ]


def _accounts(
    account_rows: list[tuple[Any, ...]], contact_rows: list[tuple[Any, ...]], with_facts: bool
) -> dict[int, AccountRow]:
    """The tick's accounts with their contacts (ordered by id, as `Account.contacts` is); the columns
    rules read as facts only when some enrolment evaluates a condition."""
    accounts: dict[int, AccountRow] = {}
    if with_facts:
        for aid, segment, zone, holdout, external_id, tier, stage, traits in account_rows:
            accounts[aid] = AccountRow(
                aid, segment, zone, holdout, [], external_id, tier, stage, dict(traits or {})
            )
    else:
        for aid, segment, zone, holdout in account_rows:
            accounts[aid] = AccountRow(aid, segment, zone, holdout, [])
    for values in contact_rows:
        contact = ContactRow(*values)
        if contact.unsubscribed_categories is None:
            contact.unsubscribed_categories = []
        accounts[contact.account_id].contacts.append(contact)
    return accounts


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    return connection.connection.driver_connection  # type: ignore[return-value]


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
