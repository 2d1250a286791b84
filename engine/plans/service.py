"""Plan operations: render a template into a one-page plan for an account, record every change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session

from engine import db, refcache
from engine.accounts import Account
from engine.errors import NotFound, ValidationFailed
from engine.library import ObjectiveInfo, objectives_by_key
from engine.plans.milestones import add_revision
from engine.plans.models import (
    MAX_MEASURES,
    MAX_MILESTONES,
    KeyResult,
    Milestone,
    PlanRevision,
    PlanStatus,
    PlanTemplate,
    SuccessPlan,
)
from engine.templating import render_text

refcache.watch(PlanTemplate.__tablename__)


@dataclass(frozen=True)
class ObjectiveChoice:
    """An objective a customer chose, with their own numbers where they gave them."""

    key: str
    baseline: float | None = None
    target: float | None = None
    due_date: dt.date | None = None


@dataclass(frozen=True)
class TemplateSpec:
    """A plan template as plain values (cached; see engine.refcache)."""

    key: str
    name: str
    goal: str
    default_objectives: list[str]
    milestones: list[dict[str, Any]]
    dependencies: list[dict[str, Any]]
    risks: list[dict[str, Any]]
    review_days: int
    stage: str | None = None


def get_template(session: Session, key: str) -> TemplateSpec:
    def load() -> dict[str, TemplateSpec]:
        return {
            t.key: TemplateSpec(
                t.key,
                t.name,
                t.goal,
                list(t.default_objectives),
                list(t.milestones),
                list(t.dependencies),
                list(t.risks),
                t.review_days,
                t.stage,
            )
            for t in session.scalars(select(PlanTemplate))
        }

    template = refcache.cached(session, "plan_templates", load).get(key)
    if template is None:
        raise NotFound(f"no plan template {key!r}")
    return template


_NO_ACTIVE_PLAN = "northstar.no_active_plan"


def note_active_plans(session: Session, account_ids: Iterable[int], with_plan: Collection[int]) -> None:
    """Remember, for this transaction, which of `account_ids` were just read to have no active
    plan, so `active_plan` need not ask again (a live decision reads plan facts, then the plan).
    Forgotten at any flush or statement that may change plans, and at commit or rollback."""
    none = {a for a in account_ids if a not in with_plan}
    session.info.setdefault(_NO_ACTIVE_PLAN, set()).update(none)
    session.info[_NO_ACTIVE_PLAN].difference_update(with_plan)


def _forget_no_plan(session: Session, *_: Any) -> None:
    session.info.pop(_NO_ACTIVE_PLAN, None)


@event.listens_for(Session, "after_flush")
def _plans_flushed(session: Session, _context: Any) -> None:
    if _NO_ACTIVE_PLAN in session.info and any(
        isinstance(o, SuccessPlan) for o in chain(session.new, session.dirty, session.deleted)
    ):
        _forget_no_plan(session)


@event.listens_for(Session, "do_orm_execute")
def _statement_run(state: ORMExecuteState) -> None:
    if not state.is_select and _NO_ACTIVE_PLAN in state.session.info:
        _forget_no_plan(state.session)  # a bulk UPDATE/INSERT/DELETE or raw SQL may touch plans


for _name in ("after_commit", "after_rollback", "after_soft_rollback"):
    event.listen(Session, _name, _forget_no_plan)

# The plans added to a session and not flushed yet, so `active_plan` finds one without walking
# `session.new` (rebuilt on every access: the `rules` job's batch holds a thousand pending rows).
_PENDING_PLANS = "northstar.pending_plans"


@event.listens_for(Session, "transient_to_pending")
def _plan_added(session: Session, instance: object) -> None:
    if isinstance(instance, SuccessPlan):
        session.info.setdefault(_PENDING_PLANS, []).append(instance)


def _forget_pending(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING_PLANS, None)


for _name in ("after_flush_postexec", "after_commit", "after_rollback"):
    event.listen(Session, _name, _forget_pending)


def active_plan(session: Session, account_id: int) -> SuccessPlan | None:
    """The account's active plan; one this session already holds is returned without a query,
    and so is "none" when this transaction just read that the account has none."""
    for instance in session.identity_map.values():
        if (
            isinstance(instance, SuccessPlan)
            and instance.account_id == account_id
            and instance.status == PlanStatus.ACTIVE
        ):
            return instance
    unsure = False  # a pending plan whose account is not set yet could be this account's
    pending: list[SuccessPlan] = session.info.get(_PENDING_PLANS, [])
    for plan in pending:  # still pending: not expunged, nor rolled back to a savepoint
        owner = plan.account_id
        if owner == account_id and plan.status == PlanStatus.ACTIVE and inspect(plan).pending:
            return plan
        unsure = unsure or (owner is None and inspect(plan).pending)
    if account_id in session.info.get(_NO_ACTIVE_PLAN, ()) and not unsure:
        return None
    return session.scalar(
        select(SuccessPlan).where(
            SuccessPlan.account_id == account_id, SuccessPlan.status == PlanStatus.ACTIVE
        )
    )


def create_plan(
    session: Session,
    account: Account,
    template: TemplateSpec,
    choices: list[ObjectiveChoice],
    *,
    now: dt.datetime,
    actor: str = "rules",
    channel: str = "rules",
) -> SuccessPlan:
    """Render `template` into a plan: ≤4 key results from the chosen objectives, ≤5 milestones."""
    library = objectives_by_key(session)
    if not choices:
        choices = [ObjectiveChoice(key) for key in template.default_objectives]
    unknown = [c.key for c in choices if c.key not in library]
    if unknown:
        raise ValidationFailed({"objectives": f"unknown objectives: {', '.join(unknown)}"})
    today = now.date()
    key_results = [_key_result(library[c.key], c, today) for c in choices[:MAX_MEASURES]]
    review_date = today + dt.timedelta(days=template.review_days)
    context: dict[str, Any] = {
        "account": {"name": account.name, "segment": account.segment},
        "objectives": [kr.title for kr in key_results],
        "measures": [kr.sentence for kr in key_results],
        "review_date": review_date.strftime("%B %d, %Y"),
    }
    plan = SuccessPlan(
        account_id=account.id,
        template_key=template.key,
        status=PlanStatus.ACTIVE,
        goal=render_text(template.goal, context, field=f"plan_templates.{template.key}.goal"),
        dependencies=list(template.dependencies),
        risks=list(template.risks),
        started_at=now,
        review_date=review_date,
        review_every_days=template.review_days,
        stage=template.stage,
    )
    plan.key_results = key_results
    plan.milestones = template_milestones(template, today)
    plan.revisions = [
        PlanRevision(
            actor=actor,
            channel=channel,
            summary=f"Plan created: {template.name}",  # customers read it in the plan's history
            change={"template": template.key, "objectives": [c.key for c in choices]},
            created_at=now,
        )
    ]
    session.add(plan)
    db.flush(session)
    return plan


def template_milestones(
    template: TemplateSpec, start: dt.date, *, first_position: int = 0
) -> list[Milestone]:
    """The template's milestones (≤ MAX_MILESTONES), each due `due_days` after the plan starts or
    after the milestone it follows (`after`) is due."""
    due: dict[str, dt.date] = {}
    milestones = []
    for i, m in enumerate(template.milestones[:MAX_MILESTONES]):
        base = due.get(m.get("after") or "", start)
        due[m["key"]] = base + dt.timedelta(days=int(m["due_days"]))
        milestones.append(
            Milestone(
                key=m["key"],
                title=m["title"],
                position=first_position + i,
                owner=m.get("owner", "customer"),
                due_date=due[m["key"]],
                after=m.get("after"),
                criteria=m.get("criteria"),
            )
        )
    return milestones


def _key_result(objective: ObjectiveInfo, choice: ObjectiveChoice, today: dt.date) -> KeyResult:
    baseline = objective.default_baseline if choice.baseline is None else choice.baseline
    target = objective.default_target if choice.target is None else choice.target
    due = choice.due_date or today + dt.timedelta(days=objective.default_days)
    return KeyResult(
        objective_key=objective.key,
        title=objective.title,
        metric=objective.metric,
        unit=objective.unit,
        baseline=baseline,
        target=target,
        current=baseline,
        due_date=due,
    )


def add_objective(
    session: Session,
    plan: SuccessPlan,
    choice: ObjectiveChoice,
    *,
    now: dt.datetime,
    actor: str = "rules",
    channel: str = "rules",
) -> KeyResult | None:
    """Add a measure for `choice` unless the plan already measures it or holds MAX_MEASURES."""
    if (
        any(kr.objective_key == choice.key for kr in plan.key_results)
        or len(plan.key_results) >= MAX_MEASURES
    ):
        return None
    library = objectives_by_key(session)
    if choice.key not in library:
        raise ValidationFailed({"key": f"no objective {choice.key!r} in the library"})
    key_result = _key_result(library[choice.key], choice, now.date())
    plan.key_results.append(key_result)
    _revise(
        session,
        plan,
        f"Measure added: {key_result.sentence}",
        {"add_objective": choice.key},
        actor,
        channel,
        now,
    )
    return key_result


def add_milestone(
    session: Session,
    plan: SuccessPlan,
    spec: dict[str, Any],
    *,
    now: dt.datetime,
    actor: str = "rules",
    channel: str = "rules",
) -> Milestone | None:
    """Add a milestone (key, title, due_in_days, owner, criteria) unless its key exists or the plan
    already holds MAX_MILESTONES."""
    if any(m.key == spec["key"] for m in plan.milestones) or len(plan.milestones) >= MAX_MILESTONES:
        return None
    milestone = Milestone(
        key=str(spec["key"]),
        title=str(spec["title"]),
        position=max((m.position for m in plan.milestones), default=-1) + 1,
        owner=str(spec.get("owner") or "customer"),
        due_date=now.date() + dt.timedelta(days=int(spec["due_in_days"])),
        criteria=spec.get("criteria"),
    )
    plan.milestones.append(milestone)
    summary = f"Milestone added: {milestone.title} (due {milestone.due_date:%Y-%m-%d})"
    _revise(session, plan, summary, {"add_milestone": milestone.key}, actor, channel, now)
    return milestone


def _revise(
    session: Session,
    plan: SuccessPlan,
    summary: str,
    change: dict[str, Any],
    actor: str,
    channel: str,
    now: dt.datetime,
) -> None:
    revision = PlanRevision(actor=actor, channel=channel, summary=summary, change=change, created_at=now)
    add_revision(session, plan, revision)
    db.flush(session)
