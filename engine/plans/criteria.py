"""A milestone's completion criteria: compiled once per document, answered from event tallies
when they are count thresholds, else by the JSON Logic engine (the answer is the engine's)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from engine.events.counts import Tallies
from engine.rules.logic import evaluate, holds


def criteria_progress(criteria: Any, facts: dict[str, Any]) -> float | None:
    """0..1 for criteria shaped `{">=": [{"var": …}, n]}` (or an `and` of them), else None."""
    if not isinstance(criteria, dict) or len(criteria) != 1:
        return None
    op, args = next(iter(criteria.items()))
    if op == "and" and isinstance(args, list) and args:
        parts = [criteria_progress(a, facts) for a in args]
        return None if any(p is None for p in parts) else min(p for p in parts if p is not None)
    if op in (">=", ">") and isinstance(args, list) and len(args) == 2:
        left, threshold = args
        if isinstance(left, dict) and "var" in left and isinstance(threshold, int | float) and threshold > 0:
            value = _var(left, facts)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return max(0.0, min(1.0, value / threshold))
    return None


def _holds(criteria: Any, facts: dict[str, Any]) -> bool:
    quick = _threshold_holds(criteria, facts)
    if quick is not None:
        return quick
    try:
        return holds(criteria, facts)
    except Exception:  # noqa: BLE001 - a stored criterion that no longer evaluates never crashes ingest
        return False


# Criteria are nearly always `{">=": [{"var": "events.<name>.count"}, n]}`, checked for every open
# milestone of every plan an ingest batch touches (thousands per batch). For that shape the answer
# is read straight from the facts; anything else, or a value that is not a plain number, goes to the
# JSON Logic engine, so the result is the engine's in every case.
_MISSING = object()  # a dotted path one of whose dicts lacks the key: JSON Logic reads it as null
_UNSURE = object()  # a path through something other than dicts (arrays, defaults): ask the engine


def _lookup(path: Any, facts: Any) -> Any:
    if not isinstance(path, str) or not path:
        return _UNSURE
    value = facts
    for part in path.split("."):
        if not isinstance(value, dict):
            return _UNSURE
        if part not in value:
            return _MISSING
        value = value[part]
    return value


def _var(operand: dict[str, Any], facts: dict[str, Any]) -> Any:
    """`evaluate(operand, facts)` for a `{"var": …}` operand."""
    value = _lookup(operand["var"], facts) if len(operand) == 1 else _UNSURE
    if value is _MISSING:
        return None
    return evaluate(operand, facts) if value is _UNSURE else value


def _plain_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _threshold_holds(criteria: Any, facts: dict[str, Any]) -> bool | None:
    """`holds(criteria, facts)` for `{">=" | ">": [{"var": path}, n]}`, or None to ask the engine."""
    if not isinstance(criteria, dict) or len(criteria) != 1:
        return None
    op, args = next(iter(criteria.items()))
    if op not in (">=", ">") or not isinstance(args, list) or len(args) != 2:
        return None
    left, threshold = args
    if not isinstance(left, dict) or len(left) != 1 or "var" not in left or not _plain_number(threshold):
        return None
    value = _lookup(left["var"], facts)
    if value is _MISSING:
        return _holds_when_missing(op, left["var"], threshold)
    if not _plain_number(value):
        return None
    return bool(value >= threshold if op == ">=" else value > threshold)


@lru_cache(maxsize=1024)
def _holds_when_missing(op: str, path: str, threshold: float) -> bool:
    """How the engine compares a missing (null) value with the threshold: asked once per shape."""
    return holds({op: [{"var": path}, threshold]}, {})


def _facts(tallies: Tallies) -> dict[str, Any]:
    """The facts criteria are written against: {"events": {"<name>": {"count": n}}}."""
    return {"events": {name: {"count": count} for name, count in tallies.items()}}


@dataclass(frozen=True, slots=True)
class _Threshold:
    """`{">=" | ">": [{"var": "events.<name>.count"}, n]}` with n a plain number."""

    name: str
    strict: bool
    threshold: int | float
    when_missing: bool  # what JSON Logic answers when the plan has no such event (a null count)

    def holds(self, tallies: Tallies) -> bool:
        count = tallies.get(self.name)
        if count is None:
            return self.when_missing
        return count > self.threshold if self.strict else count >= self.threshold

    def progress(self, tallies: Tallies) -> float | None:
        count = tallies.get(self.name)
        if count is None or self.threshold <= 0:
            return None
        return max(0.0, min(1.0, count / self.threshold))


class Criteria:
    """A milestone's criteria, compiled once per distinct document (`compile_criteria`).

    The common shapes — a count threshold on one event name, or an `and` of them — are answered
    from the plan's tallies directly; any other document is evaluated by the JSON Logic engine
    over the facts (`_holds`, `criteria_progress`), as before. Either way the answer is the
    engine's (tests/test_events_fastpath.py compares them). `names`: the event names the criteria
    read, so a refresh counts only those (None: it may read any fact)."""

    __slots__ = ("document", "names", "_parts")

    def __init__(self, document: Any) -> None:
        self.document = document
        self._parts = _thresholds(document)
        self.names = None if self._parts is None else frozenset(p.name for p in self._parts)

    def holds(self, tallies: Tallies) -> bool:
        if self._parts is None:
            return _holds(self.document, _facts(tallies))
        return all(part.holds(tallies) for part in self._parts)

    def progress(self, tallies: Tallies) -> float | None:
        """0..1 as `criteria_progress` reads it, or None when the criteria give no measure."""
        if self._parts is None:
            return criteria_progress(self.document, _facts(tallies))
        lowest = 1.0
        for part in self._parts:
            found = part.progress(tallies)
            if found is None:
                return None
            lowest = min(lowest, found)
        return lowest


@lru_cache(maxsize=4096)
def compile_criteria(document: str | None) -> Criteria | None:
    """The compiled criteria for a milestone's criteria as stored JSON text (None: no criteria,
    as for any falsy document)."""
    if document is None:
        return None
    parsed = json.loads(document)
    return Criteria(parsed) if parsed else None


def _thresholds(document: Any) -> tuple[_Threshold, ...] | None:
    """The thresholds the document is the conjunction of, or None for any other shape."""
    if not isinstance(document, dict) or len(document) != 1:
        return None
    op, args = next(iter(document.items()))
    if op == "and":
        if not isinstance(args, list) or not args:
            return None
        parts = [_threshold(arg) for arg in args]
        return None if any(p is None for p in parts) else tuple(p for p in parts if p is not None)
    single = _threshold(document)
    return None if single is None else (single,)


def _threshold(document: Any) -> _Threshold | None:
    if not isinstance(document, dict) or len(document) != 1:
        return None
    op, args = next(iter(document.items()))
    if op not in (">=", ">") or not isinstance(args, list) or len(args) != 2:
        return None
    left, threshold = args
    if not isinstance(left, dict) or len(left) != 1 or not _plain_number(threshold):
        return None
    path = left.get("var")
    parts = path.split(".") if isinstance(path, str) else []
    if len(parts) != 3 or parts[0] != "events" or not parts[1] or parts[2] != "count":
        return None
    return _Threshold(parts[1], op == ">", threshold, _holds_when_missing(op, path, threshold))
