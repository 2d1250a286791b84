"""Milestone tracking: criteria are JSON Logic over event facts since the plan started."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from engine import signals
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, SuccessPlan


def evaluate_milestones(session: Session, account_ids: list[int], *, now: dt.datetime) -> list[int]:
    """Recompute the given accounts' milestones (engine.plans.progress); return the ids achieved now."""
    from engine.plans.progress import refresh_plans

    return [change.milestone_id for change in refresh_plans(session, account_ids, now=now).achieved]


def mark_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, actor: str, channel: str
) -> None:
    record_achieved(session, milestone, now=now, actor=actor, channel=channel)
    session.flush()
    plan = milestone.plan
    announce_achieved(
        session,
        milestone_id=milestone.id,
        milestone_key=milestone.key,
        plan_id=plan.id,
        account_id=plan.account_id,
        now=now,
    )


def record_achieved(
    session: Session, milestone: Milestone, *, now: dt.datetime, actor: str, channel: str
) -> None:
    """The status and its revision, unflushed."""
    milestone.status = MilestoneStatus.ACHIEVED
    milestone.achieved_at = now
    revision = achieved_revision(milestone.key, milestone.title, now=now, actor=actor, channel=channel)
    add_revision(session, milestone.plan, PlanRevision(**revision))


def achieved_revision(key: str, title: str, *, now: dt.datetime, actor: str, channel: str) -> dict[str, Any]:
    """The fields of the revision that records an achieved milestone (for the ORM or a Core INSERT)."""
    return {
        "actor": actor,
        "channel": channel,
        "summary": f"Milestone achieved: {title}",
        "change": {"milestone": key, "status": MilestoneStatus.ACHIEVED.value},
        "created_at": now,
    }


def announce_achieved(
    session: Session,
    *,
    milestone_id: int,
    milestone_key: str,
    plan_id: int,
    account_id: int,
    now: dt.datetime,
    batched: bool = False,
) -> None:
    """Send `milestone_achieved` once the achievement is written (receivers query the session).

    `batched`: a refresh announces many and then sends `milestones_achieved_batch` once, so
    receivers can do per-account work in one statement."""
    signals.milestone_achieved.send(
        "engine.plans",
        session=session,
        milestone_id=milestone_id,
        milestone_key=milestone_key,
        plan_id=plan_id,
        account_id=account_id,
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
