"""`decide(facts, rules)`: pure, deterministic, explainable mapping from facts to actions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import datalogic_py

from engine.errors import ValidationFailed
from engine.rules.explain import Reason, reasons, written
from engine.rules.logic import FACTS_UNREADABLE, compile_condition, facts_handle, truthy_evaluator

ACTION_TYPES = (
    "create_plan",
    "add_objective",
    "add_milestone",
    "enroll",
    "exit",
    "tag_account",
    "assign_content",
)
CONDITION_FALSE, CONDITION_TRUE = "condition is false", "condition is true"
EVALUATION_FAILED = "condition failed to evaluate"  # the trace reason starts so when the facts break it


@dataclass(frozen=True)
class Action:
    type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dict(self.params), "rule": self.rule}


@dataclass(frozen=True)
class RuleSpec:
    """A rule as plain values, so `decide` never touches the database."""

    name: str
    condition: Any
    actions: tuple[Mapping[str, Any], ...]
    priority: int = 100
    stop_processing: bool = False


class TraceEntry(NamedTuple):
    rule: str
    matched: bool
    reason: str


@dataclass(frozen=True)
class Decision:
    """The actions of the matching rules, and one trace row per rule: `(rule, matched, reason)`.

    `trace_rows` say only "condition is true/false"; `trace` explains those from the sub-condition
    that decided and the facts it read, computed on first read so deciding stays cheap.
    """

    actions: tuple[Action, ...]
    trace_rows: tuple[tuple[str, bool, str], ...]
    # What `trace` explains from: the facts decided on and each row's condition (same order).
    facts: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    conditions: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    @cached_property
    def reasons(self) -> tuple[tuple[Reason, ...] | None, ...]:
        """Per trace row, the sub-conditions that decided it and the facts they read; None where
        the row's reason is not its condition's (skipped, failed to evaluate) or the facts are gone."""
        if self.facts is None or len(self.conditions) != len(self.trace_rows):
            return (None,) * len(self.trace_rows)
        handle = facts_handle(dict(self.facts))
        explained = (CONDITION_FALSE, CONDITION_TRUE)
        return tuple(
            reasons(condition, handle, expected=matched) if reason in explained else None
            for (_, matched, reason), condition in zip(self.trace_rows, self.conditions, strict=True)
        )

    @cached_property
    def trace(self) -> tuple[TraceEntry, ...]:
        """Every rule in evaluation order: matched or not, and why (for a condition, which part)."""
        return tuple(
            TraceEntry(name, matched, (written(found) if found else "") or reason)
            for (name, matched, reason), found in zip(self.trace_rows, self.reasons, strict=True)
        )

    def of_type(self, action_type: str) -> list[Action]:
        return [a for a in self.actions if a.type == action_type]


@dataclass(frozen=True)
class CompiledRule:
    spec: RuleSpec
    compiled: datalogic_py.Rule | None
    actions: tuple[Action, ...]
    compile_error: str | None = None


RuleRow = tuple[str, datalogic_py.Rule | None, tuple[Action, ...], bool, str | None]


class CompiledRules:
    """Rules in evaluation order (highest priority first, then name), conditions compiled once."""

    def __init__(self, rules: tuple[CompiledRule, ...]) -> None:
        self.rules = rules
        # Plain tuples for the hot loop in decide(): attribute lookups cost more than evaluating.
        self.rows: list[RuleRow] = [
            (r.spec.name, r.compiled, r.actions, r.spec.stop_processing, r.compile_error) for r in rules
        ]
        self.conditions = tuple(r.spec.condition for r in rules)


def compile_rules(rules: Iterable[RuleSpec]) -> CompiledRules:
    compiled: list[CompiledRule] = []
    for spec in sorted(rules, key=lambda r: (-r.priority, r.name)):
        actions = tuple(
            Action(str(raw["type"]), {k: v for k, v in raw.items() if k != "type"}, spec.name)
            for raw in spec.actions
        )
        try:
            compiled.append(CompiledRule(spec, compile_condition(spec.condition), actions))
        except ValidationFailed as exc:
            compiled.append(CompiledRule(spec, None, actions, exc.detail))
    return CompiledRules(tuple(compiled))


def decide(facts: Mapping[str, Any], rules: Iterable[RuleSpec] | CompiledRules) -> Decision:
    """Evaluate rules in order and collect the actions of those that match.

    Never raises on odd facts: a rule whose condition fails to evaluate is traced as not matched.
    Pass `CompiledRules` (from `compile_rules`) to evaluate the same rules many times cheaply.
    """
    ordered = rules if isinstance(rules, CompiledRules) else compile_rules(rules)
    document = dict(facts)
    try:
        handle = facts_handle(document)
    except datalogic_py.DataLogicError as exc:
        reason = f"{FACTS_UNREADABLE}: {exc}"
        return Decision((), tuple((row[0], False, reason) for row in ordered.rows))
    holds_on = truthy_evaluator()
    actions: list[Action] = []
    trace: list[tuple[str, bool, str]] = []
    stopped_by: str | None = None
    false, true = CONDITION_FALSE, CONDITION_TRUE
    for name, compiled, rule_actions, stops, compile_error in ordered.rows:
        if stopped_by is not None:
            trace.append((name, False, f"skipped: {stopped_by!r} stops processing"))
            continue
        if compiled is None:
            trace.append((name, False, f"condition does not compile: {compile_error}"))
            continue
        try:
            matched = holds_on(compiled, handle)
        except datalogic_py.DataLogicError as exc:
            trace.append((name, False, f"{EVALUATION_FAILED}: {exc}"))
            continue
        if not matched:
            trace.append((name, False, false))
            continue
        trace.append((name, True, true))
        actions.extend(rule_actions)
        if stops:
            stopped_by = name
    return Decision(tuple(actions), tuple(trace), document, ordered.conditions)
