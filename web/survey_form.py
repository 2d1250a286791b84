"""The hosted survey's form fields ↔ answer values: parsing what people type, showing saved answers,
and the service's errors worded for the person filling the page in."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import MultiDict

from surveys.hosted import Page

LIST_KINDS = ("outcome_pick", "objective_pick", "multi_choice")
KR_FIELDS = ("baseline", "target", "due_date")
FRIENDLIER = {
    "target must differ from the baseline": "The target must differ from today's number.",
    "due_date must be a date like 2027-08-30": "Enter a date like 2027-08-30.",
    "due_date must be in the future": "Pick a date in the future.",
    "baseline must be a number": "Enter a number.",
    "target must be a number": "Enter a number.",
    "baseline must be a finite number": "Enter a number.",
    "target must be a finite number": "Enter a number.",
}


def parse_page(
    questions: list[dict[str, Any]], objectives: Mapping[str, Any], form: MultiDict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Form fields → answer values as the API takes them, plus errors for what is not even a number."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for question in questions:
        key, kind, name = question["key"], question["kind"], f"q.{question['key']}"
        if kind in LIST_KINDS:
            picked = list(dict.fromkeys(clean_text(v) for v in form.getlist(name) if v))
            if picked:
                values[key] = picked
        elif kind == "single_choice":
            if chosen := clean_text(form.get(name, "")):
                values[key] = chosen
        elif kind in ("nps", "csat"):
            raw = clean_text(form.get(name, "")).strip()
            if raw:
                values[key] = int(raw) if re.fullmatch(r"\d{1,3}", raw, re.ASCII) else raw
        elif kind == "text":
            text = clean_text(form.get(name, ""))
            if text.strip():
                values[key] = text
        elif kind == "key_result":
            rows: dict[str, Any] = {}
            for objective, info in objectives.items():
                row: dict[str, Any] = {}
                for f in ("baseline", "target"):
                    number = parse_number(clean_text(form.get(f"kr.{objective}.{f}", "")))
                    if number is None:
                        example = format_number(getattr(info, f"default_{f}"))
                        errors[f"kr.{objective}.{f}"] = f"Enter a number, like {example}."
                    else:
                        row[f] = number
                if due := clean_text(form.get(f"kr.{objective}.due_date", "")).strip():
                    row["due_date"] = due
                rows[objective] = row
            if rows:
                values[key] = rows
    return values, errors


def clean_text(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text and JSONB refuse NUL


def parse_number(raw: str) -> float | None:
    """Numbers as people type them: 12,000 · 12 000 · 3,5 · 3.5% · 1e3."""
    text = raw.strip().removesuffix("%").replace(" ", "").replace("\u00a0", "").replace("_", "")
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    elif re.fullmatch(r"[-+]?\d+,\d+", text):
        text = text.replace(",", ".")
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?", text, re.ASCII):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def format_number(value: Any) -> str:
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def field_errors(
    errors: dict[str, Any], page: Page, questions: list[dict[str, Any]], strings: dict[str, str]
) -> tuple[dict[str, str], list[tuple[str, str | None]]]:
    """The service's `answers.<key>` errors: next to this page's fields, or listed by question."""
    on_page: dict[str, str] = {}
    elsewhere: list[tuple[str, str | None]] = []
    page_keys = {q["key"] for q in page.questions}
    titles = {q["key"]: q["title"] for q in questions}
    kr_keys = {q["key"] for q in questions if q["kind"] == "key_result"}
    for path, message in errors.items():
        key = path.removeprefix("answers.")
        text = str(message[0] if isinstance(message, list) and message else message)
        if key in kr_keys and key in page_keys:
            found = re.match(r"^([a-z][a-z0-9_\-]*)\.(baseline|target|due_date) (.+)$", text)
            if found:
                objective, f, rest = found.groups()
                on_page[f"kr.{objective}.{f}"] = FRIENDLIER.get(f"{f} {rest}", _sentence(rest))
                continue
        friendly = _friendly(text, strings)
        if key in page_keys:
            on_page[key] = friendly
        else:
            elsewhere.append((f"{titles.get(key, key)}: {friendly}", key if key in titles else None))
    return on_page, elsewhere


def _friendly(message: str, strings: dict[str, str]) -> str:
    if message == "an answer is required":
        return strings["required"]
    if found := re.fullmatch(r"choose at most (\d+)", message):
        return strings["choose_at_most"].format(max=found.group(1))
    return _sentence(message)


def _sentence(text: str) -> str:
    text = text.strip()
    if len(text) > 160:  # the service quotes the bad value back; a pasted novel need not be
        text = text[:150] + "…'"
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def answers_as_form(questions: list[dict[str, Any]], answers: dict[str, Any]) -> MultiDict[str, str]:
    """Saved answers as the form fields that would have sent them (so one template shows both)."""
    form: MultiDict[str, str] = MultiDict()
    for question in questions:
        key, value = question["key"], answers.get(question["key"])
        if value is None:
            continue
        if question["kind"] == "key_result" and isinstance(value, dict):
            for objective, numbers in value.items():
                for f in KR_FIELDS:
                    if isinstance(numbers, dict) and numbers.get(f) is not None:
                        shown = numbers[f] if f == "due_date" else format_number(numbers[f])
                        form.add(f"kr.{objective}.{f}", str(shown))
        elif isinstance(value, list):
            for item in value:
                form.add(f"q.{key}", str(item))
        else:
            form.add(f"q.{key}", str(value))
    return form
