"""Milestone tracking: criteria are JSON Logic over event facts since the plan started."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from engine import signals
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision


def evaluate_milestones(session: Session, account_ids: list[int], *, now: dt.datetime) -> list[Milestone]:
    """Recompute the given accounts' milestones (engine.plans.progress); return those achieved now."""
    from engine.plans.progress import refresh_plans

    return refresh_plans(session, account_ids, now=now).achieved


def mark_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, actor: str, channel: str
) -> None:
    milestone.status = MilestoneStatus.ACHIEVED
    milestone.achieved_at = now
    plan = milestone.plan
    session.add(
        PlanRevision(
            plan=plan,
            actor=actor,
            channel=channel,
            summary=f"Milestone achieved: {milestone.title}",
            change={"milestone": milestone.key, "status": MilestoneStatus.ACHIEVED.value},
            created_at=now,
        )
    )
    session.flush()
    signals.milestone_achieved.send(
        "engine.plans",
        session=session,
        milestone_id=milestone.id,
        milestone_key=milestone.key,
        plan_id=plan.id,
        account_id=plan.account_id,
        now=now,
    )
