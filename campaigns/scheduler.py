"""The scheduler tick: run due enrolment steps, write Message rows, enqueue batched delivery.

Messages are committed *before* any send (unique dedupe key per enrolment entry, step and
contact); delivery jobs are enqueued only after that commit, one per batch of up to 1,000
recipients. Each enrolment runs the campaign version it started on. Steps move forward only:
`branch` and `wait_until`'s timeout jump to a later step by key. Before every step the campaign's
exit criteria are checked; before every message the guards (campaigns.guards) run and their
results are kept on the message.

The steps themselves are campaigns.steps. On PostgreSQL the tick reads and writes in bulk, in
chunks of plain rows (campaigns.bulk); the per-enrolment path below (ORM objects, one flush) runs
on the demo's SQLite and is the reference the bulk path is tested against.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from psycopg.types.json import Jsonb
from rq import Retry
from sqlalchemy import String, cast, func, insert, literal_column, select, update
from sqlalchemy.orm import Session, selectinload

from campaigns.bulk import CHUNK, advance_in_bulk
from campaigns.guards import CapLedger, Caps
from campaigns.jobs import deliver_batch
from campaigns.models import RUNNABLE_STATES, Campaign, Enrollment, Message, MessageStatus, StepKind
from campaigns.planstate import plan_states, waited_on
from campaigns.recovery import recover_stale_deliveries
from campaigns.steps import Tick, TickResult, advance, load_versions, not_paused
from engine.accounts import Account
from engine.queue import enqueue_after_commit

__all__ = ["BATCH_SIZE", "DELIVERY_RETRY", "TICK_LIMIT", "TickResult", "run_tick"]

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
TICK_LIMIT = 5000
DELIVERY_RETRY = Retry(max=5, interval=[10, 30, 120, 600, 1800])


def due_enrollments(session: Session, now: dt.datetime, limit: int) -> list[Enrollment]:
    stmt = (
        select(Enrollment)
        .where(
            Enrollment.state.in_(RUNNABLE_STATES),
            Enrollment.next_run_at <= now,
            not_paused(Enrollment.campaign_id),  # held while paused: still due when resumed
        )
        .order_by(Enrollment.next_run_at, Enrollment.id)
        .limit(limit)
        .options(
            selectinload(Enrollment.account).selectinload(Account.contacts),
            selectinload(Enrollment.campaign),
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two schedulers (or a slow tick overlapping the next) never take the same rows.
        stmt = stmt.with_for_update(skip_locked=True, of=Enrollment)
    return list(session.scalars(stmt))


def run_tick(
    session: Session,
    *,
    now: dt.datetime,
    limit: int = TICK_LIMIT,
    caps: Caps | None = None,
    bulk: bool | None = None,
    chunk: int = CHUNK,
) -> TickResult:
    """Recover deliveries a crash left behind (campaigns.recovery), release deferred messages whose
    window opened, then advance every due enrolment as far as it can go now; the caller
    commits (delivery jobs are enqueued after that commit).

    `bulk` (default: on PostgreSQL) reads and writes the due enrolments in chunks of `chunk` plain
    rows (campaigns.bulk); `bulk=False` takes the per-enrolment ORM path."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if bulk is None:
        bulk = postgres
    elif bulk and not postgres:
        raise ValueError("the bulk tick needs PostgreSQL")
    result = TickResult()
    recovered = recover_stale_deliveries(session, now)
    result.messages_recovered, result.messages_unknown = len(recovered.to_enqueue), len(recovered.unknown)
    if result.messages_recovered or result.messages_unknown:
        log.warning(
            "recovered deliveries a crash left behind: %d requeued, %d orphaned given a new job, %d unknown "
            "(left to the reconciler)",
            len(recovered.requeued),
            len(recovered.orphaned),
            len(recovered.unknown),
        )
    released = release_deferred(session, now)
    result.messages_released = len(released)
    queued: dict[int, list[int]] = {}  # step id → message ids to deliver
    for message_id, step_id in released:
        queued.setdefault(step_id, []).append(message_id)
    caps = caps or Caps()
    if bulk:
        new = advance_in_bulk(session, now=now, limit=limit, caps=caps, result=result, chunk=chunk)
    else:
        new = _advance_each(session, now=now, limit=limit, caps=caps, result=result)
    for step_id, ids in new.items():
        queued.setdefault(step_id, []).extend(ids)
    for ids in queued.values():
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            result.batches.append(batch)
            enqueue_after_commit(session, "delivery", deliver_batch, batch, retry=DELIVERY_RETRY)
    ids = recovered.to_enqueue
    for start in range(0, len(ids), BATCH_SIZE):
        result.batches.append(ids[start : start + BATCH_SIZE])
        enqueue_after_commit(session, "delivery", deliver_batch, result.batches[-1], retry=DELIVERY_RETRY)
    return result


def _advance_each(
    session: Session, *, now: dt.datetime, limit: int, caps: Caps, result: TickResult
) -> dict[int, list[int]]:
    """The per-enrolment path: ORM objects, one flush for the enrolments, one COPY for the ledger."""
    enrollments = due_enrollments(session, now, limit)
    account_ids = {e.account_id for e in enrollments}
    versions = load_versions(session, {(e.campaign_id, e.campaign_version) for e in enrollments})
    tick = Tick(
        session=session,
        now=now,
        result=result,
        caps=CapLedger.load(session, caps, account_ids, now),
        plans=plan_states(session, account_ids, *waited_on(versions)),
        versions=versions,
    )
    with session.no_autoflush:  # one flush for the whole tick, not one per enrolment
        for enrollment in enrollments:
            result.enrollments += 1
            advance(tick, enrollment)
    session.flush()
    insert_messages(session, tick.new_messages)
    return {step_id: [row["id"] for row in rows] for step_id, rows in tick.new_queued.items()}


def release_deferred(session: Session, now: dt.datetime) -> list[tuple[int, int]]:
    """Deferred messages whose send window has opened become queued (in-app ones become visible);
    returns (id, step id) of the released emails, for delivery. A paused campaign's stay deferred
    until it is resumed."""
    held = (
        select(Enrollment.id)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Campaign.paused.is_(True))
    )
    due = select(Message.id).where(
        Message.status == MessageStatus.DEFERRED,
        Message.not_before <= now,
        Message.enrollment_id.not_in(held),
    )
    if session.get_bind().dialect.name != "postgresql":  # the demo's SQLite: a few rows, as objects
        released = list(session.scalars(select(Message).where(Message.id.in_(due.scalar_subquery()))))
        for message in released:
            message.status = MessageStatus.QUEUED
            message.updated_at = now
            message.trace = {**message.trace, "released_at": now.isoformat()}
        session.flush()
        return [(m.id, m.step_id) for m in released if m.channel == StepKind.EMAIL.value]
    # One UPDATE however many opened at once (a window opening at 08:00 releases a whole region).
    stamp = func.jsonb_build_object(literal_column("'released_at'"), cast(now.isoformat(), String))
    rows = session.execute(
        update(Message)
        .where(Message.id.in_(due.with_for_update(skip_locked=True).scalar_subquery()))
        .values(status=MessageStatus.QUEUED, updated_at=now, trace=Message.trace.op("||")(stamp))
        .returning(Message.id, Message.step_id, Message.channel)
        .execution_options(synchronize_session="fetch")
    )
    return sorted((mid, step_id) for mid, step_id, channel in rows if channel == StepKind.EMAIL.value)


_MESSAGE_COLUMNS = (
    "id",
    "enrollment_id",
    "step_id",
    "contact_id",
    "channel",
    "status",
    "reason",
    "dedupe_key",
    "template_key",
    "created_at",
    "updated_at",
    "not_before",
    "trace",
)


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write the tick's new ledger rows and give each its id. On PostgreSQL: ids from the sequence
    in one query, then COPY (an ORM or executemany INSERT … RETURNING of 100k rows spends most of
    the tick building and parsing statements); elsewhere (the demo's SQLite) an INSERT … RETURNING."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        stmt = insert(Message).returning(Message.id, sort_by_parameter_order=True)
        for row, message_id in zip(rows, session.scalars(stmt, rows).all(), strict=True):
            row["id"] = message_id
        return
    sequence = func.pg_get_serial_sequence(Message.__tablename__, "id")
    ids = session.scalars(select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows))))
    for row, message_id in zip(rows, ids.all(), strict=True):
        row["id"] = message_id
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(_MESSAGE_COLUMNS)
    with cursor, cursor.copy(f"COPY {Message.__tablename__} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in _MESSAGE_COLUMNS[:-1]]
            values[_MESSAGE_COLUMNS.index("status")] = row["status"].value
            copy.write_row([*values, Jsonb(row["trace"])])
