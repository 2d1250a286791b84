"""JSON Logic evaluation with datalogic-py: compile once per distinct condition, evaluate many."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import datalogic_py

from engine.errors import ValidationFailed

_ENGINE = datalogic_py.Engine()
_local = threading.local()
MAX_CONDITION_DEPTH = 32
# The argument each iterating operator evaluates once per element, with the element as its data:
# `var` paths inside it are relative to the element, not to the facts.
SCOPED_ARGUMENT = {
    "map": 1,
    "filter": 1,
    "reduce": 1,
    "all": 1,
    "some": 1,
    "none": 1,
    "group_by": 1,
    "distinct": 1,
    "sort": 2,
}


class InvalidCondition(ValidationFailed):
    """A condition that is not valid JSON Logic; `errors` is keyed by JSON pointer."""


FACTS_UNREADABLE = "facts could not be read"


class UnreadableFacts(ValidationFailed):
    """Facts datalogic cannot take (a number past what JSON Logic holds); keyed `facts`."""


@lru_cache(maxsize=4096)
def _compiled(condition_json: str) -> datalogic_py.Rule:
    return _ENGINE.compile(condition_json)


def compile_condition(condition: Any) -> datalogic_py.Rule:
    """The compiled rule for `condition` (cached by its canonical JSON text)."""
    try:
        return _compiled(json.dumps(condition, sort_keys=True, separators=(",", ":")))
    except datalogic_py.DataLogicError as exc:
        raise InvalidCondition({_pointer(exc): str(exc)}) from exc


def evaluate(condition: Any, data: Any) -> Any:
    """Evaluate one JSON Logic `condition` against `data` with the full JsonLogic semantics.

    Integers beyond 64 bits are read as floats, as `facts_handle` reads them (JSON numbers are
    doubles to JsonLogic); UnreadableFacts if datalogic still cannot take `data`; its
    EvaluateError if `data` breaks the condition (`{"<=": [1.5, {}]}`): see `holds`."""
    rule = compile_condition(condition)
    try:
        return rule.evaluate(data)
    except datalogic_py.ParseError:  # the condition compiled: what did not parse is `data`
        pass
    try:
        return rule.evaluate(_as_json_numbers(data))
    except datalogic_py.ParseError as exc:
        raise UnreadableFacts({"facts": f"{FACTS_UNREADABLE}: {exc}"}) from exc


def truthy(value: Any) -> bool:
    """JsonLogic truthiness as datalogic applies it: false, null, 0, NaN, "", [] and {} are false."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def holds(condition: Any, data: Any) -> bool:
    """Whether `condition` holds on `data`. A condition that `data` breaks does not hold (the
    rules engine traces it so, `decide`): a survey's `show_if` comparing an answer with an object
    hides its question rather than failing the response."""
    try:
        return truthy(evaluate(condition, data))
    except datalogic_py.EvaluateError:
        return False


def facts_handle(data: Any) -> datalogic_py.DataHandle:
    """Parse `data` once for many evaluations (a decision reads the same facts for every rule).

    JSON numbers are doubles to JsonLogic: integers beyond 64 bits are read as floats.
    """
    try:
        return datalogic_py.DataHandle(data)
    except datalogic_py.ParseError:
        return datalogic_py.DataHandle(_as_json_numbers(data))


def _as_json_numbers(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return float(value)
    if isinstance(value, dict):
        return {k: _as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json_numbers(v) for v in value]
    return value


def _session() -> datalogic_py.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = _ENGINE.session()
    return session


def truthy_evaluator() -> Callable[[datalogic_py.Rule, datalogic_py.DataHandle], bool]:
    """`(compiled rule, pre-parsed facts) -> truthiness`, on this thread's evaluation arena."""
    return _session().evaluate_truthy


def evaluate_parsed(condition: Any, handle: datalogic_py.DataHandle) -> Any:
    """Evaluate `condition` on facts parsed once with `facts_handle` (any numbers the facts hold)."""
    return _session().evaluate_data(compile_condition(condition), handle)


def validate_condition(condition: Any, *, pointer: str = "") -> None:
    """Raise InvalidCondition with the JSON pointer of every problem found before it runs."""
    depth = _depth(condition)
    if depth > MAX_CONDITION_DEPTH:
        raise InvalidCondition(
            {pointer or "/": f"condition nests {depth} levels deep; the limit is {MAX_CONDITION_DEPTH}"}
        )
    try:
        diagnostics = _ENGINE.check(condition)
    except datalogic_py.DataLogicError as exc:
        raise InvalidCondition({pointer + _pointer(exc): str(exc)}) from exc
    errors = {pointer + (d["pointer"] or ""): d["message"] for d in diagnostics if d["severity"] == "error"}
    if errors:
        raise InvalidCondition(errors)
    compile_condition(condition)


def _pointer(exc: datalogic_py.DataLogicError) -> str:
    path = getattr(exc, "path", None) or []
    if path:
        return str(path[-1].get("json_pointer") or "")
    return ""


def _depth(node: Any, level: int = 0) -> int:
    if level > MAX_CONDITION_DEPTH:
        return level
    if isinstance(node, dict):
        return max((_depth(v, level + 1) for v in node.values()), default=level + 1)
    if isinstance(node, list):
        return max((_depth(v, level + 1) for v in node), default=level + 1)
    return level
