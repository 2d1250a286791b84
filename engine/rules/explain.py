"""Why a condition held or not: the sub-condition that decided it and the facts it read.

Only the trace reads this, after the decision (`Decision.trace`), so `decide` stays as fast as a
bare evaluation: the explanation re-evaluates the children of and/or/!/!!/if on the same facts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import datalogic_py

from engine.rules.logic import MAX_CONDITION_DEPTH, SCOPED_ARGUMENT, evaluate_parsed, truthy

MAX_SHOWN = 240


class Leaf(NamedTuple):
    """A sub-condition that decided the outcome, where it sits, and its truthiness."""

    at: tuple[str, ...]
    node: Any
    holds: bool


class Reason(NamedTuple):
    """A sub-condition that decided a rule, whether it held, and the facts it read (path, value):
    as values, for `written` and for a reader that words them itself (the console)."""

    at: tuple[str, ...]
    condition: Any
    holds: bool
    read: tuple[tuple[str, Any], ...]


def reasons(condition: Any, handle: datalogic_py.DataHandle, *, expected: bool) -> tuple[Reason, ...] | None:
    """The sub-conditions that made `condition` evaluate to `expected` on facts parsed with
    `facts_handle`, or None when it does not evaluate to `expected` on them."""
    try:
        if _holds(condition, handle) != expected:
            return None
        return tuple(
            Reason(
                leaf.at,
                leaf.node,
                leaf.holds,
                tuple((path, _read(path, handle)) for path in _paths_read(leaf.node))
                if isinstance(leaf.node, dict | list)
                else (),
            )
            for leaf in _deciding(condition, handle, (), expected, 0)
        )
    except datalogic_py.DataLogicError:
        return None


def written(found: tuple[Reason, ...]) -> str:
    """`reasons` as the trace writes them, where each sits, its JSON Logic and the values it read:
    `"and/1: {...} is false (events.job_posted.count_30d = 2)"`."""
    return "; ".join(_describe(reason) for reason in found)


def _holds(node: Any, handle: datalogic_py.DataHandle) -> bool:
    return truthy(evaluate_parsed(node, handle))


def _deciding(
    node: Any, handle: datalogic_py.DataHandle, at: tuple[str, ...], holds: bool, depth: int
) -> list[Leaf]:
    if not isinstance(node, dict) or len(node) != 1 or depth > MAX_CONDITION_DEPTH:
        return [Leaf(at, node, holds)]
    op, raw = next(iter(node.items()))
    args = raw if isinstance(raw, list) else [raw]

    def arg_at(i: int) -> tuple[str, ...]:
        return (*at, op, str(i)) if isinstance(raw, list) else (*at, op)

    if op in ("and", "or") and args:
        # and stops at the first false child, or at the first true one: that child decides.
        stops_on = op == "or"
        for i, arg in enumerate(args):
            if _holds(arg, handle) == stops_on:
                return _deciding(arg, handle, arg_at(i), stops_on, depth + 1)
        # No child stopped it: every one of them (all true for and, all false for or) decided.
        return [
            leaf for i, arg in enumerate(args) for leaf in _deciding(arg, handle, arg_at(i), holds, depth + 1)
        ]
    if op in ("!", "!!") and args:
        return _deciding(args[0], handle, arg_at(0), _holds(args[0], handle), depth + 1)
    if op in ("if", "?:") and len(args) >= 2:
        return _branch(args, arg_at, handle, holds, depth)
    return [Leaf(at, node, holds)]


def _branch(
    args: list[Any],
    arg_at: Callable[[int], tuple[str, ...]],
    handle: datalogic_py.DataHandle,
    holds: bool,
    depth: int,
) -> list[Leaf]:
    """For `if`, the branch taken decides; when that branch is a constant, the test(s) that chose it."""
    tested: list[Leaf] = []
    chosen: int | None = len(args) - 1 if len(args) % 2 == 1 else None
    for i in range(0, len(args) - 1, 2):
        passed = _holds(args[i], handle)
        tested.append(Leaf(arg_at(i), args[i], passed))
        if passed:
            chosen = i + 1
            break
    if chosen is not None and isinstance(args[chosen], dict):
        return _deciding(args[chosen], handle, arg_at(chosen), holds, depth + 1)
    reasons = tested[-1:] if tested and tested[-1].holds else tested
    return [leaf for t in reasons for leaf in _deciding(t.node, handle, t.at, t.holds, depth + 1)]


def _describe(reason: Reason) -> str:
    where = "/".join(part.replace("~", "~0").replace("/", "~1") for part in reason.at)
    truth = "true" if reason.holds else "false"
    if not isinstance(reason.condition, dict | list):
        text = f"condition is always {truth}" if not where else f"{_shown(reason.condition)} is {truth}"
    else:
        text = f"{_shown(reason.condition)} is {truth}"
        values = [f"{path} = {_shown(value)}" for path, value in reason.read]
        if values:
            text += f" ({', '.join(values)})"
    return f"{where}: {text}" if where else text


def _read(path: str, handle: datalogic_py.DataHandle) -> Any:
    try:
        return evaluate_parsed({"var": path}, handle)
    except datalogic_py.DataLogicError:
        return None


def _paths_read(node: Any, found: dict[str, None] | None = None, depth: int = 0) -> list[str]:
    """The literal `var` paths `node` reads from the facts, in order, once each."""
    found = {} if found is None else found
    if depth > MAX_CONDITION_DEPTH:
        return list(found)
    if isinstance(node, list):
        for item in node:
            _paths_read(item, found, depth + 1)
    elif isinstance(node, dict) and len(node) == 1:
        op, raw = next(iter(node.items()))
        if op == "var":
            path = raw[0] if isinstance(raw, list) and raw else raw
            if isinstance(path, str) and path:
                found[path] = None
            return list(found)
        args = raw if isinstance(raw, list) else [raw]
        for i, arg in enumerate(args):
            if i != SCOPED_ARGUMENT.get(op):
                _paths_read(arg, found, depth + 1)
    return list(found)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"
