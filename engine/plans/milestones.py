"""Milestone tracking: criteria are JSON Logic over event facts since the plan started."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from engine import signals
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, SuccessPlan


def evaluate_milestones(session: Session, account_ids: list[int], *, now: dt.datetime) -> list[Milestone]:
    """Recompute the given accounts' milestones (engine.plans.progress); return those achieved now."""
    from engine.plans.progress import refresh_plans

    return refresh_plans(session, account_ids, now=now).achieved


def mark_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, actor: str, channel: str
) -> None:
    record_achieved(session, milestone, now=now, actor=actor, channel=channel)
    session.flush()
    announce_achieved(session, milestone, now=now)


def record_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, actor: str, channel: str
) -> None:
    """The status and its revision, unflushed: a refresh records many, flushes once, then announces."""
    milestone.status = MilestoneStatus.ACHIEVED
    milestone.achieved_at = now
    add_revision(
        session,
        milestone.plan,
        PlanRevision(
            actor=actor,
            channel=channel,
            summary=f"Milestone achieved: {milestone.title}",
            change={"milestone": milestone.key, "status": MilestoneStatus.ACHIEVED.value},
            created_at=now,
        ),
    )


def announce_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, batched: bool = False
) -> None:
    """Send `milestone_achieved` once the achievement is flushed (receivers query the session).

    `batched`: a refresh announces many and then sends `milestones_achieved_batch` once, so
    receivers can do per-account work in one statement."""
    plan = milestone.plan
    signals.milestone_achieved.send(
        "engine.plans",
        session=session,
        milestone_id=milestone.id,
        milestone_key=milestone.key,
        plan_id=plan.id,
        account_id=plan.account_id,
        now=now,
        batched=batched,
    )


def add_revision(session: Session, plan: SuccessPlan, revision: PlanRevision) -> None:
    """Append to the plan's history without loading it: a refresh over hundreds of plans would
    otherwise read every plan's whole history to add one line (it loads on next access)."""
    if plan.id is not None and "revisions" in inspect(plan).unloaded:
        revision.plan_id = plan.id
        session.add(revision)
    else:
        plan.revisions.append(revision)
