"""What a tick's steps read about each account's plan: its status, and the milestones and key
results that `wait_until` steps wait on — loaded in three queries per tick."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import StepKind
from engine.db import id_in
from engine.plans.models import KeyResult, Milestone, MilestoneStatus, PlanStatus, SuccessPlan

if TYPE_CHECKING:
    from campaigns.steps import Version


@dataclass
class PlanState:
    """What the steps of one account read about its active plan, loaded once per tick."""

    status: PlanStatus | None = None
    milestones: dict[str, tuple[MilestoneStatus, dt.date]] = field(default_factory=dict)
    key_results: dict[str, tuple[float, float, float]] = field(
        default_factory=dict
    )  # baseline, current, target


def waited_on(
    versions: dict[tuple[int, int], Version],
) -> tuple[set[str], set[str]]:
    """The milestone and key-result keys the `wait_until` steps of these versions read."""
    milestones: set[str] = set()
    key_results: set[str] = set()
    for steps, _settings in versions.values():
        for step in steps:
            if step.kind == StepKind.WAIT_UNTIL and step.config.get("milestone"):
                milestones.add(str(step.config["milestone"]))
            elif step.kind == StepKind.WAIT_UNTIL and step.config.get("kr"):
                key_results.add(str(step.config["kr"]))
    return milestones, key_results


def plan_states(
    session: Session, account_ids: set[int], milestone_keys: set[str], kr_keys: set[str]
) -> dict[int, PlanState]:
    """Every account's active plan status, and the milestones and key results that the steps wait
    on (only those: a tick over 100k plans would otherwise read every milestone of every plan)."""
    states: dict[int, PlanState] = {}
    if not account_ids:
        return states
    if session.get_bind().dialect.name == "postgresql":
        return _plan_states_pg(session, account_ids, milestone_keys, kr_keys)
    plan_of: dict[int, int] = {}
    for plan_id, account_id, status in session.execute(
        select(SuccessPlan.id, SuccessPlan.account_id, SuccessPlan.status).where(
            id_in(session, SuccessPlan.account_id, account_ids), SuccessPlan.status != PlanStatus.CANCELLED
        )
    ):
        plan_of[plan_id] = account_id
        states[account_id] = PlanState(status=status)
    if plan_of and milestone_keys:
        for plan_id, key, milestone_status, due in session.execute(
            select(Milestone.plan_id, Milestone.key, Milestone.status, Milestone.due_date).where(
                id_in(session, Milestone.plan_id, plan_of), Milestone.key.in_(milestone_keys)
            )
        ):
            states[plan_of[plan_id]].milestones[key] = (milestone_status, due)
    if plan_of and kr_keys:
        for plan_id, objective, baseline, current, target in session.execute(
            select(
                KeyResult.plan_id,
                KeyResult.objective_key,
                KeyResult.baseline,
                KeyResult.current,
                KeyResult.target,
            ).where(id_in(session, KeyResult.plan_id, plan_of), KeyResult.objective_key.in_(kr_keys))
        ):
            states[plan_of[plan_id]].key_results[objective] = (float(baseline), float(current), float(target))
    return states


_PLANS = "SELECT id, account_id, status FROM success_plans WHERE account_id = ANY(%s::int[]) AND status <> %s"
_MILESTONES = (
    "SELECT plan_id, key, status, due_date FROM milestones WHERE plan_id = ANY(%s::int[]) AND key = ANY(%s)"
)
_KEY_RESULTS = (
    "SELECT plan_id, objective_key, baseline, current, target FROM key_results "
    "WHERE plan_id = ANY(%s::int[]) AND objective_key = ANY(%s)"
)
_PLAN_STATUSES = {status.value: status for status in PlanStatus}
_MILESTONE_STATUSES = {status.value: status for status in MilestoneStatus}


def _plan_states_pg(
    session: Session, account_ids: set[int], milestone_keys: set[str], kr_keys: set[str]
) -> dict[int, PlanState]:
    """plan_states as plain psycopg rows: a tick over 100,000 accounts reads 100,000 plans and as
    many milestones, and the ORM's per-row processing cost more than the queries."""
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    states: dict[int, PlanState] = {}
    plan_of: dict[int, int] = {}
    statuses = _PLAN_STATUSES
    ids = "{" + ",".join(map(str, account_ids)) + "}"
    for plan_id, account_id, status in cursor.execute(_PLANS, (ids, PlanStatus.CANCELLED.value)).fetchall():
        plan_of[plan_id] = account_id
        states[account_id] = PlanState(status=statuses[status])
    plans = "{" + ",".join(map(str, plan_of)) + "}"
    if plan_of and milestone_keys:
        milestone_statuses = _MILESTONE_STATUSES
        for plan_id, key, status, due in cursor.execute(
            _MILESTONES, (plans, list(milestone_keys))
        ).fetchall():
            states[plan_of[plan_id]].milestones[key] = (milestone_statuses[status], due)
    if plan_of and kr_keys:
        for plan_id, objective, baseline, current, target in cursor.execute(
            _KEY_RESULTS, (plans, list(kr_keys))
        ).fetchall():
            states[plan_of[plan_id]].key_results[objective] = (float(baseline), float(current), float(target))
    return states
