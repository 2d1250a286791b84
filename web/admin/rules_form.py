"""The rule editor's form: typed values in, a rule document out, and errors back at their controls."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from campaigns.models import Campaign
from engine.library import Objective
from engine.plans.models import PlanTemplate
from engine.rules.actions import ACTION_PARAMS
from engine.rules.decide import Decision, TraceEntry
from engine.rules.explain import Reason
from engine.rules.models import Rule
from web.admin.form_fields import unix_newlines
from web.context import has_nul

ACTION_LABELS = {
    "create_plan": "Create a success plan",
    "enroll": "Enroll in a campaign",
    "exit": "Exit a campaign",
    "tag_account": "Tag the account",
    "assign_content": "Assign content",
    "add_objective": "Add an objective",
    "add_milestone": "Add a milestone",
}
assert set(ACTION_LABELS) == set(ACTION_PARAMS)
PARAM_LABELS = {
    "template": "Plan template",
    "campaign": "Campaign",
    "key": "Key",
    "baseline": "Baseline",
    "target": "Target",
    "due_in_days": "Due in (days)",
    "title": "Title",
    "owner": "Owner",
    "criteria": "Criteria (JSON Logic)",
    "tag": "Content tag",
    "value": "Tag",
}
ALL_PARAMS = tuple(dict.fromkeys(p for params in ACTION_PARAMS.values() for p in params))
assert set(ALL_PARAMS) <= set(PARAM_LABELS)
INTEGER_PARAMS = frozenset({"due_in_days"})
NUMBER_PARAMS = frozenset({"baseline", "target"})
JSON_PARAMS = frozenset({"criteria"})
BLANK_ACTIONS = 1  # empty action rows: how the form adds an action when JavaScript is off
MAX_ACTIONS = 40
ACTION_FIELD = re.compile(r"^action-(\d{1,3})-type$")
FIELD_GROUPS = {
    "outcomes": "Survey picks",
    "objectives": "Survey picks",
    "account": "Account",
    "events": "Product events",
    "plan": "Success plan",
}


@dataclass
class ActionRow:
    """One action as typed: its type and every parameter's text (only the type's own are sent)."""

    type: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_action(cls, action: Mapping[str, Any]) -> ActionRow:
        params = {}
        for name, value in action.items():
            if name == "type" or value is None:
                continue
            params[name] = json.dumps(value) if isinstance(value, dict | list) else _text(value)
        return cls(type=str(action.get("type", "")), params=params)


@dataclass
class RuleForm:
    name: str = ""
    description: str = ""
    priority: str = "100"
    stop: bool = False
    condition: str = '{"and": []}'
    actions: list[ActionRow] = field(default_factory=list)

    @classmethod
    def from_rule(cls, rule: Rule) -> RuleForm:
        return cls(
            name=rule.name,
            description=rule.description,
            priority=str(rule.priority),
            stop=rule.stop_processing,
            condition=condition_text(rule.condition),
            actions=[ActionRow.from_action(a) for a in rule.actions if isinstance(a, Mapping)],
        )


def condition_text(condition: Any) -> str:
    return json.dumps(condition, ensure_ascii=False)


def parse_rule_form(posted: MultiDict[str, str]) -> tuple[RuleForm, dict[str, Any], dict[str, str]]:
    """The form as typed, the rule document it means, and the problems found before the service's
    checks (unparseable JSON). Numbers that do not parse are passed on as text for the schema to
    reject at the right pointer."""
    errors: dict[str, str] = {}
    # PostgreSQL's text and JSONB refuse NUL characters; a pasted one must not become a 500.
    posted = MultiDict([(k, v.replace("\x00", "")) for k, v in posted.items(multi=True)])
    form = RuleForm(
        name=posted.get("name", "").strip(),
        description=unix_newlines(posted.get("description", "")).strip(),
        priority=posted.get("priority", "").strip(),
        stop=posted.get("stop") == "on",
        condition=unix_newlines(posted.get("condition", "")).strip(),
        actions=_action_rows(posted),
    )
    document: dict[str, Any] = {
        "name": form.name,
        "description": form.description,
        "priority": _integer(form.priority) if form.priority else 100,
        "stop": form.stop,
    }
    try:
        document["condition"] = json.loads(form.condition) if form.condition else None
    except (ValueError, RecursionError) as exc:
        errors["/condition"] = f"not valid JSON: {exc}"
        document["condition"] = None
    if document["condition"] is None and "/condition" not in errors:
        errors["/condition"] = "a rule needs a condition"
    elif has_nul(document["condition"]):
        errors["/condition"] = "must not contain NUL (\\u0000) characters"
    actions = []
    for i, row in enumerate(form.actions):
        action: dict[str, Any] = {"type": row.type}
        for name in ACTION_PARAMS.get(row.type, []):
            typed = row.params.get(name, "").strip()
            if not typed:
                continue
            if name in INTEGER_PARAMS:
                action[name] = _integer(typed)
            elif name in NUMBER_PARAMS:
                action[name] = _number(typed)
            elif name in JSON_PARAMS:
                try:
                    action[name] = json.loads(typed)
                except (ValueError, RecursionError) as exc:
                    errors[f"/actions/{i}/{name}"] = f"not valid JSON: {exc}"
                else:
                    if has_nul(action[name]):
                        errors[f"/actions/{i}/{name}"] = "must not contain NUL (\\u0000) characters"
            else:
                action[name] = typed
        actions.append(action)
    document["actions"] = actions
    return form, document, errors


def _action_rows(posted: MultiDict[str, str]) -> list[ActionRow]:
    """The filled-in, not removed action rows, in the order the page sent them."""
    rows: list[ActionRow] = []
    for name in posted:
        match = ACTION_FIELD.match(name)
        if not match or len(rows) >= MAX_ACTIONS:
            continue
        slot = match.group(1)
        row = ActionRow(
            type=posted.get(name, "").strip(),
            params={p: unix_newlines(posted.get(f"action-{slot}-{p}", "")).strip() for p in ALL_PARAMS},
        )
        if not row.type or posted.get(f"action-{slot}-remove") == "on":
            continue
        rows.append(row)
    return rows


def _integer(text: str) -> int | str:
    return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text


def _number(text: str) -> float | int | str:
    if re.fullmatch(r"-?\d{1,15}", text):
        return int(text)
    if re.fullmatch(r"-?\d{0,15}\.\d{1,15}", text):
        return float(text)
    return text


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def split_errors(errors: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(errors under /condition, everything else) so the builder gets its own pointers."""
    condition = {k: v for k, v in errors.items() if k == "/condition" or k.startswith("/condition/")}
    rest = {k: v for k, v in errors.items() if k not in condition}
    return condition, rest


def error_at(errors: Mapping[str, str], pointer: str) -> str | None:
    """The message for one control: its own pointer, or anything below it (`/actions/0/template/x`)."""
    if pointer in errors:
        return errors[pointer]
    below = [message for key, message in errors.items() if key.startswith(pointer + "/")]
    return "; ".join(below) if below else None


def error_summary(errors: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every error with a label a person recognises ("Action 1 · Plan template", "Condition")."""
    summary = []
    for pointer, message in errors.items():
        parts = pointer.strip("/").split("/") if pointer else []
        if not parts:
            label = "Rule"
        elif parts[0] == "actions" and len(parts) >= 2 and parts[1].isdigit():
            label = f"Action {int(parts[1]) + 1}"
            if len(parts) >= 3:
                label += f" · {PARAM_LABELS.get(parts[2], parts[2])}"
        elif parts[0] == "condition":
            label = "Condition" + (f" at {pointer[len('/condition') :]}" if len(parts) > 1 else "")
        else:
            label = parts[0].replace("_", " ").capitalize()
        summary.append((label, message))
    return summary


# -- what the editor offers -------------------------------------------------------------------------


def field_choices(session: Session) -> list[dict[str, Any]]:
    """The catalogue for the condition builder: path, type, description, values and a group label."""
    try:
        from engine.rules.catalogue import catalogue
    except ImportError:  # pragma: no cover - the builder falls back to typed paths
        return []
    fields = catalogue(session).fields.values()
    return [
        {
            "path": f.path,
            "type": f.type,
            "description": f.description,
            "values": list(f.values),
            "group": field_group(f.path),
        }
        for f in sorted(fields, key=lambda f: (field_group(f.path), f.path))
    ]


def field_group(path: str) -> str:
    head, _, rest = path.partition(".")
    if head == "answers":
        survey = rest.partition(".")[0]
        return f"Answers · {survey}" if survey else "Answers"
    return FIELD_GROUPS.get(head, head.capitalize())


def known_keys(session: Session) -> dict[str, list[str]]:
    """Existing names for the action pickers' datalists."""
    return {
        "template": list(session.scalars(select(PlanTemplate.key).order_by(PlanTemplate.key))),
        "campaign": list(session.scalars(select(Campaign.key).order_by(Campaign.key))),
        "key": list(session.scalars(select(Objective.key).order_by(Objective.key))),
    }


# -- reading a condition ----------------------------------------------------------------------------

_WORDS = {"==": "=", "===": "=", "!=": "≠", "!==": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def describe(condition: Any, *, top: bool = True) -> str:
    """A condition in words for the rule lists: `answers.outcomes.nps ≤ 6 and nps is set`."""
    if isinstance(condition, dict) and len(condition) == 1:
        op, raw = next(iter(condition.items()))
        args = raw if isinstance(raw, list) else [raw]
        if op in ("and", "or"):
            if not args:
                return "never (no conditions)" if op == "and" else "never"
            joined = f" {op} ".join(describe(a, top=False) for a in args)
            return joined if top or len(args) == 1 else f"({joined})"
        if op == "!" and len(args) == 1:
            inner = args[0]
            if _path(inner) is not None:
                return f"{_path(inner)} is empty"
            if isinstance(inner, dict) and list(inner) == ["or"]:
                parts = inner["or"] if isinstance(inner["or"], list) else [inner["or"]]
                return "none of (" + ", ".join(describe(a, top=False) for a in parts) + ")"
            return f"not ({describe(inner)})"
        if op == "!!" and len(args) == 1 and _path(args[0]) is not None:
            return f"{_path(args[0])} is not empty"
        if op in ("<", "<=") and len(args) == 3 and _path(args[1]) is not None:
            return f"{_path(args[1])} between {_literal(args[0])} and {_literal(args[2])}"
        if op in _WORDS and len(args) == 2:
            left, right = args
            if _path(left) is not None and right is None:
                return f"{_path(left)} is {'not set' if op in ('==', '===') else 'set'}"
            if _path(left) is not None:
                return f"{_path(left)} {_WORDS[op]} {_literal(right)}"
        if op == "in" and len(args) == 2:
            needle, haystack = args
            if _path(haystack) is not None:
                return f"{_path(haystack)} contains {_literal(needle)}"
            if _path(needle) is not None and isinstance(haystack, list):
                return f"{_path(needle)} is one of {', '.join(_literal(v) for v in haystack)}"
        if op == "var" and _path(condition) is not None:
            return f"{_path(condition)} is true"
    if condition is True:
        return "always"
    text = json.dumps(condition, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "…"


def _path(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1 and "var" in node:
        raw = node["var"]
        if isinstance(raw, list) and raw and isinstance(raw[0], str):
            return raw[0]
        if isinstance(raw, str):
            return raw
    return None


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, int | float) else _text(value)


def reason_in_words(reason: Reason) -> str:
    """A deciding sub-condition the way the rule lists say it (`describe`), whether it held, and
    the facts it read: `answers.outcomes.nps ≤ 6: no (answers.outcomes.nps is 9)`."""
    held = "yes" if reason.holds else "no"
    if not isinstance(reason.condition, dict | list):
        return f"{_literal(reason.condition)}: {held}" if reason.at else f"always: {held}"
    read = [f"{path} is {_fact(value)}" for path, value in reason.read]
    text = f"{describe(reason.condition)}: {held}"
    return f"{text} ({', '.join(read)})" if read else text


def _fact(value: Any) -> str:
    if value is None:
        return "not set"
    if value == [] or value == {}:
        return "empty"
    text = _literal(value)
    return text if len(text) <= 120 else text[:119] + "…"


def trace_in_words(decision: Decision) -> list[TraceEntry]:
    """The decision's trace with each condition's reason in the rule lists' words (`describe`);
    other reasons (skipped, failed to evaluate) as the engine wrote them."""
    return [
        TraceEntry(entry.rule, entry.matched, "; ".join(reason_in_words(r) for r in found))
        if found
        else entry
        for entry, found in zip(decision.trace, decision.reasons, strict=True)
    ]


def describe_action(action: Mapping[str, Any]) -> str:
    kind = str(action.get("type", ""))
    params = [f"{k}={_text(v)}" for k, v in action.items() if k != "type" and not isinstance(v, dict | list)]
    return f"{kind} {' '.join(params)}" if params else kind
