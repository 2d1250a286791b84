"""Milestone tracking: criteria are JSON Logic over event facts since the plan started."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import signals
from engine.errors import ValidationFailed
from engine.events.counts import event_counts
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.rules.logic import holds

log = logging.getLogger(__name__)

OPEN_STATUSES = (MilestoneStatus.PENDING, MilestoneStatus.ON_TRACK, MilestoneStatus.BEHIND)


def evaluate_milestones(session: Session, account_ids: list[int], *, now: dt.datetime) -> list[Milestone]:
    """Mark open milestones whose criteria now hold as achieved; only the given accounts are read."""
    if not account_ids:
        return []
    plans = session.scalars(
        select(SuccessPlan).where(
            SuccessPlan.account_id.in_(account_ids), SuccessPlan.status == PlanStatus.ACTIVE
        )
    ).all()
    achieved: list[Milestone] = []
    for plan in plans:
        open_milestones = [m for m in plan.milestones if m.status in OPEN_STATUSES and m.criteria]
        if not open_milestones:
            continue
        facts = {"events": event_counts(session, plan.account_id, plan.started_at)}
        for milestone in open_milestones:
            try:
                met = holds(milestone.criteria, facts)
            except ValidationFailed:
                log.warning("milestone %s has invalid criteria; skipped", milestone.id, exc_info=True)
                continue
            if met:
                mark_achieved(session, milestone, now=now, actor="events", channel="events")
                achieved.append(milestone)
    return achieved


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
