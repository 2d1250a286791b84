"""Static analysis of a rule set: rules that can never match, rules no account can reach, and
rules that can match the same facts but create different plans.

Conditions are put in disjunctive normal form over atoms this module understands (comparisons of a
`var` with a literal, equality, membership, truthiness); anything else is opaque and assumed
satisfiable, so a finding is only reported when it is certain (never-match, unreachable) or when
the satisfiable overlap is real over the atoms understood (conflicts).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.rules.decide import RuleSpec

MAX_TERMS = 64
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class Finding:
    kind: str  # never_matches | unreachable | conflict
    severity: str  # warning | info
    rules: tuple[str, ...]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "rules": list(self.rules),
            "message": self.message,
        }


# An atom is a hashable tuple: ("cmp", var, op, number) | ("eq", var, literal_json) |
# ("has", var, literal_json) | ("oneof", var, frozenset(literal_json)) | ("truthy", var) | ("opaque", text)
Atom = tuple[Any, ...]
Literal = tuple[Atom, bool]
Term = frozenset[Literal]


class _TooBig(Exception):
    pass


def _var(node: Any) -> str | None:
    if isinstance(node, dict) and len(node) == 1 and "var" in node:
        arg = node["var"]
        if isinstance(arg, list) and arg and isinstance(arg[0], str) and len(arg) == 1:
            return arg[0]
        if isinstance(arg, str):
            return arg
    return None


def _is_literal(node: Any) -> bool:
    return node is None or isinstance(node, str | int | float | bool)


def _number(node: Any) -> float | None:
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def _dnf(node: Any) -> list[Term]:
    """The condition as a list of conjunctive terms (empty list: never true; [frozenset()]: always)."""
    if isinstance(node, bool):
        return [frozenset()] if node else []
    if node is None or node == 0 or node == "" or node == []:
        return []
    if _is_literal(node):
        return [frozenset()]
    if not isinstance(node, dict) or len(node) != 1:
        return [frozenset({(("opaque", json.dumps(node, sort_keys=True)), True)})]
    op, args = next(iter(node.items()))
    args = args if isinstance(args, list) else [args]
    if op == "and":
        terms: list[Term] = [frozenset()]
        for arg in args:
            terms = [a | b for a in terms for b in _dnf(arg)]
            if len(terms) > MAX_TERMS:
                raise _TooBig
        return terms
    if op == "or":
        result = [t for arg in args for t in _dnf(arg)]
        if len(result) > MAX_TERMS:
            raise _TooBig
        return result
    if op == "!" and len(args) == 1:
        return _negate(_dnf(args[0]))
    if op == "!!" and len(args) == 1:
        return _dnf(args[0])
    atom = _atom(op, args)
    if atom is None:
        return [frozenset({(("opaque", json.dumps(node, sort_keys=True)), True)})]
    literals, positive = atom
    return [frozenset((a, positive) for a in literals)]


def _negate(terms: list[Term]) -> list[Term]:
    if not terms:
        return [frozenset()]
    result: list[Term] = [frozenset()]
    for term in terms:
        if not term:
            return []
        result = [r | {(atom, not positive)} for r in result for atom, positive in term]
        if len(result) > MAX_TERMS:
            raise _TooBig
    return result


def _atom(op: str, args: list[Any]) -> tuple[list[Atom], bool] | None:
    if op in ("<", "<=", ">", ">="):
        if len(args) == 3 and op in ("<", "<="):
            lo, mid, hi = args
            name, a, b = _var(mid), _number(lo), _number(hi)
            if name is not None and a is not None and b is not None:
                return [("cmp", name, _FLIP[op], a), ("cmp", name, op, b)], True
            return None
        if len(args) != 2:
            return None
        left, right = args
        if _var(left) is not None and _number(right) is not None:
            return [("cmp", _var(left), op, _number(right))], True
        if _var(right) is not None and _number(left) is not None:
            return [("cmp", _var(right), _FLIP[op], _number(left))], True
        return None
    if op in ("==", "===", "!=", "!==") and len(args) == 2:
        left, right = args
        name, value = (_var(left), right) if _var(left) is not None else (_var(right), left)
        if name is None or not _is_literal(value):
            return None
        return [("eq", name, json.dumps(value))], op in ("==", "===")
    if op == "in" and len(args) == 2:
        needle, haystack = args
        if _is_literal(needle) and _var(haystack) is not None:
            return [("has", _var(haystack), json.dumps(needle))], True
        if _var(needle) is not None and isinstance(haystack, list) and all(map(_is_literal, haystack)):
            return [("oneof", _var(needle), frozenset(json.dumps(v) for v in haystack))], True
        return None
    if op == "var":
        name = _var({"var": args if len(args) != 1 else args[0]})
        return ([("truthy", name)], True) if name is not None else None
    return None


def _contradiction(term: Term) -> str | None:
    """Why this conjunction can never hold, or None when it may."""
    positive = {atom for atom, sign in term if sign}
    for atom, sign in term:
        if not sign and atom in positive:
            return f"{_describe(atom)} and not {_describe(atom)}"
    by_var: dict[str, list[Literal]] = {}
    for literal in term:
        atom = literal[0]
        if atom[0] != "opaque":
            by_var.setdefault(atom[1], []).append(literal)
    for name, literals in by_var.items():
        reason = _var_contradiction(name, literals)
        if reason:
            return reason
    return None


def _var_contradiction(name: str, literals: list[Literal]) -> str | None:
    lo, lo_strict, hi, hi_strict = float("-inf"), False, float("inf"), False
    equals: set[str] = set()
    for (kind, _, *rest), sign in literals:
        if kind == "cmp" and sign:
            op, value = rest
            if op in (">", ">=") and (value > lo or (value == lo and op == ">")):
                lo, lo_strict = value, op == ">"
            if op in ("<", "<=") and (value < hi or (value == hi and op == "<")):
                hi, hi_strict = value, op == "<"
        if kind == "eq" and sign:
            equals.add(rest[0])
    if lo > hi or (lo == hi and (lo_strict or hi_strict)):
        above, below = ">" if lo_strict else ">=", "<" if hi_strict else "<="
        return f"{name} cannot be both {above} {_fmt(lo)} and {below} {_fmt(hi)}"
    typed = {value for value in equals if isinstance(json.loads(value), str)}
    numbers = {value for value in equals if _number(json.loads(value)) is not None}
    if len(typed) > 1 or len({float(json.loads(v)) for v in numbers}) > 1:
        return f"{name} cannot equal {' and '.join(sorted(typed | numbers))} at once"
    for value in numbers:
        number = float(json.loads(value))
        if number < lo or number > hi or (number == lo and lo_strict) or (number == hi and hi_strict):
            return f"{name} == {value} is outside the range the other comparisons allow"
    for (kind, _, *rest), sign in literals:
        if kind == "oneof" and sign and typed and not typed & rest[0]:
            return f"{name} == {next(iter(typed))} is not one of {sorted(rest[0])}"
        if kind == "truthy" and sign and "null" in equals:
            return f"{name} cannot be both null and set"
    return None


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def _describe(atom: Atom) -> str:
    kind = atom[0]
    if kind == "cmp":
        return f"{atom[1]} {atom[2]} {_fmt(atom[3])}"
    if kind == "eq":
        return f"{atom[1]} == {atom[2]}"
    if kind == "has":
        return f"{atom[2]} in {atom[1]}"
    if kind == "oneof":
        return f"{atom[1]} in {sorted(atom[2])}"
    if kind == "truthy":
        return f"{atom[1]} is set"
    return str(atom[1])


def satisfiable_terms(condition: Any) -> tuple[list[Term], list[str]] | None:
    """(terms that may hold, reasons the others never do); None when the condition is too big."""
    try:
        terms = _dnf(condition)
    except _TooBig:
        return None
    alive, reasons = [], []
    for term in terms:
        reason = _contradiction(term)
        if reason is None:
            alive.append(term)
        else:
            reasons.append(reason)
    return alive, reasons


def _templates(spec: RuleSpec) -> set[str]:
    return {str(a.get("template")) for a in spec.actions if a.get("type") == "create_plan"}


def analyse(specs: Iterable[RuleSpec]) -> list[Finding]:
    """Findings for a rule set, in evaluation order (highest priority first)."""
    ordered: Sequence[RuleSpec] = sorted(specs, key=lambda r: (-r.priority, r.name))
    findings: list[Finding] = []
    alive: dict[str, list[Term] | None] = {}
    always_stops: str | None = None
    for spec in ordered:
        result = satisfiable_terms(spec.condition)
        if always_stops is not None:
            findings.append(
                Finding(
                    "unreachable",
                    "warning",
                    (spec.name,),
                    f"never evaluated: {always_stops!r} matches every account and stops processing",
                )
            )
        if result is None:
            alive[spec.name] = None
            continue
        terms, reasons = result
        alive[spec.name] = terms
        if not terms:
            why = "; ".join(reasons) if reasons else "the condition is always false"
            findings.append(Finding("never_matches", "warning", (spec.name,), f"can never match: {why}"))
        elif spec.stop_processing and any(not term for term in terms) and always_stops is None:
            always_stops = spec.name
    for first, second in itertools.combinations(ordered, 2):
        plans_a, plans_b = _templates(first), _templates(second)
        if not plans_a or not plans_b or plans_a == plans_b:
            continue
        terms_a, terms_b = alive.get(first.name), alive.get(second.name)
        overlap = (
            terms_a is None
            or terms_b is None
            or any(_contradiction(a | b) is None for a in terms_a for b in terms_b)
        )
        if not overlap or (terms_a == [] or terms_b == []):
            continue
        stopped = first.stop_processing
        findings.append(
            Finding(
                "conflict",
                "info" if stopped else "warning",
                (first.name, second.name),
                f"both can match the same account but create different plans "
                f"({', '.join(sorted(plans_a))} vs {', '.join(sorted(plans_b))}); "
                + (
                    f"{first.name!r} wins: it has higher priority and stops processing"
                    if stopped
                    else f"only {first.name!r}'s plan is created (higher priority); "
                    "set `stop` or narrow a condition"
                ),
            )
        )
    return findings
