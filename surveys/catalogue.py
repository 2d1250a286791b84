"""Contributes `answers.<survey>.<question>` to the rules' field catalogue (engine.rules.catalogue)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine import refcache
from engine.library import library
from engine.rules.catalogue import Field
from surveys.models import Survey, SurveyVersion

ANSWER_TYPES = {
    "outcome_pick": "list[string]",
    "objective_pick": "list[string]",
    "multi_choice": "list[string]",
    "single_choice": "string",
    "nps": "number",
    "csat": "number",
    "text": "string",
    "key_result": "object",
}

refcache.watch(Survey.__tablename__, SurveyVersion.__tablename__)


def answer_fields(session: Session) -> Iterator[Field]:
    """One field per question of each survey's latest published version (what responses carry now)."""
    lib = library(session)
    picks = {"outcome_pick": tuple(sorted(lib.outcomes)), "objective_pick": tuple(sorted(lib.objectives))}
    surveys = session.scalars(select(Survey).options(selectinload(Survey.versions)).order_by(Survey.key))
    for survey in surveys:
        version = survey.latest_published
        if version is None:
            continue
        for question in version.questions:
            kind = str(question.get("kind", ""))
            yield Field(
                f"answers.{survey.key}.{question['key']}",
                ANSWER_TYPES.get(kind, "any"),
                _description(survey, question),
                picks.get(kind) or tuple(str(o["value"]) for o in question.get("options") or ()),
            )


def _description(survey: Survey, question: dict[str, Any]) -> str:
    return f"{survey.title}: {question.get('title', question['key'])} ({question.get('kind')})"
