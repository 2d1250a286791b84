"""The facts document rules read, built the same way for a live decision and for a batch of accounts.

Shape (the field catalogue in `engine.rules.catalogue` declares every leaf):

    answers     {survey_key: {question_key: value}}   latest completed answers per survey
    outcomes    [outcome_key]                         chosen in any survey
    objectives  [objective_key]
    account     {external_id, segment, plan_tier, lifecycle_stage, traits: {...}}
    events      {event_name: {count_7d, count_30d, count_90d}}
    plan        {exists, template, status, milestones_total, milestones_achieved,
                 milestones_on_track, milestones_behind, milestones_missed}

Answers live in the surveys package, above engine; it contributes them through
`register_answers_provider` (docs/adr/0002).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.events.models import Event
from engine.plans.models import Milestone, MilestoneStatus, PlanStatus, SuccessPlan

EVENT_WINDOWS: tuple[tuple[str, int], ...] = (("count_7d", 7), ("count_30d", 30), ("count_90d", 90))
PLAN_MILESTONE_FIELDS = ("achieved", "on_track", "behind", "missed")


@dataclass(frozen=True)
class SurveyFacts:
    """What an account answered: answers per survey, and the outcomes and objectives chosen."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)


AnswersProvider = Callable[[Session, Sequence[int]], dict[int, SurveyFacts]]
_answers_provider: AnswersProvider | None = None


def register_answers_provider(provider: AnswersProvider) -> None:
    global _answers_provider
    _answers_provider = provider


def build_facts(
    account: Account,
    *,
    survey: SurveyFacts,
    events: dict[str, dict[str, int]],
    plan: dict[str, Any],
) -> dict[str, Any]:
    return {
        "answers": survey.answers,
        "outcomes": sorted(set(survey.outcomes)),
        "objectives": list(dict.fromkeys(survey.objectives)),
        "account": account.facts(),
        "events": events,
        "plan": plan,
    }


def no_plan() -> dict[str, Any]:
    facts: dict[str, Any] = {"exists": False, "template": None, "status": None, "milestones_total": 0}
    facts.update({f"milestones_{name}": 0 for name in PLAN_MILESTONE_FIELDS})
    return facts


def event_window_counts(
    session: Session, account_ids: Sequence[int], now: dt.datetime
) -> dict[int, dict[str, dict[str, int]]]:
    """`{account_id: {event: {count_7d, count_30d, count_90d}}}` in one grouped query."""
    if not account_ids:
        return {}
    longest = max(days for _, days in EVENT_WINDOWS)
    columns = [
        func.sum(case((Event.occurred_at >= now - dt.timedelta(days=days), 1), else_=0))
        for _, days in EVENT_WINDOWS
    ]
    rows = session.execute(
        select(Event.account_id, Event.name, *columns)
        .where(
            Event.account_id.in_(account_ids),
            Event.occurred_at >= now - dt.timedelta(days=longest),
            Event.occurred_at <= now,
        )
        .group_by(Event.account_id, Event.name)
    )
    result: dict[int, dict[str, dict[str, int]]] = {}
    for account_id, name, *counts in rows:
        result.setdefault(account_id, {})[name] = {
            label: int(n or 0) for (label, _), n in zip(EVENT_WINDOWS, counts, strict=True)
        }
    return result


def plan_states(session: Session, account_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Plan facts for every account that has an active plan, in two queries."""
    if not account_ids:
        return {}
    plans = session.execute(
        select(SuccessPlan.id, SuccessPlan.account_id, SuccessPlan.template_key, SuccessPlan.status).where(
            SuccessPlan.account_id.in_(account_ids), SuccessPlan.status == PlanStatus.ACTIVE
        )
    ).all()
    by_plan: dict[int, dict[str, Any]] = {}
    result: dict[int, dict[str, Any]] = {}
    for plan_id, account_id, template, status in plans:
        facts = no_plan() | {"exists": True, "template": template, "status": str(status)}
        by_plan[plan_id] = result[account_id] = facts
    if by_plan:
        rows = session.execute(
            select(Milestone.plan_id, Milestone.status, func.count())
            .where(Milestone.plan_id.in_(list(by_plan)))
            .group_by(Milestone.plan_id, Milestone.status)
        )
        for plan_id, milestone_status, count in rows:
            facts = by_plan[plan_id]
            facts["milestones_total"] += int(count)
            name = MilestoneStatus(milestone_status).value
            if name in PLAN_MILESTONE_FIELDS:
                facts[f"milestones_{name}"] += int(count)
    return result


def load_facts(session: Session, accounts: Sequence[Account], now: dt.datetime) -> dict[int, dict[str, Any]]:
    """Facts for many accounts with a fixed number of queries (simulation, previews, re-runs)."""
    ids = [a.id for a in accounts]
    surveys = _answers_provider(session, ids) if _answers_provider is not None else {}
    events = event_window_counts(session, ids, now)
    plans = plan_states(session, ids)
    return {
        a.id: build_facts(
            a,
            survey=surveys.get(a.id, SurveyFacts()),
            events=events.get(a.id, {}),
            plan=plans.get(a.id) or no_plan(),
        )
        for a in accounts
    }
