"""Contributes survey answers to the rules' facts document (engine.rules.facts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.rules.facts import SurveyFacts
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion

CHUNK = 5_000


def picks(questions: list[dict[str, Any]], answers: dict[str, Any], kind: str) -> list[str]:
    """The values chosen in every question of `kind` (outcome_pick / objective_pick)."""
    chosen: list[str] = []
    for question in questions:
        value = answers.get(question["key"])
        if question["kind"] == kind and isinstance(value, list):
            chosen.extend(str(v) for v in value)
    return chosen


def survey_facts(session: Session, account_ids: Sequence[int]) -> dict[int, SurveyFacts]:
    """Each account's latest completed answers per survey, with the outcomes/objectives chosen."""
    latest: dict[tuple[int, str], tuple[Any, int, dict[str, Any]]] = {}
    for start in range(0, len(account_ids), CHUNK):
        rows = session.execute(
            select(
                Response.account_id,
                Survey.key,
                Response.completed_at,
                Response.id,
                Response.survey_version_id,
                Response.answers,
            )
            .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
            .join(Survey, Survey.id == SurveyVersion.survey_id)
            .where(
                Response.account_id.in_(account_ids[start : start + CHUNK]),
                Response.status == ResponseStatus.COMPLETED,
            )
        )
        for account_id, key, completed_at, response_id, version_id, answers in rows:
            current = latest.get((account_id, key))
            stamp = (completed_at, response_id)
            if current is None or stamp > current[0]:
                latest[(account_id, key)] = (stamp, version_id, answers or {})
    questions: dict[int, list[dict[str, Any]]] = {}
    version_ids = {version_id for _, version_id, _ in latest.values()}
    if version_ids:
        for version_id, definition in session.execute(
            select(SurveyVersion.id, SurveyVersion.definition).where(SurveyVersion.id.in_(version_ids))
        ):
            questions[version_id] = list((definition or {}).get("questions", []))
    result: dict[int, SurveyFacts] = {}
    for (account_id, key), (_, version_id, answers) in sorted(latest.items()):
        facts = result.setdefault(account_id, SurveyFacts())
        facts.answers[key] = answers
        facts.outcomes.extend(picks(questions.get(version_id, []), answers, "outcome_pick"))
        facts.objectives.extend(picks(questions.get(version_id, []), answers, "objective_pick"))
    return result
