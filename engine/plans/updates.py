"""Changes people make to a plan: KR values, milestone status, comments, reviews, stage changes,
and rotating the shared link. Every change is a PlanRevision (who, what, when, which channel) and
sends `plan_updated`, so the other side hears about it (campaigns connect to it)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import signals
from engine.accounts import Account
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.library import below_least
from engine.plans.milestones import mark_achieved
from engine.plans.models import (
    MAX_MILESTONES,
    KeyResult,
    Milestone,
    MilestoneStatus,
    PlanRevision,
    PlanStatus,
    PlanTemplate,
    SuccessPlan,
)
from engine.plans.progress import open_status, refresh_plans
from engine.plans.service import TemplateSpec, get_template, template_milestones

MAX_COMMENT = 2000
CUSTOMER = "customer"
SHARED = "shared"  # the channel of the customer's own changes on the shared plan page


def record(
    session: Session,
    plan: SuccessPlan,
    *,
    actor: str,
    channel: str,
    summary: str,
    change: dict[str, Any],
    now: dt.datetime,
) -> PlanRevision:
    revision = PlanRevision(actor=actor, channel=channel, summary=summary, change=change, created_at=now)
    plan.revisions.append(revision)
    plan.updated_at = now
    session.flush()
    signals.plan_updated.send(
        "engine.plans",
        session=session,
        plan_id=plan.id,
        account_id=plan.account_id,
        revision_id=revision.id,
        actor=actor,
        channel=channel,
        now=now,
    )
    return revision


def _require_active(plan: SuccessPlan) -> None:
    if plan.status is not PlanStatus.ACTIVE:
        raise Conflict(f"this plan is {plan.status.value}; it can no longer change")


def key_result(plan: SuccessPlan, key_result_id: int) -> KeyResult:
    for kr in plan.key_results:
        if kr.id == key_result_id:
            return kr
    raise NotFound(f"no key result {key_result_id} in this plan")


def milestone(plan: SuccessPlan, key: str) -> Milestone:
    for m in plan.milestones:
        if m.key == key:
            return m
    raise NotFound(f"no milestone {key!r} in this plan")


def number(value: Any, field: str, unit: str = "") -> float:
    """A finite number from JSON or a form ("12,000" is read as 12000), and one a measure in `unit`
    can take (no negative %, counts per week or days)."""
    if isinstance(value, str):
        value = value.strip().replace(",", "").replace("_", "")
        try:
            value = float(value)
        except ValueError:
            raise ValidationFailed({field: "must be a number"}) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationFailed({field: "must be a number"})
    if abs(value) > 1e12:
        raise ValidationFailed({field: "is too large"})
    if why := below_least(value, unit):
        raise ValidationFailed({field: why})
    return float(value)


def update_key_result(
    session: Session,
    plan: SuccessPlan,
    key_result_id: int,
    *,
    current: Any = None,
    target: Any = None,
    due_date: dt.date | None = None,
    actor: str,
    channel: str,
    now: dt.datetime,
) -> KeyResult:
    """Set a KR's current value (anyone with the plan) or, for CS ops, its target and due date."""
    _require_active(plan)
    kr = key_result(plan, key_result_id)
    changes: dict[str, Any] = {}
    if current is not None:
        value = number(current, "current", kr.unit)
        if value != kr.current:
            changes["current"] = [kr.current, value]
    if target is not None:
        value = number(target, "target", kr.unit)
        if value == kr.baseline:
            raise ValidationFailed({"target": "the target must differ from the baseline"})
        if value != kr.target:
            changes["target"] = [kr.target, value]
    if due_date is not None:
        if due_date <= now.date():
            raise ValidationFailed({"due_date": "the due date must be in the future"})
        if due_date != kr.due_date:
            changes["due_date"] = [kr.due_date.isoformat(), due_date.isoformat()]
    if not changes:
        return kr
    previous = kr.current
    if "current" in changes:
        kr.current = changes["current"][1]
    if "target" in changes:
        kr.target = changes["target"][1]
    if due_date is not None and "due_date" in changes:
        kr.due_date = due_date
    record(
        session,
        plan,
        actor=actor,
        channel=channel,
        summary=f"{kr.title}: " + ", ".join(f"{k} {_show(a)} → {_show(b)}" for k, (a, b) in changes.items()),
        change={"key_result": kr.objective_key, **changes},
        now=now,
    )
    if "current" in changes:
        signals.key_result_moved.send(
            "engine.plans",
            session=session,
            key_result_id=kr.id,
            plan_id=plan.id,
            account_id=plan.account_id,
            previous=previous,
            current=kr.current,
            now=now,
        )
    return kr


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def set_milestone_status(
    session: Session,
    plan: SuccessPlan,
    key: str,
    status: str,
    *,
    actor: str,
    channel: str,
    now: dt.datetime,
    customer: bool = False,
) -> Milestone:
    """Mark a milestone done (or reopen it). The customer may only mark their own milestones done
    (and take that back: `reopen_milestone`)."""
    _require_active(plan)
    target = milestone(plan, key)
    try:
        wanted = MilestoneStatus(status)
    except ValueError:
        raise ValidationFailed({"status": f"one of {', '.join(s.value for s in MilestoneStatus)}"}) from None
    if customer and (target.owner != CUSTOMER or wanted is not MilestoneStatus.ACHIEVED):
        raise ValidationFailed({"status": "you can mark your own milestones done; ask us to change others"})
    if wanted is target.status:
        return target
    if wanted is MilestoneStatus.ACHIEVED:
        mark_achieved(session, target, now=now, actor=actor, channel=channel)
        signals.plan_updated.send(
            "engine.plans",
            session=session,
            plan_id=plan.id,
            account_id=plan.account_id,
            revision_id=plan.revisions[-1].id if plan.revisions else None,
            actor=actor,
            channel=channel,
            now=now,
        )
        return target
    was = target.status.value.replace("_", " ")
    summary = f"Milestone {target.title}: {was} → {wanted.value.replace('_', ' ')}"
    _set_open_status(session, plan, target, wanted, summary, actor=actor, channel=channel, now=now)
    return target


def _set_open_status(
    session: Session,
    plan: SuccessPlan,
    target: Milestone,
    status: MilestoneStatus,
    summary: str,
    *,
    actor: str,
    channel: str,
    now: dt.datetime,
) -> None:
    """Move a milestone to a status other than achieved, and record it (the dashboard counts a
    revision's `status`)."""
    was = target.status
    target.status, target.achieved_at = status, None
    change = {"milestone": target.key, "status": status.value, "was": was.value}
    record(session, plan, actor=actor, channel=channel, summary=summary, change=change, now=now)


def marked_done_on_shared_page(session: Session, plan: SuccessPlan) -> set[str]:
    """The keys of the customer's achieved milestones whose latest achievement is their own "Mark
    done" on the shared page: the ones they may take back (`reopen_milestone`)."""
    mine = [m.key for m in plan.milestones if m.owner == CUSTOMER and m.status is MilestoneStatus.ACHIEVED]
    return {key for key, (_, channel) in _achieved_by(session, plan, mine).items() if channel == SHARED}


def _achieved_by(session: Session, plan: SuccessPlan, keys: list[str]) -> dict[str, tuple[str, str]]:
    """{key: (actor, channel)} of the revision that last recorded each milestone achieved."""
    if not keys:
        return {}
    milestone_key = PlanRevision.change["milestone"].as_string()
    rows = session.execute(
        select(milestone_key, PlanRevision.actor, PlanRevision.channel)
        .where(
            PlanRevision.plan_id == plan.id,
            milestone_key.in_(keys),
            PlanRevision.change["status"].as_string() == MilestoneStatus.ACHIEVED.value,
        )
        .order_by(PlanRevision.id)
    )
    return {key: (actor, channel) for key, actor, channel in rows}  # the latest of each wins


def reopen_milestone(
    session: Session, plan: SuccessPlan, key: str, *, actor: str, channel: str, now: dt.datetime
) -> Milestone:
    """The customer takes back their own "Mark done": a milestone of theirs achieved because they
    marked it done on the shared page (not by product events or by us) is open again, with the
    status it would have now by its dates (`open_status`). What its achievement already set off
    (a campaign that moved on) stays as it is. Reopening an open milestone changes nothing, so a
    form sent twice is harmless."""
    _require_active(plan)
    target = milestone(plan, key)
    if target.owner != CUSTOMER:
        raise ValidationFailed({"status": "you can reopen your own milestones; ask us to change others"})
    if target.status is not MilestoneStatus.ACHIEVED:
        return target
    by, on = _achieved_by(session, plan, [key]).get(key, (None, None))
    if by == "events":
        raise Conflict(f"“{target.title}” was achieved from your product use, so it stays done")
    if on != SHARED:
        raise Conflict(f"“{target.title}” was marked done by our team; ask us to reopen it")
    status = open_status(session, plan.id, key, now=now)
    summary = f"Milestone reopened: {target.title}"
    _set_open_status(session, plan, target, status, summary, actor=actor, channel=channel, now=now)
    # Its criteria may hold (then it is achieved again, by events), and the milestone that follows
    # it waits for its due date now rather than its achievement.
    refresh_plans(session, [plan.account_id], now=now)
    return target


def set_milestone_due(
    session: Session, plan: SuccessPlan, key: str, due: dt.date, *, actor: str, channel: str, now: dt.datetime
) -> Milestone:
    """Move a milestone's due date, keeping the dependency order (never before the one it follows,
    never after one that follows it)."""
    _require_active(plan)
    target = milestone(plan, key)
    if target.after:
        before = milestone(plan, target.after)
        if due < before.due_date:
            raise ValidationFailed(
                {"due_date": f"it follows {before.title!r} (due {before.due_date:%Y-%m-%d}): not earlier"}
            )
    for later in plan.milestones:
        if later.after == key and due > later.due_date:
            raise ValidationFailed(
                {"due_date": f"{later.title!r} follows it (due {later.due_date:%Y-%m-%d}): move that first"}
            )
    if due == target.due_date:
        return target
    was, target.due_date = target.due_date, due
    record(
        session,
        plan,
        actor=actor,
        channel=channel,
        summary=f"Milestone {target.title}: due {was:%Y-%m-%d} → {due:%Y-%m-%d}",
        change={"milestone": key, "due_date": [was.isoformat(), due.isoformat()]},
        now=now,
    )
    return target


def add_comment(
    session: Session, plan: SuccessPlan, text: str, *, actor: str, channel: str, now: dt.datetime
) -> PlanRevision:
    body = (text or "").strip()
    if not body:
        raise ValidationFailed({"comment": "write a comment first"})
    if len(body) > MAX_COMMENT:
        raise ValidationFailed({"comment": f"at most {MAX_COMMENT} characters (this one has {len(body)})"})
    return record(
        session, plan, actor=actor, channel=channel, summary="Comment", change={"comment": body}, now=now
    )


def confirm_review(
    session: Session, plan: SuccessPlan, *, actor: str, channel: str, now: dt.datetime
) -> SuccessPlan:
    """Both sides reviewed the plan: the next review is one cadence from today."""
    _require_active(plan)
    was = plan.review_date
    plan.last_reviewed_at = now
    plan.review_date = now.date() + dt.timedelta(days=plan.review_every_days)
    record(
        session,
        plan,
        actor=actor,
        channel=channel,
        summary=f"Review confirmed; next review {plan.review_date:%B %d, %Y}",
        change={"review": [was.isoformat(), plan.review_date.isoformat()]},
        now=now,
    )
    return plan


def rotate_share_link(session: Session, plan: SuccessPlan, *, actor: str, now: dt.datetime) -> SuccessPlan:
    """Revoke every link shared so far; the next link carries the new version."""
    plan.share_token_version += 1
    record(
        session,
        plan,
        actor=actor,
        channel="admin",
        summary="Shared link rotated: earlier links no longer open the plan",
        change={"share_token_version": plan.share_token_version},
        now=now,
    )
    return plan


def template_for_stage(session: Session, stage: str) -> TemplateSpec | None:
    query = select(PlanTemplate.key).where(PlanTemplate.stage == stage).order_by(PlanTemplate.id)
    key = session.scalar(query.limit(1))
    return get_template(session, key) if key else None


def refresh_for_stage(session: Session, account: Account, plan: SuccessPlan, *, now: dt.datetime) -> bool:
    """The account moved to a lifecycle stage that has its own template: bring the plan to it.

    Keeps what the customer entered (key results, achieved milestones, comments); open milestones
    from the old stage are replaced by the new stage's; the goal is re-rendered only if nobody
    edited it. Returns whether anything changed.
    """
    if plan.stage == account.lifecycle_stage or plan.status is not PlanStatus.ACTIVE:
        return False
    template = template_for_stage(session, account.lifecycle_stage)
    if template is None:
        return False
    kept = [m for m in plan.milestones if m.status is MilestoneStatus.ACHIEVED]
    room = MAX_MILESTONES - len(kept)
    fresh = [
        m
        for m in template_milestones(template, now.date(), first_position=len(kept))
        if m.key not in {k.key for k in kept}
    ][: max(room, 0)]
    dropped = [m.key for m in plan.milestones if m not in kept]
    plan.milestones = [*kept, *fresh]
    for i, m in enumerate(plan.milestones):
        m.position = i
    was = plan.stage
    plan.stage, plan.template_key = account.lifecycle_stage, template.key
    plan.review_every_days = template.review_days
    record(
        session,
        plan,
        actor="northstar",
        channel="lifecycle",
        summary=f"Plan moved to the {account.lifecycle_stage} stage ({template.name}); your measures and "
        f"achieved milestones are kept",
        change={"stage": [was, account.lifecycle_stage], "template": template.key, "dropped": dropped},
        now=now,
    )
    return True
