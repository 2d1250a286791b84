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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import signals
from engine.accounts import Contact, ContactRole
from engine.events.counts import event_counts
from engine.plans.milestones import mark_achieved
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.rules.logic import evaluate, holds

OPEN = (MilestoneStatus.PENDING, MilestoneStatus.ON_TRACK, MilestoneStatus.BEHIND)
SLIPPED = (MilestoneStatus.BEHIND, MilestoneStatus.MISSED)
BEHIND_MARGIN = 0.25  # progress may trail the time used by this much before the milestone is behind
WANTED = {ContactRole.EXEC_SPONSOR: 1, ContactRole.CHAMPION: 2, ContactRole.POWER_USER: 3}  # seed 004's 1-2-3
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
            value = evaluate(left, facts)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return max(0.0, min(1.0, value / threshold))
    return None


def milestone_window(milestone: Milestone, plan: SuccessPlan) -> tuple[dt.date, dt.date]:
    """(start, due): a milestone's window starts when the one it follows is due, else at plan start."""
    start = plan.started_at.date()
    if milestone.after:
        previous = next((m for m in plan.milestones if m.key == milestone.after), None)
        if previous is not None:
            start = previous.achieved_at.date() if previous.achieved_at else previous.due_date
    return min(start, milestone.due_date), milestone.due_date


def status_of(
    milestone: Milestone, plan: SuccessPlan, facts: dict[str, Any], today: dt.date
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


def refresh_plans(
    session: Session, account_ids: Sequence[int] | None, *, now: dt.datetime, channel: str = "events"
) -> Refresh:
    """Recompute milestone statuses for the given accounts' active plans (None: every active plan).

    Criteria that hold mark milestones achieved (`milestone_achieved`); moves to behind/missed record
    a revision and send `milestone_slipped`. Idempotent: a status that does not change writes nothing.
    """
    query = select(SuccessPlan).where(SuccessPlan.status == PlanStatus.ACTIVE)
    if account_ids is not None:
        if not account_ids:
            return Refresh([], [])
        query = query.where(SuccessPlan.account_id.in_(account_ids))
    today = now.date()
    achieved: list[Milestone] = []
    slipped: list[Milestone] = []
    for plan in session.scalars(query).all():
        # A missed milestone whose criteria hold later is still achieved (late).
        open_milestones = [m for m in plan.milestones if m.status in (*OPEN, MilestoneStatus.MISSED)]
        if not open_milestones:
            continue
        facts = {"events": event_counts(session, plan.account_id, plan.started_at)}
        for milestone in open_milestones:
            if milestone.criteria and _holds(milestone.criteria, facts):
                mark_achieved(session, milestone, now=now, actor="events", channel=channel)
                achieved.append(milestone)
                continue
            if milestone.status is MilestoneStatus.MISSED:
                continue
            new = status_of(milestone, plan, facts, today)
            if new is milestone.status:
                continue
            old, milestone.status = milestone.status, new
            if new in SLIPPED:
                plan.revisions.append(
                    PlanRevision(
                        actor="northstar",
                        channel=channel,
                        summary=f"Milestone {new.value.replace('_', ' ')}: {milestone.title}",
                        change={"milestone": milestone.key, "status": new.value, "was": old.value},
                        created_at=now,
                    )
                )
                slipped.append(milestone)
    session.flush()
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


def _holds(criteria: Any, facts: dict[str, Any]) -> bool:
    try:
        return holds(criteria, facts)
    except Exception:  # noqa: BLE001 - a stored criterion that no longer evaluates never crashes ingest
        return False


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
