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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Integer, Select, String, bindparam, case, cast, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.events.models import Event
from engine.plans.models import Milestone, MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.service import note_active_plans

EVENT_WINDOWS: tuple[tuple[str, int], ...] = (("count_7d", 7), ("count_30d", 30), ("count_90d", 90))
LONGEST_WINDOW = max(days for _, days in EVENT_WINDOWS)
PLAN_MILESTONE_FIELDS = ("achieved", "on_track", "behind", "missed")


@dataclass(frozen=True)
class SurveyFacts:
    """What an account answered: answers per survey, and the outcomes and objectives chosen."""

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)


# (completed_at, response id): answers "as of" a response ignore responses completed after it.
AnswersAsOf = Mapping[int, tuple[dt.datetime, int]]


class AnswersProvider(Protocol):
    def __call__(
        self, session: Session, account_ids: Sequence[int], *, as_of: AnswersAsOf | None = None
    ) -> dict[int, SurveyFacts]: ...


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


def _event_rows() -> Select[*tuple[Any, ...]]:
    window = Event.occurred_at.type
    counts = [
        func.sum(case((Event.occurred_at >= bindparam(f"since_{label}", type_=window), 1), else_=0))
        for label, _ in EVENT_WINDOWS
    ]
    return (
        select(
            literal("event").label("kind"),
            Event.account_id,
            Event.name.label("name"),
            cast(null(), String).label("plan_status"),
            cast(null(), String).label("milestone_status"),
            *counts,
        )
        .where(
            Event.account_id.in_(bindparam("accounts", expanding=True)),
            Event.occurred_at >= bindparam("since", type_=window),
            Event.occurred_at <= bindparam("now", type_=window),
        )
        .group_by(Event.account_id, Event.name)
    )


def _plan_rows() -> Select[*tuple[Any, ...]]:
    """One row per active plan and milestone status (a plan without milestones: one row, count 0)."""
    return (
        select(
            literal("plan").label("kind"),
            SuccessPlan.account_id,
            SuccessPlan.template_key,
            cast(SuccessPlan.status, String),
            cast(Milestone.status, String),
            func.count(Milestone.id),
            cast(null(), Integer),
            cast(null(), Integer),
        )
        .outerjoin(Milestone, Milestone.plan_id == SuccessPlan.id)
        .where(
            SuccessPlan.account_id.in_(bindparam("accounts", expanding=True)),
            SuccessPlan.status == PlanStatus.ACTIVE,
        )
        .group_by(
            SuccessPlan.id,
            SuccessPlan.account_id,
            SuccessPlan.template_key,
            SuccessPlan.status,
            Milestone.status,
        )
    )


# Built once: constructing the statement costs more than SQLAlchemy's cached compile of it.
_ACTIVITY = union_all(_event_rows(), _plan_rows())


def account_activity(
    session: Session, account_ids: Sequence[int], now: dt.datetime
) -> tuple[dict[int, dict[str, dict[str, int]]], dict[int, dict[str, Any]]]:
    """Event window counts and active-plan facts of the accounts, read in one statement (a live
    decision runs on every survey submission: each round trip counts)."""
    if not account_ids:
        return {}, {}
    events: dict[int, dict[str, dict[str, int]]] = {}
    plans: dict[int, dict[str, Any]] = {}
    params: dict[str, Any] = {
        f"since_{label}": now - dt.timedelta(days=days) for label, days in EVENT_WINDOWS
    }
    params.update(accounts=list(account_ids), since=now - dt.timedelta(days=LONGEST_WINDOW), now=now)
    for kind, account_id, name, plan_status, milestone_status, *counts in session.execute(_ACTIVITY, params):
        if kind == "event":
            events.setdefault(account_id, {})[name] = {
                label: int(n or 0) for (label, _), n in zip(EVENT_WINDOWS, counts, strict=True)
            }
            continue
        facts = plans.get(account_id)
        if facts is None:
            facts = plans[account_id] = no_plan() | {"exists": True, "template": name, "status": plan_status}
        if milestone_status is None:
            continue
        count = int(counts[0] or 0)
        facts["milestones_total"] += count
        status = MilestoneStatus(milestone_status).value
        if status in PLAN_MILESTONE_FIELDS:
            facts[f"milestones_{status}"] += count
    note_active_plans(session, account_ids, set(plans))
    return events, plans


def load_facts(
    session: Session,
    accounts: Sequence[Account],
    now: dt.datetime,
    *,
    answers_as_of: AnswersAsOf | None = None,
) -> dict[int, dict[str, Any]]:
    """Facts for many accounts with a fixed number of queries (simulation, previews, re-runs).

    `answers_as_of` (account id → a response's completion stamp) reads each such account's answers
    as they stood when that response completed: the `rules` job deciding on an earlier response
    sees what the request would have seen, not answers given since (surveys.rules_queue)."""
    ids = [a.id for a in accounts]
    surveys = _answers_provider(session, ids, as_of=answers_as_of) if _answers_provider is not None else {}
    events, plans = account_activity(session, ids, now)
    return {
        a.id: build_facts(
            a,
            survey=surveys.get(a.id, SurveyFacts()),
            events=events.get(a.id, {}),
            plan=plans.get(a.id) or no_plan(),
        )
        for a in accounts
    }
