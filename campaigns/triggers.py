"""Campaigns that start from plan signals instead of a rule's `enroll` action.

A campaign's `trigger.signal` names the signal: `milestone_slipped` / `milestone_achieved` (sent by
engine.plans as they happen; `milestone` narrows it to one milestone key), and the time-based
`milestone_due_soon` (a milestone not yet achieved is due within `days`), `review_near` (the plan's
review is within `days`) and `kr_stalled` (a key result short of its target has not moved for
`days`), checked by the scheduler every hour. Enrolment is idempotent; a campaign with
`reentry_days` lets the same account in again once its last run finished that long ago.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from campaigns.enrollment import CampaignRef, campaign_refs, enroll_account
from engine.plans.models import MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan

log = logging.getLogger(__name__)
TIME_TRIGGERS = ("milestone_due_soon", "review_near", "kr_stalled")
DEFAULT_DAYS = {"milestone_due_soon": 3, "review_near": 7, "kr_stalled": 14}


def _triggered(session: Session, on: str) -> list[tuple[CampaignRef, dict[str, Any]]]:
    found = []
    for ref in campaign_refs(session).values():
        trigger = ref.settings.get("trigger") or {}
        if trigger.get("signal") == on and not ref.paused:
            found.append((ref, trigger))
    return found


def on_milestone_signal(
    session: Session, on: str, *, account_id: int, milestone_key: str, now: dt.datetime
) -> int:
    enrolled = 0
    for ref, trigger in _triggered(session, on):
        if trigger.get("milestone") not in (None, milestone_key):
            continue
        _, created = enroll_account(
            session, account_id, ref.key, now=now, reason=f"trigger {on}: milestone {milestone_key!r}"
        )
        enrolled += created
    return enrolled


def fire_time_triggers(session: Session, *, now: dt.datetime) -> int:
    """Enrol the accounts whose plans meet a time-based trigger now (idempotent)."""
    campaigns = [pair for on in TIME_TRIGGERS for pair in _triggered(session, on)]
    if not campaigns:
        return 0
    today = now.date()
    plans = session.scalars(
        select(SuccessPlan)
        .where(SuccessPlan.status == PlanStatus.ACTIVE)
        .options(selectinload(SuccessPlan.milestones), selectinload(SuccessPlan.key_results))
    ).all()
    moved = _recently_moved_key_results(session, campaigns, now)
    enrolled = 0
    for ref, trigger in campaigns:
        on = str(trigger["signal"])
        days = _days(trigger)
        for plan in plans:
            reason = _reason(plan, on, days, trigger.get("milestone"), today, now, moved)
            if reason is not None:
                _, created = enroll_account(session, plan.account_id, ref.key, now=now, reason=reason)
                enrolled += created
    if enrolled:
        log.info("time triggers enrolled %d accounts", enrolled)
    return enrolled


def _days(trigger: dict[str, Any]) -> int:
    days = trigger.get("days")
    return int(days) if days is not None else DEFAULT_DAYS[str(trigger["signal"])]


def _reason(
    plan: SuccessPlan,
    on: str,
    days: int,
    milestone: str | None,
    today: dt.date,
    now: dt.datetime,
    moved: dict[int, set[str]],
) -> str | None:
    if on == "review_near":
        left = (plan.review_date - today).days
        return f"trigger review_near: review on {plan.review_date:%Y-%m-%d}" if 0 <= left <= days else None
    if on == "milestone_due_soon":
        for m in plan.milestones:
            if milestone not in (None, m.key) or m.status is MilestoneStatus.ACHIEVED:
                continue
            if 0 <= (m.due_date - today).days <= days:
                return f"trigger milestone_due_soon: {m.key!r} due {m.due_date:%Y-%m-%d}"
        return None
    if on == "kr_stalled" and now - plan.started_at >= dt.timedelta(days=days):
        for kr in plan.key_results:
            short = kr.current < kr.target if kr.target >= kr.baseline else kr.current > kr.target
            if short and kr.objective_key not in moved.get(plan.id, set()):
                return f"trigger kr_stalled: {kr.objective_key!r} has not moved for {days} days"
    return None


def _recently_moved_key_results(
    session: Session, campaigns: list[tuple[CampaignRef, dict[str, Any]]], now: dt.datetime
) -> dict[int, set[str]]:
    """Plan id → objective keys whose KR changed within the longest kr_stalled window."""
    windows = [_days(t) for _, t in campaigns if t.get("signal") == "kr_stalled"]
    if not windows:
        return {}
    moved: dict[int, set[str]] = {}
    for plan_id, change in session.execute(
        select(PlanRevision.plan_id, PlanRevision.change).where(
            PlanRevision.created_at >= now - dt.timedelta(days=max(windows))
        )
    ):
        if isinstance(change, dict) and change.get("key_result") and "current" in change:
            moved.setdefault(plan_id, set()).add(str(change["key_result"]))
    return moved
