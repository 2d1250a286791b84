"""The survey editor's form: typed fields ↔ a survey definition, question slots and their order,
and errors labelled the way the page shows them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from surveys import authoring
from surveys.schemas import QUESTION_KINDS
from web.admin.form_fields import unix_newlines

KIND_LABELS = {
    "outcome_pick": "Outcome pick",
    "objective_pick": "Objective pick",
    "key_result": "Key results",
    "single_choice": "Single choice",
    "multi_choice": "Multiple choice",
    "nps": "NPS (0–10)",
    "csat": "CSAT (1–5)",
    "text": "Free text",
}
KIND_GROUPS = {
    "From the outcome library": ("outcome_pick", "objective_pick", "key_result"),
    "Questions": ("single_choice", "multi_choice", "nps", "csat", "text"),
}
assert set(KIND_LABELS) == set(QUESTION_KINDS) == {k for kinds in KIND_GROUPS.values() for k in kinds}
# Which kinds use a field (the editor hides the others; without JS they are all shown).
KIND_FIELDS = {
    "max": ("outcome_pick", "objective_pick", "multi_choice"),
    "max_length": ("text",),
    "options": ("single_choice", "multi_choice"),
}
BLANK_SLOTS = 2  # empty question fieldsets: how the form adds questions when JavaScript is off
MAX_SLOTS = 60
SLOT_FIELD = re.compile(r"^q-(\d{1,3})-[a-z_]+$")
FIELD_LABELS = {
    "key": "Key",
    "kind": "Kind",
    "title": "Title",
    "help": "Help text",
    "required": "Required",
    "max": "Most picks",
    "max_length": "Longest answer",
    "options": "Options",
    "show_if": "Show only if",
    "intro": "Introduction",
    "anonymous": "Anonymous",
    "redisplay_days": "Ask again after",
    "strings": "UI strings",
    "questions": "Questions",
    "json": "JSON",
    "definition": "Survey",
}


@dataclass
class QuestionForm:
    """One question fieldset, as typed (strings), so a rejected form comes back exactly as sent."""

    key: str = ""
    kind: str = "single_choice"
    title: str = ""
    help: str = ""
    required: bool = False
    max: str = ""
    max_length: str = ""
    options: str = ""
    show_if: str = ""

    @property
    def blank(self) -> bool:
        typed = (self.key, self.title, self.help, self.max, self.max_length, self.options, self.show_if)
        return not any(v.strip() for v in typed)

    @classmethod
    def from_definition(cls, question: Mapping[str, Any]) -> QuestionForm:
        options = question.get("options") or []
        return cls(
            key=str(question.get("key", "")),
            kind=str(question.get("kind", "")),
            title=str(question.get("title", "")),
            help=str(question.get("help") or ""),
            required=bool(question.get("required", False)),
            max=_text(question.get("max")),
            max_length=_text(question.get("max_length")) if question.get("max_length") != 500 else "",
            options="\n".join(f"{o.get('value', '')}|{o.get('label', '')}" for o in options),
            show_if=json.dumps(question["show_if"]) if question.get("show_if") is not None else "",
        )


@dataclass
class SurveyForm:
    key: str = ""
    title: str = ""
    intro: str = ""
    anonymous: bool = False
    redisplay_days: str = "30"
    questions: list[QuestionForm] = field(default_factory=list)

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> SurveyForm:
        return cls(
            key=str(definition.get("key", "")),
            title=str(definition.get("title", "")),
            intro=str(definition.get("intro") or ""),
            anonymous=bool(definition.get("anonymous", False)),
            redisplay_days=_text(definition.get("redisplay_days", 30)),
            questions=[QuestionForm.from_definition(q) for q in definition.get("questions", [])],
        )


@dataclass
class Editor:
    """Everything the edit page shows besides the survey itself."""

    form: SurveyForm
    json_text: str
    marker: str
    errors: dict[str, str] = field(default_factory=dict)
    json_errors: dict[str, str] = field(default_factory=dict)
    conflict: str | None = None


def parse_form(
    posted: MultiDict[str, str], fixed_key: str | None
) -> tuple[SurveyForm, dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    form = SurveyForm(
        key=fixed_key if fixed_key is not None else posted.get("key", "").strip(),
        title=posted.get("title", "").strip(),
        intro=unix_newlines(posted.get("intro", "")).strip(),
        anonymous=posted.get("anonymous") == "on",
        redisplay_days=posted.get("redisplay_days", "").strip(),
    )
    definition: dict[str, Any] = {"key": form.key, "title": form.title}
    if form.intro:
        definition["intro"] = form.intro
    if form.anonymous:
        definition["anonymous"] = True
    if form.redisplay_days:
        number = _whole_number(form.redisplay_days)
        if number is None:
            errors["redisplay_days"] = "Enter a whole number of days."
        else:
            definition["redisplay_days"] = number
    form.questions = _ordered_questions(posted)
    questions = []
    for i, question in enumerate(form.questions):
        questions.append(_question(question, f"questions.{i}", errors))
    definition["questions"] = questions
    return form, definition, errors


def _ordered_questions(posted: MultiDict[str, str]) -> list[QuestionForm]:
    """The filled-in, not removed question fieldsets in the order asked for: JavaScript moves the
    fieldsets themselves; without it, a changed position number moves that question there."""
    slots: list[int] = []
    for name in posted:
        match = SLOT_FIELD.match(name)
        if match and int(match.group(1)) not in slots and len(slots) < MAX_SLOTS:
            slots.append(int(match.group(1)))
    staying: list[QuestionForm] = []
    moving: list[tuple[int, int, QuestionForm]] = []
    for rank, slot in enumerate(slots, start=1):
        question = QuestionForm(
            key=posted.get(f"q-{slot}-key", "").strip(),
            kind=posted.get(f"q-{slot}-kind", "").strip(),
            title=posted.get(f"q-{slot}-title", "").strip(),
            help=unix_newlines(posted.get(f"q-{slot}-help", "")).strip(),
            required=posted.get(f"q-{slot}-required") == "on",
            max=posted.get(f"q-{slot}-max", "").strip(),
            max_length=posted.get(f"q-{slot}-max_length", "").strip(),
            options=unix_newlines(posted.get(f"q-{slot}-options", "")).strip(),
            show_if=unix_newlines(posted.get(f"q-{slot}-show_if", "")).strip(),
        )
        if question.blank or posted.get(f"q-{slot}-remove") == "on":
            continue
        position = _whole_number(posted.get(f"q-{slot}-position", "").strip())
        if position is None or position == rank:
            staying.append(question)
        else:
            moving.append((position, rank, question))
    for position, _rank, question in sorted(moving, key=lambda m: (m[0], m[1])):
        staying.insert(min(max(position, 1), len(staying) + 1) - 1, question)
    return staying


def _question(question: QuestionForm, path: str, errors: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {"key": question.key, "kind": question.kind, "title": question.title}
    if question.help:
        parsed["help"] = question.help
    if question.required:
        parsed["required"] = True
    for name in ("max", "max_length"):
        typed = getattr(question, name)
        if typed:
            number = _whole_number(typed)
            if number is None:
                errors[f"{path}.{name}"] = "Enter a whole number."
            else:
                parsed[name] = number
    if question.options:
        options = []
        for line_number, line in enumerate(question.options.splitlines(), start=1):
            if not line.strip():
                continue
            value, bar, label = line.partition("|")
            value, label = value.strip(), (label.strip() if bar else value.strip())
            if not value or not label:
                errors[f"{path}.options"] = f"Line {line_number}: write each option as value|label."
                break
            options.append({"value": value, "label": label})
        parsed["options"] = options
    if question.show_if:
        try:
            parsed["show_if"] = authoring.condition_from_json(question.show_if)
        except ValueError as exc:
            errors[f"{path}.show_if"] = f"Not valid JSON ({exc})."
    return parsed


def error_summary(errors: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every error with a label a person recognises: ("Question 2 · Options", "...")."""
    summary = []
    for name, message in errors.items():
        parts = name.split(".")
        if parts[0] == "questions" and len(parts) >= 2 and parts[1].isdigit():
            label = f"Question {int(parts[1]) + 1}"
            rest = ".".join(parts[2:])
            if rest:
                label += f" · {FIELD_LABELS.get(parts[2], rest)}"
        else:
            label = FIELD_LABELS.get(parts[0], name)
            if len(parts) > 1:
                label += f" · {'.'.join(parts[1:])}"
        summary.append((label, message))
    return summary


def _whole_number(text: str) -> int | None:
    if not re.fullmatch(r"-?\d{1,9}", text):
        return None
    return int(text)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
