"""What the hosted survey's template shows for each question: options, groups and key-result rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from werkzeug.datastructures import MultiDict

from surveys import hosted
from web.context import now
from web.survey_form import KR_FIELDS, LIST_KINDS, format_number


def question_view(
    question: dict[str, Any],
    form: MultiDict[str, str],
    errors: dict[str, str],
    questions: list[dict[str, Any]],
    answers: dict[str, Any],
    lib: dict[str, list[dict[str, Any]]],
    strings: dict[str, str],
) -> dict[str, Any]:
    key, kind = question["key"], question["kind"]
    name = f"q.{key}"
    picked = set(form.getlist(name))
    view: dict[str, Any] = {
        "key": key,
        "name": name,
        "kind": kind,
        "title": question["title"],
        "help": question.get("help") or "",
        "required": bool(question.get("required")),
        "max": question.get("max"),
        "error": errors.get(key),
        "multiple": kind in LIST_KINDS,
    }
    if kind == "outcome_pick":
        view["options"] = [_option(o["key"], o["title"], o["description"], picked) for o in lib["outcomes"]]
    elif kind == "objective_pick":
        outcomes = hosted.chosen(questions, answers, "outcome_pick")
        titles = {o["key"]: o["title"] for o in lib["outcomes"]}
        view["options"] = [
            {
                **_option(o["key"], o["title"], _objective_line(o), picked),
                "group": titles.get(o["outcome"], ""),
            }
            for outcome in outcomes
            for o in lib["objectives"]
            if o["outcome"] == outcome
        ]
        view["grouped"] = len(outcomes) > 1
    elif kind in ("single_choice", "multi_choice"):
        view["options"] = [_option(str(o["value"]), o["label"], "", picked) for o in question["options"]]
    elif kind in ("nps", "csat"):
        low, high = (0, 10) if kind == "nps" else (1, 5)
        view["options"] = [_option(str(n), str(n), "", picked) for n in range(low, high + 1)]
        view["low"], view["high"] = (strings["nps_low"], strings["nps_high"]) if kind == "nps" else ("", "")
    elif kind == "text":
        view["value"] = form.get(name, "")
        view["max_length"] = question.get("max_length") or 500
    elif kind == "key_result":
        chosen = hosted.chosen(questions, answers, "objective_pick")
        by_key = {o["key"]: o for o in lib["objectives"]}
        today = now().date()
        view["rows"] = [_kr_row(by_key[k], form, errors, today) for k in chosen if k in by_key]
    return view


def _option(value: str, label: str, description: str, picked: set[str]) -> dict[str, Any]:
    return {"value": value, "label": label, "description": description, "checked": value in picked}


def _objective_line(objective: dict[str, Any]) -> str:
    return f"Measured by {objective['metric']} ({objective['unit']})"


def _kr_row(
    objective: dict[str, Any], form: MultiDict[str, str], errors: dict[str, str], today: dt.date
) -> dict[str, Any]:
    key = objective["key"]
    defaults = {
        "baseline": format_number(objective["baseline"]),
        "target": format_number(objective["target"]),
        "due_date": (today + dt.timedelta(days=int(objective["days"]))).isoformat(),
    }
    return {
        "key": key,
        "title": objective["title"],
        "metric": objective["metric"],
        "unit": objective["unit"],
        "min_date": (today + dt.timedelta(days=1)).isoformat(),
        "fields": {
            f: {
                "name": f"kr.{key}.{f}",
                "value": form.get(f"kr.{key}.{f}", defaults[f]),
                "error": errors.get(f"kr.{key}.{f}"),
            }
            for f in KR_FIELDS
        },
    }
