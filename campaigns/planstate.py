"""What a tick's steps read about each account's plan: its status, and the milestones and key
results that `wait_until` steps wait on — loaded in three queries per tick."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
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
    session: Session,
    account_ids: set[int],
    milestone_keys: set[str],
    kr_keys: set[str],
    *,
    portable: bool = False,
) -> dict[int, PlanState]:
    """Every account's active plan status, and the milestones and key results that the steps wait
    on (only those: a tick over 100k plans would otherwise read every milestone of every plan).
    On PostgreSQL as plain rows (PlanStateReads) unless `portable` (the ORM's queries, as on SQLite:
    the reference tests/test_tick_reads.py compares them with)."""
    states: dict[int, PlanState] = {}
    if not account_ids:
        return states
    if session.get_bind().dialect.name == "postgresql" and not portable:
        driver = session.connection().connection.driver_connection
        ids = "{" + ",".join(map(str, account_ids)) + "}"
        return PlanStateReads(driver, ids, milestone_keys, kr_keys).collect()  # type: ignore[arg-type]
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


# Each plan that is not cancelled, with the waited-on milestones (one query: no plan ids to wait for).
_PLANS = (
    "SELECT p.id, p.account_id, p.status, m.key, m.status, m.due_date FROM success_plans AS p "
    "LEFT JOIN milestones AS m ON m.plan_id = p.id AND m.key = ANY(%s::varchar[]) "
    "WHERE p.account_id = ANY(%s::int[]) AND p.status <> %s"
)
_KEY_RESULTS = (
    "SELECT k.plan_id, k.objective_key, k.baseline, k.current, k.target FROM key_results AS k "
    "JOIN success_plans AS p ON p.id = k.plan_id "
    "WHERE p.account_id = ANY(%s::int[]) AND p.status <> %s AND k.objective_key = ANY(%s::varchar[])"
)
_PLAN_STATUSES = {status.value: status for status in PlanStatus}
_MILESTONE_STATUSES = {status.value: status for status in MilestoneStatus}


class PlanStateReads:
    """plan_states on PostgreSQL as plain psycopg rows: a tick over 100,000 accounts reads 100,000
    plans and as many milestones, and the ORM's per-row processing cost more than the queries.
    The queries are sent when it is built and read by `collect()`, so in psycopg's pipeline mode
    (campaigns.bulk) PostgreSQL runs them while Python reads the answers to earlier ones."""

    def __init__(
        self, driver: psycopg.Connection[Any], account_ids: str, milestone_keys: set[str], kr_keys: set[str]
    ) -> None:
        cancelled = PlanStatus.CANCELLED.value
        self.plans = driver.cursor().execute(_PLANS, (sorted(milestone_keys), account_ids, cancelled))
        self.key_results = (
            driver.cursor().execute(_KEY_RESULTS, (account_ids, cancelled, sorted(kr_keys)))
            if kr_keys
            else None
        )

    def collect(self) -> dict[int, PlanState]:
        states: dict[int, PlanState] = {}
        plan_of: dict[int, int] = {}
        plan_statuses, milestone_statuses = _PLAN_STATUSES, _MILESTONE_STATUSES
        for plan_id, account_id, status, key, milestone_status, due in self.plans.fetchall():
            state = states.get(account_id)
            if state is None:
                state = states[account_id] = PlanState()
            if plan_id not in plan_of:  # an account's plans share one state, as plan_states does
                plan_of[plan_id] = account_id
                state.status = plan_statuses[status]
            if key is not None:
                state.milestones[key] = (milestone_statuses[milestone_status], due)
        if self.key_results is not None:
            for plan_id, objective, baseline, current, target in self.key_results.fetchall():
                states[plan_of[plan_id]].key_results[objective] = (
                    float(baseline),
                    float(current),
                    float(target),
                )
        return states
