"""Survey answers as CS ops read them back: the titles of the outcomes, objectives and options
picked (the stored key beside each), and key results in their units, in the survey's order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.library import Library

PICKS = ("outcome_pick", "objective_pick", "single_choice", "multi_choice")


@dataclass(frozen=True)
class AnswerItem:
    """One thing chosen or typed, in words; `key` is what is stored, shown beside it (empty when
    the words are the stored value itself)."""

    text: str
    key: str = ""


@dataclass(frozen=True)
class AnswerRow:
    label: str
    items: list[AnswerItem]
    stacked: bool = False  # one item per line (key results), not a comma list


def answer_rows(
    questions: Sequence[Mapping[str, Any]], answers: Mapping[str, Any], library: Library
) -> list[AnswerRow]:
    """One row per answered question of the survey version, in its order (answers to questions
    the version does not have last, as stored)."""
    by_key = {str(q.get("key")): q for q in questions}
    ordered = [k for k in by_key if k in answers] + [k for k in answers if k not in by_key]
    rows = []
    for key in ordered:
        question = by_key.get(key, {})
        label = str(question.get("title") or key)
        kind = str(question.get("kind", ""))
        value = answers[key]
        if kind == "key_result" and isinstance(value, Mapping):
            rows.append(AnswerRow(label, [_key_result(k, v, library) for k, v in value.items()], True))
        elif kind in PICKS:
            titles = _titles(kind, question, library)
            picked = value if isinstance(value, list) else [value]
            rows.append(AnswerRow(label, [_picked(v, titles) for v in picked]))
        else:
            rows.append(AnswerRow(label, [AnswerItem(_text(value))]))
    return rows


def _titles(kind: str, question: Mapping[str, Any], library: Library) -> dict[str, str]:
    if kind == "outcome_pick":
        return dict(library.outcomes)
    if kind == "objective_pick":
        return {key: objective.title for key, objective in library.objectives.items()}
    return {str(o.get("value")): str(o.get("label") or o.get("value")) for o in question.get("options") or ()}


def _picked(value: Any, titles: Mapping[str, str]) -> AnswerItem:
    key = _text(value)
    title = titles.get(key)
    # A key the library or the version no longer has is shown as stored, rather than dropped.
    return AnswerItem(title, key) if title and title != key else AnswerItem(key)


def _key_result(key: str, numbers: Any, library: Library) -> AnswerItem:
    """`Fill open roles sooner: 42 → 30 days by May 24, 2027`."""
    objective = library.objectives.get(key)
    title = objective.title if objective else key
    if not isinstance(numbers, Mapping):
        return AnswerItem(f"{title}: {_text(numbers)}", key if objective else "")
    unit = objective.unit if objective else ""
    text = f"{title}: {_measure(numbers.get('baseline'), unit)} → {_measure(numbers.get('target'), unit)}"
    due = _day(numbers.get("due_date"))
    if due:
        text += f" by {due}"
    return AnswerItem(text, key if objective else "")


def _measure(value: Any, unit: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?" if value is None else _text(value)
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"  # as the plan shows it
    if not unit:
        return number
    return f"{number}{unit}" if unit == "%" else f"{number} {unit}"


def _day(value: Any) -> str:
    """A stored ISO date as the console writes days: "May 24, 2027"."""
    if not value:
        return ""
    try:
        day = dt.date.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return f"{day:%b} {day.day}, {day.year}"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return "" if value is None else str(value)
