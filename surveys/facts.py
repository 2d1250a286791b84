"""Contributes survey answers to the rules' facts document (engine.rules.facts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Index, bindparam, select, text
from sqlalchemy.orm import Session

from engine.rules.facts import AnswersAsOf, SurveyFacts
from surveys.cache import version_specs
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion

CHUNK = 5_000

# A live decision reads one account's completed responses on every submission (migration 0018).
Index(
    "ix_responses_account_completed",
    Response.account_id,
    Response.completed_at,
    postgresql_where=text("status = 'completed'"),
)


def picks(questions: list[dict[str, Any]], answers: dict[str, Any], kind: str) -> list[str]:
    """The values chosen in every question of `kind` (outcome_pick / objective_pick)."""
    chosen: list[str] = []
    for question in questions:
        value = answers.get(question["key"])
        if question["kind"] == kind and isinstance(value, list):
            chosen.extend(str(v) for v in value)
    return chosen


# Built once: constructing the statement costs more than SQLAlchemy's cached compile of it.
_LATEST = (
    select(
        Response.account_id,
        Survey.key,
        Response.completed_at,
        Response.id,
        Response.survey_version_id,
        SurveyVersion.published_at,
        Response.answers,
    )
    .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
    .join(Survey, Survey.id == SurveyVersion.survey_id)
    .where(
        Response.account_id.in_(bindparam("accounts", expanding=True)),
        Response.status == ResponseStatus.COMPLETED,
    )
)


def survey_facts(
    session: Session, account_ids: Sequence[int], *, as_of: AnswersAsOf | None = None
) -> dict[int, SurveyFacts]:
    """Each account's latest completed answers per survey, with the outcomes/objectives chosen;
    for an account in `as_of`, the latest completed no later than that (completed_at, id)."""
    bounds = as_of or {}
    latest: dict[tuple[int, str], tuple[Any, int, dict[str, Any]]] = {}
    stamps: dict[int, Any] = {}
    for start in range(0, len(account_ids), CHUNK):
        rows = session.execute(_LATEST, {"accounts": list(account_ids[start : start + CHUNK])})
        for account_id, key, completed_at, response_id, version_id, published_at, answers in rows:
            stamps[version_id] = published_at
            current = latest.get((account_id, key))
            stamp = (completed_at, response_id)
            bound = bounds.get(account_id)
            if bound is not None and stamp > bound:
                continue  # answered after the response being decided on
            if current is None or stamp > current[0]:
                latest[(account_id, key)] = (stamp, version_id, answers or {})
    version_ids = {version_id for _, version_id, _ in latest.values()}
    # Definitions from the per-process cache: a live decision reads them without a query.
    specs = version_specs(session, {v: stamps[v] for v in version_ids if stamps[v] is not None})
    questions = {version_id: spec.questions for version_id, spec in specs.items()}
    unpublished = [v for v in version_ids if v not in questions]  # none in practice; read, not cached
    if unpublished:
        for version_id, definition in session.execute(
            select(SurveyVersion.id, SurveyVersion.definition).where(SurveyVersion.id.in_(unpublished))
        ):
            questions[version_id] = list((definition or {}).get("questions", []))
    result: dict[int, SurveyFacts] = {}
    for (account_id, key), (_, version_id, answers) in sorted(latest.items()):
        facts = result.setdefault(account_id, SurveyFacts())
        facts.answers[key] = answers
        facts.outcomes.extend(picks(questions.get(version_id, []), answers, "outcome_pick"))
        facts.objectives.extend(picks(questions.get(version_id, []), answers, "objective_pick"))
    return result
