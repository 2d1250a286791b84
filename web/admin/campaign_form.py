"""The campaign builder form: parsing what the console posts into a campaign document, and the
labels and text helpers its pages render with (served to the routes in web/admin/campaigns.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from campaigns import builder
from content.models import ContentItem
from web.admin.rules_form import describe

STEP_FIELD = re.compile(r"^step-(\d{1,3})-kind$")
MAX_STEPS = 50
BLANK_STEPS = 1  # empty step slots: how the form adds a step when JavaScript is off
KIND_LABELS = {
    "email": "Email",
    "in_app": "In-app card",
    "wait": "Wait",
    "wait_until": "Wait until",
    "branch": "Branch",
    "exit": "Exit",
}
WAIT_FOR = {
    "milestone": "a milestone is achieved",
    "due": "N days before a milestone is due",
    "event": "an event happens",
    "kr": "a key result reaches a value",
}
TRIGGER_LABELS = {
    "rule": "a rule's enrol action (see the rules below)",
    "milestone_due_soon": "a milestone is due soon",
    "milestone_slipped": "a milestone slipped",
    "milestone_achieved": "a milestone was achieved",
    "kr_stalled": "a key result stalled",
    "review_near": "the plan review is near",
}
ROLE_LABELS = {
    "exec_sponsor": "Exec sponsor",
    "champion": "Champion",
    "power_user": "Power user",
    "other": "Other",
}
FIELD_LABELS = {
    "key": "Step key",
    "kind": "Kind",
    "template": "Template",
    "to": "To",
    "content": "Content",
    "survey": "Survey",
    "days": "Days",
    "milestone": "Milestone",
    "days_before_due": "Days before due",
    "event": "Event",
    "count": "Times",
    "kr": "Key result",
    "reaches": "Reaches",
    "timeout_days": "Time out after (days)",
    "on_timeout": "On time-out go to",
    "condition": "Condition",
    "then": "Then go to",
    "else": "Else go to",
}
STATE_ORDER = ("active", "waiting", "completed", "exited", "failed")
# What the step form edits; anything else a step carries (a playbook option the form does not show
# yet) rides along in a hidden field, so editing in the console never drops it.
FORM_KEYS = frozenset(FIELD_LABELS) | {"recommend", "wait_for"}


@dataclass
class BuilderForm:
    """The builder as posted (or loaded): the campaign document and anything that did not parse."""

    document: dict[str, Any]
    etag: str
    note: str = ""
    parse_errors: dict[str, str] = field(default_factory=dict)


def without_none(value: Any) -> Any:
    """The document for display: settings stored with null members show as empty fields."""
    if isinstance(value, dict):
        return {k: v if k == "condition" else without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_none(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 7, not 7.0
    return value


def parse_builder_form(posted: MultiDict[str, str], key: str) -> BuilderForm:
    """The posted builder as a campaign document; values that do not parse stay as typed, with a
    message in `parse_errors` (so the page shows them again, marked)."""
    parse_errors: dict[str, str] = {}
    rows: list[tuple[float, int, dict[str, Any]]] = []
    indexes = sorted({int(m[1]) for name in posted if (m := STEP_FIELD.match(name))})
    for index in indexes:
        prefix = f"step-{index}-"
        kind = field_text(posted.get(prefix + "kind"))
        if not kind or posted.get(prefix + "remove"):
            continue
        position_text = field_text(posted.get(prefix + "position"))
        try:
            position = float(position_text) if position_text else float(index + 1)
        except ValueError:
            position = float(index + 1)
        rows.append((position, index, _step_from_form(posted, prefix, kind)))
    rows.sort(key=lambda r: (r[0], r[1]))
    steps = [row[2] for row in rows][: MAX_STEPS + 1]
    for i, step in enumerate(steps):
        text = step.pop("_condition_text", None)
        if text is not None:
            parsed, problem = _json(text, required=True)
            step["condition"] = parsed if problem is None else text
            if problem:
                parse_errors[f"steps.{i}.condition"] = problem
    document: dict[str, Any] = {
        "key": key,
        "name": field_text(posted.get("name")),
        "description": field_text(posted.get("description"), multiline=True),
    }
    document["steps"] = steps
    signal = field_text(posted.get("trigger_signal")) or "rule"
    if (
        signal != "rule"
        or field_text(posted.get("trigger_days"))
        or field_text(posted.get("trigger_milestone"))
    ):
        trigger: dict[str, Any] = {"signal": signal}
        if field_text(posted.get("trigger_days")):
            trigger["days"] = field_text(posted.get("trigger_days"))
        if field_text(posted.get("trigger_milestone")):
            trigger["milestone"] = field_text(posted.get("trigger_milestone"))
        document["trigger"] = trigger
    exit_when: dict[str, Any] = {"plan_completed": posted.get("exit_plan_completed") == "on"}
    segments = [s.strip() for s in field_text(posted.get("exit_segments")).split(",") if s.strip()]
    if segments:
        exit_when["segments"] = segments
    exit_text = field_text(posted.get("exit_condition"), multiline=True)
    parsed, problem = _json(exit_text, required=False)
    if problem:
        exit_when["condition"] = exit_text
        parse_errors["exit_when.condition"] = problem
    elif parsed is not None:
        exit_when["condition"] = parsed
    if exit_when != {"plan_completed": True}:
        document["exit_when"] = exit_when
    if posted.get("reentry") == "after":
        document["reentry_days"] = field_text(posted.get("reentry_days")) or None
        if document["reentry_days"] is None:
            parse_errors["reentry_days"] = (
                "how many days after the last run ended may an account start again?"
            )
    holdout = field_text(posted.get("holdout_percent"))
    if holdout and holdout != "0":
        document["holdout_percent"] = holdout
    category = field_text(posted.get("category"))
    if category and category != "nurture":
        document["category"] = category
    if posted.get("window_on") == "on":
        document["send_window"] = {
            "start_hour": field_text(posted.get("window_start")) or 8,
            "end_hour": field_text(posted.get("window_end")) or 20,
            "weekdays_only": posted.get("window_weekdays") == "on",
        }
    if posted.get("caps") != "on":
        document["caps"] = False
    return BuilderForm(
        document,
        field_text(posted.get("etag")),
        note=field_text(posted.get("note"), multiline=True)[: builder.MAX_NOTE],
        parse_errors=parse_errors,
    )


def _step_from_form(posted: MultiDict[str, str], prefix: str, kind: str) -> dict[str, Any]:
    def value(name: str) -> str:
        return field_text(posted.get(prefix + name))

    step: dict[str, Any] = {"key": value("key") or None, "kind": kind}
    if kind in ("email", "in_app"):
        step["template"] = value("template") or None
        step["to"] = [r for r in posted.getlist(prefix + "to") if r]
        step["content"] = [c for c in posted.getlist(prefix + "content") if c]
        if kind == "email" and value("survey"):
            step["survey"] = value("survey")
    elif kind == "wait":
        step["days"] = value("days") or None
    elif kind == "wait_until":
        mode = value("wait_for") or "milestone"
        if mode in ("milestone", "due"):
            step["milestone"] = value("milestone") or None
        if mode == "due":
            step["days_before_due"] = value("days_before_due") or None
        if mode == "event":
            step["event"] = value("event") or None
            step["count"] = value("count") or None
        if mode == "kr":
            step["kr"] = value("kr") or None
            reaches = value("reaches")
            step["reaches"] = (
                reaches if reaches in ("", "target") or not _is_number(reaches) else float(reaches)
            )
            step["reaches"] = step["reaches"] or None
        step["timeout_days"] = value("timeout_days") or None
        step["on_timeout"] = value("on_timeout") or None
    elif kind == "branch":
        step["_condition_text"] = field_text(posted.get(prefix + "condition"), multiline=True)
        step["then"] = value("then") or None
        step["else"] = value("else") or None
    if kind == "email" and value("recommend"):
        step["recommend"] = value("recommend")
    try:
        extra = json.loads(posted.get(prefix + "extra") or "{}")
    except ValueError:
        extra = {}
    if isinstance(extra, dict):
        step.update({k: v for k, v in extra.items() if isinstance(k, str) and k not in FORM_KEYS})
    return {k: v for k, v in step.items() if v is not None and v != []}


def content_options(items: list[ContentItem]) -> Any:
    """(key, label, chosen) for a step's content picker: its items first, in their order."""
    labels = {item.key: f"{item.title} ({item.kind})" for item in items}

    def options(picked: list[str]) -> list[tuple[str, str, bool]]:
        chosen = [(key, labels.get(key, f"{key} (missing)"), True) for key in picked]
        return chosen + [(key, label, False) for key, label in labels.items() if key not in picked]

    return options


def extra_of(step: Mapping[str, Any]) -> str:
    """The step's settings the form does not edit, as JSON for its hidden field."""
    return json.dumps({k: v for k, v in step.items() if k not in FORM_KEYS}, ensure_ascii=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json(text: str, *, required: bool) -> tuple[Any, str | None]:
    """A condition typed as JSON: (value, None), or (None, why not). An empty builder group
    (`{"and": []}`) counts as no condition."""
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    if value in ({"and": []}, {"or": []}):
        value = None
    if value is None and required:
        return None, "a branch needs a condition: add at least one"
    return value, None


def field_text(value: Any, *, multiline: bool = False) -> str:
    text = str(value or "").replace("\x00", "")
    if multiline:
        return text.replace("\r\n", "\n").strip()
    return " ".join(text.split())


def condition_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def condition_errors(errors: Mapping[str, str], path: str) -> dict[str, str]:
    """The errors under one condition, re-rooted at `/condition` as the rules builder expects."""
    return {
        "/condition" + key[len(path) :]: message
        for key, message in errors.items()
        if key == path or key.startswith(path + "/")
    }


def wait_mode(step: Mapping[str, Any]) -> str:
    if step.get("event"):
        return "event"
    if step.get("kr"):
        return "kr"
    if step.get("days_before_due") is not None:
        return "due"
    return "milestone"


def error_summary(errors: Mapping[str, str], steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(label, message, anchor) for every error, naming the step by its number and key."""
    found = []
    for path, message in errors.items():
        parts = re.split(r"[./]", path, maxsplit=3)
        if parts[0] == "steps" and len(parts) > 1 and parts[1].isdigit():
            i = int(parts[1])
            name = steps[i].get("key") if i < len(steps) else None
            label = f"Step {i + 1}" + (f" ({name})" if name else "")
            if len(parts) > 2:
                label += f" · {FIELD_LABELS.get(parts[2], parts[2])}"
            anchor = f"step-{i}"
        elif path.startswith("exit_when"):
            label, anchor = "Exit criteria", "settings"
        elif path:
            label, anchor = parts[0].replace("_", " ").capitalize(), "settings"
        else:
            label, anchor = "Campaign", "settings"
        found.append((label, message, anchor))
    return found


def step_text(step: Any) -> str:
    """One line saying what a step does (the detail page's flow)."""
    c = step.config
    kind = step.kind
    if kind in ("email", "in_app"):
        to = ", ".join(c.get("to") or []) or "every contact"
        extra = f" + {len(c['content'])} content" if c.get("content") else ""
        return f"{c.get('template')} → {to}{extra}"
    if kind == "wait":
        return f"{c.get('days'):g} days"
    if kind == "wait_until":
        if c.get("milestone"):
            what = (
                f"{c['days_before_due']} days before {c['milestone']} is due"
                if c.get("days_before_due") is not None
                else f"{c['milestone']} achieved"
            )
        elif c.get("event"):
            what = f"{c['event']} × {c.get('count') or 1}"
        else:
            what = f"{c.get('kr')} reaches {c.get('reaches')}"
        timeout = f", at most {c['timeout_days']:g} days" if c.get("timeout_days") is not None else ""
        jump = f" (then {c['on_timeout']})" if c.get("on_timeout") else ""
        return what + timeout + jump
    if kind == "branch":
        return (
            f"if {describe(c.get('condition'))} → {c.get('then') or 'next'}, else {c.get('else') or 'next'}"
        )
    return "ends the enrolment"


def enters_by_trigger(values: Mapping[str, Any]) -> bool:
    """Whether accounts enter by a plan trigger (a milestone slipped, …) rather than a rule's enrol
    action: then no enrolling rule is nothing to fix."""
    return str((values.get("trigger") or {}).get("signal", "rule")) != "rule"


def settings_text(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    trigger = values.get("trigger") or {}
    signal = trigger.get("signal", "rule")
    entry = TRIGGER_LABELS.get(signal, signal)
    if trigger.get("milestone"):
        entry += f" ({trigger['milestone']})"
    if trigger.get("days") is not None:
        entry += f", {trigger['days']} days"
    exit_when = values.get("exit_when") or {}
    leaves = []
    if exit_when.get("plan_completed", True):
        leaves.append("the plan is completed")
    if exit_when.get("segments"):
        leaves.append("the account leaves " + ", ".join(exit_when["segments"]))
    if exit_when.get("condition") is not None:
        leaves.append(describe(exit_when["condition"]))
    leaves.append("every contact unsubscribed")
    window = values.get("send_window")
    return [
        ("Entry", entry),
        ("Exit when", "; ".join(leaves)),
        ("Re-entry", f"after {values['reentry_days']} days" if values.get("reentry_days") else "never"),
        ("Holdout", f"{values.get('holdout_percent') or 0} % of accounts"),
        ("Frequency caps", "apply" if values.get("caps", True) else "never hold this campaign back"),
        (
            "Send window",
            f"{window['start_hour']}:00–{window['end_hour']}:00"
            + (", weekdays only" if window.get("weekdays_only") else "")
            + " in the contact's time zone"
            if window
            else "any time",
        ),
        ("Category", str(values.get("category") or "nurture")),
    ]
