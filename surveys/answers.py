"""Answer validation against a survey version and the objective library, whatever the channel."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy.orm import Session

from engine.errors import ValidationFailed
from engine.library import ObjectiveInfo, below_least, objectives_by_key, outcome_keys
from engine.plans.service import ObjectiveChoice
from engine.rules.logic import holds
from surveys.schemas import MAX_TEXT


def validate_answers(
    session: Session,
    questions: list[dict[str, Any]],
    answers: dict[str, Any],
    *,
    complete: bool,
    today: dt.date,
) -> dict[str, Any]:
    """Return the clean answers (hidden questions dropped) or raise naming every bad field."""
    by_key = {q["key"]: q for q in questions}
    errors: dict[str, str] = {}
    for key in answers:
        if key not in by_key:
            errors[f"answers.{key}"] = "unknown question"
    clean: dict[str, Any] = {}
    objectives: dict[str, ObjectiveInfo] = {}
    chosen_outcomes: set[str] = set()
    for question in questions:
        key = question["key"]
        if question.get("show_if") and not holds(question["show_if"], {"answers": clean}):
            continue
        value = answers.get(key)
        if value is None or value == [] or value == {} or value == "":
            if complete and question.get("required"):
                errors[f"answers.{key}"] = "an answer is required"
            continue
        try:
            clean[key] = _check(session, question, value, chosen_outcomes, objectives, today)
        except ValueError as exc:
            errors[f"answers.{key}"] = str(exc)
    if errors:
        raise ValidationFailed(errors)
    return clean


def _check(
    session: Session,
    question: dict[str, Any],
    value: Any,
    chosen_outcomes: set[str],
    objectives: dict[str, ObjectiveInfo],
    today: dt.date,
) -> Any:
    kind = question["kind"]
    limit = question.get("max")
    if kind == "outcome_pick":
        picked = _string_list(value, limit)
        known = outcome_keys(session)
        unknown = [v for v in picked if v not in known]
        if unknown:
            raise ValueError(f"unknown outcome {unknown[0]!r}")
        chosen_outcomes.update(picked)
        return picked
    if kind == "objective_pick":
        picked = _string_list(value, limit)
        for key in picked:
            objective = objectives_by_key(session).get(key)
            if objective is None:
                raise ValueError(f"unknown objective {key!r}")
            if objective.outcome_key not in chosen_outcomes:
                raise ValueError(f"objective {key!r} is not under a chosen outcome")
            objectives[key] = objective
        return picked
    if kind == "key_result":
        return _key_results(value, objectives, today)
    if kind in ("single_choice", "multi_choice"):
        allowed = {o["value"] for o in question["options"]}
        if kind == "single_choice" and not isinstance(value, str):
            raise ValueError("must be one option's value")
        picked = [value] if kind == "single_choice" else _string_list(value, limit)
        bad = [v for v in picked if v not in allowed]
        if bad:
            raise ValueError(f"unknown option {bad[0]!r}")
        return value
    if kind in ("nps", "csat"):
        low, high = (0, 10) if kind == "nps" else (1, 5)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError("must be text")
        max_length = min(int(question.get("max_length") or MAX_TEXT), MAX_TEXT)
        if len(value) > max_length:
            raise ValueError(f"at most {max_length} characters")
        return value.strip()
    raise ValueError(f"unsupported question kind {kind!r}")


def _string_list(value: Any, limit: int | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of keys")
    if limit is not None and len(value) > limit:
        raise ValueError(f"choose at most {limit}")
    if len(set(value)) != len(value):
        raise ValueError("the same key is chosen twice")
    return list(value)


def _key_results(value: Any, objectives: dict[str, ObjectiveInfo], today: dt.date) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must map each chosen objective to {baseline, target, due_date}")
    clean: dict[str, Any] = {}
    for key, numbers in value.items():
        if key not in objectives:
            raise ValueError(f"{key!r} is not a chosen objective")
        if not isinstance(numbers, dict):
            raise ValueError(f"{key}: must be {{baseline, target, due_date}}")
        objective = objectives[key]
        baseline = _number(
            numbers.get("baseline", objective.default_baseline), f"{key}.baseline", objective.unit
        )
        target = _number(numbers.get("target", objective.default_target), f"{key}.target", objective.unit)
        if baseline == target:
            raise ValueError(f"{key}.target must differ from the baseline")
        due_raw = numbers.get("due_date")
        due = today + dt.timedelta(days=objective.default_days)
        if due_raw is not None:
            try:
                due = dt.date.fromisoformat(str(due_raw))
            except ValueError:
                raise ValueError(f"{key}.due_date must be a date like 2027-08-30") from None
            if due <= today:
                raise ValueError(f"{key}.due_date must be in the future")
        clean[key] = {"baseline": baseline, "target": target, "due_date": due.isoformat()}
    return clean


def _number(value: Any, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    if why := below_least(value, unit):
        raise ValueError(f"{name} {why}")
    return float(value)


def objective_choices(questions: list[dict[str, Any]], answers: dict[str, Any]) -> list[ObjectiveChoice]:
    """The chosen objectives with the customer's own numbers, in the order they were picked."""
    picked: list[str] = []
    numbers: dict[str, Any] = {}
    for question in questions:
        value = answers.get(question["key"])
        if question["kind"] == "objective_pick" and isinstance(value, list):
            picked.extend(value)
        elif question["kind"] == "key_result" and isinstance(value, dict):
            numbers.update(value)
    choices = []
    for key in picked:
        kr = numbers.get(key, {})
        choices.append(
            ObjectiveChoice(
                key=key,
                baseline=kr.get("baseline"),
                target=kr.get("target"),
                due_date=dt.date.fromisoformat(kr["due_date"]) if kr.get("due_date") else None,
            )
        )
    return choices
