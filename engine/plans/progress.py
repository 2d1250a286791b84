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
from typing import Any, TypeVar

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, selectinload

from engine import signals
from engine.accounts import Contact, ContactRole
from engine.events.counts import plan_event_counts
from engine.plans.milestones import add_revision, announce_achieved, record_achieved
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.rules.logic import evaluate, holds

OPEN = (MilestoneStatus.PENDING, MilestoneStatus.ON_TRACK, MilestoneStatus.BEHIND)
SLIPPED = (MilestoneStatus.BEHIND, MilestoneStatus.MISSED)
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


@dataclass
class MilestoneRow:
    """A milestone as a refresh first reads it: plain columns, no ORM state (see `refresh_plans`)."""

    key: str
    after: str | None
    due_date: dt.date
    criteria: dict[str, Any] | None
    status: MilestoneStatus
    achieved_at: dt.datetime | None


@dataclass
class PlanRow:
    id: int
    started_at: dt.datetime
    milestones: list[MilestoneRow] = field(default_factory=list)


AnyMilestone = TypeVar("AnyMilestone", Milestone, MilestoneRow)


def milestone_window(
    milestone: Milestone | MilestoneRow, plan: SuccessPlan | PlanRow
) -> tuple[dt.date, dt.date]:
    """(start, due): a milestone's window starts when the one it follows is due, else at plan start."""
    start = plan.started_at.date()
    if milestone.after:
        previous = next((m for m in plan.milestones if m.key == milestone.after), None)
        if previous is not None:
            start = previous.achieved_at.date() if previous.achieved_at else previous.due_date
    return min(start, milestone.due_date), milestone.due_date


def status_of(
    milestone: Milestone | MilestoneRow, plan: SuccessPlan | PlanRow, facts: dict[str, Any], today: dt.date
) -> MilestoneStatus:
    if milestone.status is MilestoneStatus.ACHIEVED:
        return MilestoneStatus.ACHIEVED
    if today > milestone.due_date:
        return MilestoneStatus.MISSED
    start, due = milestone_window(milestone, plan)
    if today < start:
        return MilestoneStatus.PENDING
    span = max((due - start).days, 1)
    used = (today - start).days / span
    progress = criteria_progress(milestone.criteria, facts) if milestone.criteria else None
    if progress is not None:
        return MilestoneStatus.BEHIND if progress + BEHIND_MARGIN < used else MilestoneStatus.ON_TRACK
    days_left = (due - today).days
    return MilestoneStatus.BEHIND if days_left < max(3, span / 5) else MilestoneStatus.ON_TRACK


@dataclass(frozen=True)
class Refresh:
    achieved: list[Milestone]
    slipped: list[Milestone]


def advance(
    plan: SuccessPlan | PlanRow, milestones: list[AnyMilestone], facts: dict[str, Any], *, now: dt.datetime
) -> list[tuple[AnyMilestone, MilestoneStatus]]:
    """Move the plan's open milestones to their status now, in memory, in order (an achieved
    milestone opens the window of the one after it); returns (milestone, previous status) per change."""
    today = now.date()
    changed: list[tuple[AnyMilestone, MilestoneStatus]] = []
    # A missed milestone whose criteria hold later is still achieved (late).
    for milestone in [m for m in milestones if m.status in (*OPEN, MilestoneStatus.MISSED)]:
        old = milestone.status
        if milestone.criteria and _holds(milestone.criteria, facts):
            milestone.status, milestone.achieved_at = MilestoneStatus.ACHIEVED, now
            changed.append((milestone, old))
            continue
        if old is MilestoneStatus.MISSED:
            continue
        new = status_of(milestone, plan, facts, today)
        if new is not old:
            milestone.status = new
            changed.append((milestone, old))
    return changed


def refresh_plans(
    session: Session, account_ids: Sequence[int] | None, *, now: dt.datetime, channel: str = "events"
) -> Refresh:
    """Recompute milestone statuses for the given accounts' active plans (None: every active plan).

    Criteria that hold mark milestones achieved (`milestone_achieved`); moves to behind/missed record
    a revision and send `milestone_slipped`. Idempotent: a status that does not change writes nothing.

    One ingest batch touches hundreds of accounts and changes few of their plans, so the work is
    done in two passes with a fixed number of queries: the plans' milestones are read as plain
    rows with one grouped count of their events and advanced in memory; only the plans where
    something changed are then loaded as objects and advanced again (same facts, same answer)
    to write the changes, revisions and signals.
    """
    plans = select(SuccessPlan.id, SuccessPlan.started_at).where(SuccessPlan.status == PlanStatus.ACTIVE)
    if account_ids is not None:
        if not account_ids:
            return Refresh([], [])
        plans = plans.where(SuccessPlan.account_id.in_(account_ids))
    starts = [
        (plan_id, started_at) for plan_id, started_at in session.execute(plans.order_by(SuccessPlan.id))
    ]
    achieved: list[Milestone] = []
    slipped: list[Milestone] = []
    for chunk in range(0, len(starts), REFRESH_CHUNK):
        open_plans = _open_plan_rows(session, starts[chunk : chunk + REFRESH_CHUNK])
        counts = plan_event_counts(session, [r.id for r in open_plans])
        changing = [r.id for r in open_plans if advance(r, r.milestones, {"events": counts[r.id]}, now=now)]
        if not changing:
            continue
        loaded = session.scalars(
            select(SuccessPlan)
            .where(SuccessPlan.id.in_(changing))
            .options(selectinload(SuccessPlan.milestones))
            .order_by(SuccessPlan.id)
        )
        for plan in loaded:
            for milestone, old in advance(plan, plan.milestones, {"events": counts[plan.id]}, now=now):
                new = milestone.status
                if new is MilestoneStatus.ACHIEVED:
                    record_achieved(session, milestone, now=now, actor="events", channel=channel)
                    achieved.append(milestone)
                elif new in SLIPPED:
                    add_revision(
                        session,
                        plan,
                        PlanRevision(
                            actor="northstar",
                            channel=channel,
                            summary=f"Milestone {new.value.replace('_', ' ')}: {milestone.title}",
                            change={"milestone": milestone.key, "status": new.value, "was": old.value},
                            created_at=now,
                        ),
                    )
                    slipped.append(milestone)
    session.flush()
    for milestone in achieved:
        announce_achieved(session, milestone, now=now, batched=True)
    if achieved:
        accounts = sorted({m.plan.account_id for m in achieved})
        signals.milestones_achieved_batch.send("engine.plans", session=session, account_ids=accounts, now=now)
    for milestone in slipped:
        signals.milestone_slipped.send(
            "engine.plans",
            session=session,
            milestone_id=milestone.id,
            milestone_key=milestone.key,
            status=milestone.status.value,
            plan_id=milestone.plan_id,
            account_id=milestone.plan.account_id,
            now=now,
        )
    return Refresh(achieved, slipped)


def _open_plan_rows(session: Session, starts: Sequence[tuple[int, dt.datetime]]) -> list[PlanRow]:
    """The plans (id, started_at) with their milestones as plain rows, those with any still open."""
    rows = {plan_id: PlanRow(plan_id, started_at) for plan_id, started_at in starts}
    milestones = session.execute(
        select(
            Milestone.plan_id,
            Milestone.key,
            Milestone.after,
            Milestone.due_date,
            # As text, parsed once per distinct criterion: a template's milestones share theirs,
            # and decoding thousands of identical JSON documents was a third of this query.
            cast(Milestone.criteria, Text),
            Milestone.status,
            Milestone.achieved_at,
        )
        .where(Milestone.plan_id.in_(rows))
        .order_by(Milestone.plan_id, Milestone.position, Milestone.id)
    )
    parsed: dict[str | None, Any] = {None: None}
    for plan_id, key, after, due_date, criteria, status, achieved_at in milestones:
        if criteria not in parsed:
            parsed[criteria] = json.loads(criteria)
        rows[plan_id].milestones.append(
            MilestoneRow(key, after, due_date, parsed[criteria], status, achieved_at)
        )
    return [
        r for r in rows.values() if any(m.status in (*OPEN, MilestoneStatus.MISSED) for m in r.milestones)
    ]


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
