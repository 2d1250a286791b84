"""Where a plan stands: each milestone's status from events and dates, and the relationship triangle.

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
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
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
from engine.accounts import Contact, ContactRole
from engine.db import id_in
from engine.events.counts import PlanWindow, Tallies, plan_event_tallies
from engine.plans.milestones import achieved_revision, announce_achieved
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.rules.logic import evaluate, holds

OPEN = (MilestoneStatus.PENDING, MilestoneStatus.ON_TRACK, MilestoneStatus.BEHIND)
MOVABLE = (*OPEN, MilestoneStatus.MISSED)  # a missed milestone can still be achieved, late
SLIPPED = (MilestoneStatus.BEHIND, MilestoneStatus.MISSED)
RECORDED = (MilestoneStatus.ACHIEVED, *SLIPPED)  # moves that write a revision
STATUSES = {status.value: status for status in MilestoneStatus}
BEHIND_MARGIN = 0.25  # progress may trail the time used by this much before the milestone is behind
WANTED = {ContactRole.EXEC_SPONSOR: 1, ContactRole.CHAMPION: 2, ContactRole.POWER_USER: 3}  # seed 004's 1-2-3
REFRESH_CHUNK = 1000  # plans per grouped count query (the hourly refresh reads every active plan)
ROLE_NAMES = {
    ContactRole.EXEC_SPONSOR: ("executive sponsor", "executive sponsors"),
    ContactRole.CHAMPION: ("champion", "champions"),
    ContactRole.POWER_USER: ("power user", "power users"),
}


def criteria_progress(criteria: Any, facts: dict[str, Any]) -> float | None:
    """0..1 for criteria shaped `{">=": [{"var": …}, n]}` (or an `and` of them), else None."""
    if not isinstance(criteria, dict) or len(criteria) != 1:
        return None
    op, args = next(iter(criteria.items()))
    if op == "and" and isinstance(args, list) and args:
        parts = [criteria_progress(a, facts) for a in args]
        return None if any(p is None for p in parts) else min(p for p in parts if p is not None)
    if op in (">=", ">") and isinstance(args, list) and len(args) == 2:
        left, threshold = args
        if isinstance(left, dict) and "var" in left and isinstance(threshold, int | float) and threshold > 0:
            value = _var(left, facts)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return max(0.0, min(1.0, value / threshold))
    return None


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


def _holds(criteria: Any, facts: dict[str, Any]) -> bool:
    quick = _threshold_holds(criteria, facts)
    if quick is not None:
        return quick
    try:
        return holds(criteria, facts)
    except Exception:  # noqa: BLE001 - a stored criterion that no longer evaluates never crashes ingest
        return False


# Criteria are nearly always `{">=": [{"var": "events.<name>.count"}, n]}`, checked for every open
# milestone of every plan an ingest batch touches (thousands per batch). For that shape the answer
# is read straight from the facts; anything else, or a value that is not a plain number, goes to the
# JSON Logic engine, so the result is the engine's in every case.
_MISSING = object()  # a dotted path one of whose dicts lacks the key: JSON Logic reads it as null
_UNSURE = object()  # a path through something other than dicts (arrays, defaults): ask the engine


def _lookup(path: Any, facts: Any) -> Any:
    if not isinstance(path, str) or not path:
        return _UNSURE
    value = facts
    for part in path.split("."):
        if not isinstance(value, dict):
            return _UNSURE
        if part not in value:
            return _MISSING
        value = value[part]
    return value


def _var(operand: dict[str, Any], facts: dict[str, Any]) -> Any:
    """`evaluate(operand, facts)` for a `{"var": …}` operand."""
    value = _lookup(operand["var"], facts) if len(operand) == 1 else _UNSURE
    if value is _MISSING:
        return None
    return evaluate(operand, facts) if value is _UNSURE else value


def _plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _threshold_holds(criteria: Any, facts: dict[str, Any]) -> bool | None:
    """`holds(criteria, facts)` for `{">=" | ">": [{"var": path}, n]}`, or None to ask the engine."""
    if not isinstance(criteria, dict) or len(criteria) != 1:
        return None
    op, args = next(iter(criteria.items()))
    if op not in (">=", ">") or not isinstance(args, list) or len(args) != 2:
        return None
    left, threshold = args
    if not isinstance(left, dict) or len(left) != 1 or "var" not in left or not _plain_number(threshold):
        return None
    value = _lookup(left["var"], facts)
    if value is _MISSING:
        return _holds_when_missing(op, left["var"], threshold)
    if not _plain_number(value):
        return None
    return bool(value >= threshold if op == ">=" else value > threshold)


@lru_cache(maxsize=1024)
def _holds_when_missing(op: str, path: str, threshold: float) -> bool:
    """How the engine compares a missing (null) value with the threshold: asked once per shape."""
    return holds({op: [{"var": path}, threshold]}, {})


def _facts(tallies: Tallies) -> dict[str, Any]:
    """The facts criteria are written against: {"events": {"<name>": {"count": n}}}."""
    return {"events": {name: {"count": count} for name, count in tallies.items()}}


@dataclass(frozen=True, slots=True)
class _Threshold:
    """`{">=" | ">": [{"var": "events.<name>.count"}, n]}` with n a plain number."""

    name: str
    strict: bool
    threshold: int | float
    when_missing: bool  # what JSON Logic answers when the plan has no such event (a null count)

    def holds(self, tallies: Tallies) -> bool:
        count = tallies.get(self.name)
        if count is None:
            return self.when_missing
        return count > self.threshold if self.strict else count >= self.threshold

    def progress(self, tallies: Tallies) -> float | None:
        count = tallies.get(self.name)
        if count is None or self.threshold <= 0:
            return None
        return max(0.0, min(1.0, count / self.threshold))


class Criteria:
    """A milestone's criteria, compiled once per distinct document (`compile_criteria`).

    The common shapes — a count threshold on one event name, or an `and` of them — are answered
    from the plan's tallies directly; any other document is evaluated by the JSON Logic engine
    over the facts (`_holds`, `criteria_progress`), as before. Either way the answer is the
    engine's (tests/test_events_fastpath.py compares them). `names`: the event names the criteria
    read, so a refresh counts only those (None: it may read any fact)."""

    __slots__ = ("document", "names", "_parts")

    def __init__(self, document: Any) -> None:
        self.document = document
        self._parts = _thresholds(document)
        self.names = None if self._parts is None else frozenset(p.name for p in self._parts)

    def holds(self, tallies: Tallies) -> bool:
        if self._parts is None:
            return _holds(self.document, _facts(tallies))
        return all(part.holds(tallies) for part in self._parts)

    def progress(self, tallies: Tallies) -> float | None:
        """0..1 as `criteria_progress` reads it, or None when the criteria give no measure."""
        if self._parts is None:
            return criteria_progress(self.document, _facts(tallies))
        lowest = 1.0
        for part in self._parts:
            found = part.progress(tallies)
            if found is None:
                return None
            lowest = min(lowest, found)
        return lowest


@lru_cache(maxsize=4096)
def compile_criteria(document: str | None) -> Criteria | None:
    """The compiled criteria for a milestone's criteria as stored JSON text (None: no criteria,
    as for any falsy document)."""
    if document is None:
        return None
    parsed = json.loads(document)
    return Criteria(parsed) if parsed else None


def _thresholds(document: Any) -> tuple[_Threshold, ...] | None:
    """The thresholds the document is the conjunction of, or None for any other shape."""
    if not isinstance(document, dict) or len(document) != 1:
        return None
    op, args = next(iter(document.items()))
    if op == "and":
        if not isinstance(args, list) or not args:
            return None
        parts = [_threshold(arg) for arg in args]
        return None if any(p is None for p in parts) else tuple(p for p in parts if p is not None)
    single = _threshold(document)
    return None if single is None else (single,)


def _threshold(document: Any) -> _Threshold | None:
    if not isinstance(document, dict) or len(document) != 1:
        return None
    op, args = next(iter(document.items()))
    if op not in (">=", ">") or not isinstance(args, list) or len(args) != 2:
        return None
    left, threshold = args
    if not isinstance(left, dict) or len(left) != 1 or not _plain_number(threshold):
        return None
    path = left.get("var")
    parts = path.split(".") if isinstance(path, str) else []
    if len(parts) != 3 or parts[0] != "events" or not parts[1] or parts[2] != "count":
        return None
    return _Threshold(parts[1], op == ">", threshold, _holds_when_missing(op, path, threshold))


@dataclass(frozen=True)
class Triangle:
    """The seed's relationship triangle: 1 executive sponsor, 2 champions, 3 power users."""

    exec_sponsors: list[Contact]
    champions: list[Contact]
    power_users: list[Contact]
    gaps: list[str]

    def to_dict(self) -> dict[str, Any]:
        def people(contacts: list[Contact]) -> list[dict[str, str]]:
            return [{"name": c.name, "email": c.email} for c in contacts]

        return {
            "exec_sponsor": people(self.exec_sponsors),
            "champions": people(self.champions),
            "power_users": people(self.power_users),
            "gaps": list(self.gaps),
        }


def triangle(contacts: Sequence[Contact]) -> Triangle:
    by_role: dict[ContactRole, list[Contact]] = {role: [] for role in WANTED}
    for contact in contacts:
        if contact.role in by_role:
            by_role[contact.role].append(contact)
    gaps = []
    for role, wanted in WANTED.items():
        have = len(by_role[role])
        one, many = ROLE_NAMES[role]
        if have == 0:
            gaps.append(f"no {one}")
        elif have < wanted:
            gaps.append(f"{have} of {wanted} {many}")
    return Triangle(
        by_role[ContactRole.EXEC_SPONSOR],
        by_role[ContactRole.CHAMPION],
        by_role[ContactRole.POWER_USER],
        gaps,
    )
