"""Where a plan stands: each milestone's status from events and dates, refreshed in bulk.

Statuses (the issue's vocabulary):
- `achieved`: its criteria hold over the account's events since the plan started (or someone
  marked it done);
- `missed`: its due date has passed;
- `pending`: its window has not started (the milestone it follows is not yet due or achieved);
- `behind`: progress trails the time used (criteria of the form `count >= n` give progress as
  count / n), or, without a measurable criterion, fewer than a fifth of its days (at least 3) are left;
- `on_track`: otherwise.
A status that moves to `behind` or `missed` records a revision and sends `milestone_slipped`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    select,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine import signals
from engine.db import id_in
from engine.errors import NotFound
from engine.events.counts import PlanWindow, Tallies, plan_event_tallies
from engine.plans.criteria import Criteria, _holds, compile_criteria, criteria_progress
from engine.plans.milestones import achieved_revision, announce_achieved
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.plans.triangle import ROLE_NAMES, WANTED, Triangle, triangle

# Criteria and the triangle lived here before they had modules of their own: importers keep working.
__all__ = [
    "BEHIND_MARGIN",
    "MOVABLE",
    "OPEN",
    "RECORDED",
    "ROLE_NAMES",
    "SLIPPED",
    "STATUSES",
    "WANTED",
    "MilestoneChange",
    "MilestoneState",
    "PlanState",
    "Refresh",
    "Triangle",
    "_holds",
    "advance",
    "compile_criteria",
    "criteria_progress",
    "open_status",
    "refresh_plans",
    "triangle",
]

OPEN = (MilestoneStatus.PENDING, MilestoneStatus.ON_TRACK, MilestoneStatus.BEHIND)
MOVABLE = (*OPEN, MilestoneStatus.MISSED)  # a missed milestone can still be achieved, late
SLIPPED = (MilestoneStatus.BEHIND, MilestoneStatus.MISSED)
RECORDED = (MilestoneStatus.ACHIEVED, *SLIPPED)  # moves that write a revision
STATUSES = {status.value: status for status in MilestoneStatus}
BEHIND_MARGIN = 0.25  # progress may trail the time used by this much before the milestone is behind
REFRESH_CHUNK = 1000  # plans per grouped count query (the hourly refresh reads every active plan)


@dataclass(slots=True)
class MilestoneState:
    """A milestone as a refresh reads and moves it: plain columns, no ORM state."""

    id: int
    position: int
    key: str
    title: str
    after: str | None
    due_date: dt.date
    criteria: Criteria | None
    status: MilestoneStatus
    achieved_at: dt.datetime | None


@dataclass(slots=True)
class PlanState:
    """An active plan with its milestones in order, as `refresh_plans` reads it."""

    id: int
    account_id: int
    started_at: dt.datetime
    milestones: list[MilestoneState] = field(default_factory=list)

    def is_open(self) -> bool:
        return any(m.status in MOVABLE for m in self.milestones)


@dataclass(frozen=True, slots=True)
class MilestoneChange:
    """One milestone a refresh moved: what the revision, the UPDATE and the signals need."""

    milestone_id: int
    milestone_key: str
    title: str
    plan_id: int
    account_id: int
    status: MilestoneStatus
    was: MilestoneStatus
    achieved_at: dt.datetime | None


@dataclass(frozen=True)
class Refresh:
    achieved: list[MilestoneChange]
    slipped: list[MilestoneChange]


def advance(plan: PlanState, tallies: Tallies, *, now: dt.datetime) -> list[MilestoneChange]:
    """Move the plan's open milestones to their status now, in memory, in order (an achieved
    milestone opens the window of the one after it); returns the changes.

    `tallies` are the plan's event counts since it started ({name: count}); the criteria read
    them as the facts `{"events": {name: {"count": n}}}`."""
    today = now.date()
    changed: list[MilestoneChange] = []
    milestones = plan.milestones
    # A missed milestone whose criteria hold later is still achieved (late).
    for milestone in [m for m in milestones if m.status in MOVABLE]:
        old = milestone.status
        criteria = milestone.criteria
        if criteria is not None and criteria.holds(tallies):
            milestone.status, milestone.achieved_at = MilestoneStatus.ACHIEVED, now
        elif old is MilestoneStatus.MISSED:
            continue
        else:
            milestone.status = _status(milestone, plan, tallies, today)
        if milestone.status is not old:
            changed.append(
                MilestoneChange(
                    milestone.id,
                    milestone.key,
                    milestone.title,
                    plan.id,
                    plan.account_id,
                    milestone.status,
                    old,
                    milestone.achieved_at,
                )
            )
    return changed


def _status(milestone: MilestoneState, plan: PlanState, tallies: Tallies, today: dt.date) -> MilestoneStatus:
    """The status by date and progress of an open milestone whose criteria do not hold."""
    due = milestone.due_date
    if today > due:
        return MilestoneStatus.MISSED
    # Its window starts when the milestone it follows is achieved or due, else at plan start.
    start = plan.started_at.date()
    if milestone.after:
        previous = next((m for m in plan.milestones if m.key == milestone.after), None)
        if previous is not None:
            start = previous.achieved_at.date() if previous.achieved_at else previous.due_date
    start = min(start, due)
    if today < start:
        return MilestoneStatus.PENDING
    span = max((due - start).days, 1)
    used = (today - start).days / span
    progress = milestone.criteria.progress(tallies) if milestone.criteria is not None else None
    if progress is not None:
        return MilestoneStatus.BEHIND if progress + BEHIND_MARGIN < used else MilestoneStatus.ON_TRACK
    days_left = (due - today).days
    return MilestoneStatus.BEHIND if days_left < max(3, span / 5) else MilestoneStatus.ON_TRACK


def open_status(session: Session, plan_id: int, key: str, *, now: dt.datetime) -> MilestoneStatus:
    """The status milestone `key` of an active plan would have now were it open, by its dates and
    progress (`_status`): what a milestone taken back from achieved becomes. Whether its criteria
    hold is for the refresh that follows to find (it is then achieved again, by events)."""
    session.flush()  # read below as plain rows
    plan = next(iter(_plan_states(session, SuccessPlan.id == plan_id)), None)
    milestone = next((m for m in plan.milestones if m.key == key), None) if plan else None
    if plan is None or milestone is None:
        raise NotFound(f"no milestone {key!r} in an active plan {plan_id}")
    tallies: Tallies = {}
    if milestone.criteria is not None:
        window = PlanWindow(plan.id, plan.account_id, plan.started_at)
        tallies = plan_event_tallies(session, [window], milestone.criteria.names)[plan.id]
    return _status(milestone, plan, tallies, now.date())


def refresh_plans(
    session: Session, account_ids: Sequence[int] | None, *, now: dt.datetime, channel: str = "events"
) -> Refresh:
    """Recompute milestone statuses for the given accounts' active plans (None: every active plan).

    Criteria that hold mark milestones achieved (`milestone_achieved`); moves to behind/missed record
    a revision and send `milestone_slipped`. Idempotent: a status that does not change writes nothing.

    An ingest batch touches hundreds of accounts and changes few of their milestones, so a
    refresh costs a fixed number of statements whatever the number of plans: per chunk of plans,
    their milestones as plain rows and one grouped count of the event names their open criteria
    read; the statuses move in memory with criteria compiled once per distinct document; then one
    UPDATE of the changed milestones and one INSERT of their revisions, with no ORM object loaded.
    """
    session.flush()  # the statements below read and write around the unit of work
    changes: list[MilestoneChange] = []
    for where in _chunks(session, account_ids):
        plans = [plan for plan in _plan_states(session, where) if plan.is_open()]
        windows = [PlanWindow(plan.id, plan.account_id, plan.started_at) for plan in plans]
        tallies = plan_event_tallies(session, windows, _names_read(plans))
        for plan in plans:
            changes.extend(advance(plan, tallies[plan.id], now=now))
    achieved = [c for c in changes if c.status is MilestoneStatus.ACHIEVED]
    slipped = [c for c in changes if c.status in SLIPPED]
    _write(session, changes, now=now, channel=channel)
    for change in achieved:
        announce_achieved(
            session,
            milestone_id=change.milestone_id,
            milestone_key=change.milestone_key,
            plan_id=change.plan_id,
            account_id=change.account_id,
            now=now,
            batched=True,
        )
    if achieved:
        accounts = sorted({c.account_id for c in achieved})
        signals.milestones_achieved_batch.send("engine.plans", session=session, account_ids=accounts, now=now)
    for change in slipped:
        signals.milestone_slipped.send(
            "engine.plans",
            session=session,
            milestone_id=change.milestone_id,
            milestone_key=change.milestone_key,
            status=change.status.value,
            plan_id=change.plan_id,
            account_id=change.account_id,
            now=now,
        )
    return Refresh(achieved, slipped)


def _chunks(session: Session, account_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    """Which plans each pass reads: REFRESH_CHUNK accounts at a time (None: active plans by id)."""
    if account_ids is None:
        active = select(SuccessPlan.id).where(SuccessPlan.status == PlanStatus.ACTIVE)
        column, ids = SuccessPlan.id, list(session.scalars(active.order_by(SuccessPlan.id)))
    else:
        column, ids = SuccessPlan.account_id, sorted(set(account_ids))
    return [id_in(session, column, ids[i : i + REFRESH_CHUNK]) for i in range(0, len(ids), REFRESH_CHUNK)]


def _plan_states(session: Session, where: ColumnElement[bool]) -> list[PlanState]:
    """The active plans matching `where` with their milestones in order, as plain rows.

    The hot read of an ingest batch (thousands of rows), as two Core statements on the session's
    connection: the plans, then their milestones by plan id (cheaper than a join that looks up
    each plan's milestones in turn), unsorted (PostgreSQL sorting the wide rows cost more than
    the rest of the query; each plan's few are sorted here). Criteria come as text, compiled once
    per distinct document (a template's milestones share theirs); status and times without their
    column types' per-value processing."""
    connection = session.connection()
    active = select(
        SuccessPlan.id, SuccessPlan.account_id, type_coerce(SuccessPlan.started_at, DateTime(True))
    )
    plans = {
        plan_id: PlanState(plan_id, account_id, _utc(started_at))
        for plan_id, account_id, started_at in connection.execute(
            active.where(SuccessPlan.status == PlanStatus.ACTIVE, where).order_by(SuccessPlan.id)
        ).all()
    }
    if not plans:
        return []
    rows = connection.execute(
        select(
            Milestone.plan_id,
            Milestone.position,
            Milestone.id,
            Milestone.key,
            Milestone.title,
            Milestone.after,
            Milestone.due_date,
            cast(Milestone.criteria, Text),
            type_coerce(Milestone.status, String),
            type_coerce(Milestone.achieved_at, DateTime(True)),
        ).where(id_in(session, Milestone.plan_id, list(plans)))
    ).all()  # fetched at once: the driver's row-by-row fetch cost more than the rows' Python
    for plan_id, position, milestone_id, key, title, after, due_date, criteria, status, achieved_at in rows:
        plans[plan_id].milestones.append(
            MilestoneState(
                milestone_id,
                position,
                key,
                title,
                after,
                due_date,
                compile_criteria(criteria),
                STATUSES[status],
                None if achieved_at is None else _utc(achieved_at),
            )
        )
    for plan in plans.values():
        plan.milestones.sort(key=_order)
    return list(plans.values())


def _order(milestone: MilestoneState) -> tuple[int, int]:
    return milestone.position, milestone.id


def _utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp as read raw (in the connection's time zone, or naive UTC on SQLite) in UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo is dt.UTC else moment.astimezone(dt.UTC)


def _names_read(plans: Sequence[PlanState]) -> frozenset[str] | None:
    """The event names the plans' movable milestones' criteria read (None: any name may matter)."""
    names: set[str] = set()
    for plan in plans:
        for milestone in plan.milestones:
            if milestone.criteria is None or milestone.status not in MOVABLE:
                continue
            if milestone.criteria.names is None:
                return None
            names |= milestone.criteria.names
    return frozenset(names)


def _write(session: Session, changes: Sequence[MilestoneChange], *, now: dt.datetime, channel: str) -> None:
    """The changed statuses and their revisions as Core statements (no ORM object loaded or
    flushed); milestone and plan objects already in the session are brought up to date."""
    if not changes:
        return
    _update_statuses(session, changes)
    revisions = [_revision(c, now=now, channel=channel) for c in changes if c.status in RECORDED]
    if revisions:
        session.connection().execute(insert(_table(PlanRevision)), revisions)  # one multi-row INSERT
    _sync_session(session, changes, revised={r["plan_id"] for r in revisions})


def _update_statuses(session: Session, changes: Sequence[MilestoneChange]) -> None:
    """One `UPDATE … FROM unnest(ids, statuses, times)` on PostgreSQL (an achieved milestone takes
    its time, any other change keeps the one it has); an executemany per shape elsewhere."""
    milestones = _table(Milestone)
    connection = session.connection()
    if session.get_bind().dialect.name == "postgresql":
        moved = (
            func.unnest(
                bindparam(None, [c.milestone_id for c in changes], type_=ARRAY(Integer())),
                bindparam(None, [c.status.value for c in changes], type_=ARRAY(String())),
                bindparam(None, [_achieved_at(c) for c in changes], type_=ARRAY(DateTime(timezone=True))),
            )
            .table_valued("id", "status", "achieved_at")
            .render_derived()
        )
        connection.execute(
            update(milestones)
            .where(milestones.c.id == moved.c.id)
            .values(
                status=moved.c.status,
                achieved_at=func.coalesce(moved.c.achieved_at, milestones.c.achieved_at),
            )
        )
        return
    by_id = update(milestones).where(milestones.c.id == bindparam("b_id"))
    achieved = [c for c in changes if c.status is MilestoneStatus.ACHIEVED]
    if achieved:
        connection.execute(
            by_id.values(status=bindparam("b_status"), achieved_at=bindparam("b_at")),
            [{"b_id": c.milestone_id, "b_status": c.status, "b_at": c.achieved_at} for c in achieved],
        )
    others = [c for c in changes if c.status is not MilestoneStatus.ACHIEVED]
    if others:
        connection.execute(
            by_id.values(status=bindparam("b_status")),
            [{"b_id": c.milestone_id, "b_status": c.status} for c in others],
        )


def _achieved_at(change: MilestoneChange) -> dt.datetime | None:
    return change.achieved_at if change.status is MilestoneStatus.ACHIEVED else None


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


def _revision(change: MilestoneChange, *, now: dt.datetime, channel: str) -> dict[str, Any]:
    if change.status is MilestoneStatus.ACHIEVED:
        fields = achieved_revision(
            change.milestone_key, change.title, now=now, actor="events", channel=channel
        )
        return {"plan_id": change.plan_id, "notified_at": None, **fields}
    return {
        "plan_id": change.plan_id,
        "actor": "northstar",
        "channel": channel,
        "summary": f"Milestone {change.status.value.replace('_', ' ')}: {change.title}",
        "change": {"milestone": change.milestone_key, "status": change.status.value, "was": change.was.value},
        "created_at": now,
        "notified_at": None,
    }


def _sync_session(session: Session, changes: Sequence[MilestoneChange], *, revised: set[int]) -> None:
    """Milestones the session holds take their new status as if loaded so (nothing to flush);
    plans whose history is loaded reload it on next access (it has new revisions)."""
    moved = {c.milestone_id: c for c in changes}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Milestone) and obj.id in moved:
            change = moved[obj.id]
            set_committed_value(obj, "status", change.status)
            if change.status is MilestoneStatus.ACHIEVED:
                set_committed_value(obj, "achieved_at", change.achieved_at)
        elif isinstance(obj, SuccessPlan) and obj.id in revised and "revisions" not in inspect(obj).unloaded:
            session.expire(obj, ["revisions"])
