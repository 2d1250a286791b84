"""Tri-state SQL predicates for the segment preview, and the leaves built per JSON type of a value.

A predicate is TRUE, FALSE or NULL ("SQL cannot decide this account"); and/or/! keep JsonLogic's
left-to-right short-circuit rather than SQL's three-valued logic (see engine.rules.sql).
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import datalogic_py
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from engine.rules.logic import evaluate, truthy

COMPARISONS = ("==", "!=", "===", "!==", "<", "<=", ">", ">=")
# Text datalogic reads as the same number PostgreSQL's float8 parser does; other text compared
# with a number (" 5", "1e3", "", "abc") is left undecided and evaluated in Python.
DECIMAL_TEXT = r"^-?[0-9]{1,15}(\.[0-9]{1,15})?$"
EXACT_INTEGER = 2**53  # larger JSON numbers may be compared as 64-bit integers by datalogic
_DECIMAL = re.compile(DECIMAL_TEXT)
_SQL_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
    "!==": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!=", "===": "===", "!==": "!=="}


@dataclass(frozen=True, eq=False)
class Pred:
    """A tri-state predicate: TRUE, FALSE, or NULL for "SQL cannot decide this account".

    `exact` means it is never NULL; `const` is its value when it is the same for every account.
    """

    sql: ColumnElement[Any]
    exact: bool
    const: bool | None = None


TRUE = Pred(true(), True, True)
FALSE = Pred(false(), True, False)
UNDECIDED = Pred(cast(null(), Boolean), False)  # typed: a CASE of NULLs alone would be text


def always(value: bool) -> Pred:
    return TRUE if value else FALSE


def decided(sql: ColumnElement[Any]) -> Pred:
    return Pred(sql, True)


def negation(p: Pred) -> Pred:
    if p.const is not None:
        return always(not p.const)
    if p is UNDECIDED:
        return p
    return Pred(not_(p.sql), p.exact)


def conjunction(a: Pred, b: Pred) -> Pred:
    """JsonLogic `and` in a boolean context: `a` falsy stops before `b` is evaluated."""
    if a.const is not None:
        return b if a.const else FALSE
    if a.exact:
        # a decided: FALSE AND x is FALSE, TRUE AND x is x, exactly the short-circuit.
        return FALSE if b.const is False else Pred(a.sql if b.const else and_(a.sql, b.sql), b.exact)
    # a undecided may mean "raises", which b being false must not hide: SQL's AND would.
    return Pred(case((a.sql, b.sql), (not_(a.sql), false()), else_=null()), False)


def disjunction(a: Pred, b: Pred) -> Pred:
    if a.const is not None:
        return TRUE if a.const else b
    if a.exact:
        return TRUE if b.const is True else Pred(a.sql if b.const is False else or_(a.sql, b.sql), b.exact)
    return Pred(case((a.sql, true()), (not_(a.sql), b.sql), else_=null()), False)


# -- values: what a `var` reads, per JSON type ----------------------------------------------------


@dataclass(frozen=True)
class Branch:
    """Accounts that read a value of one JSON type: those for which `when` holds (after earlier
    branches), or whose value's `selector` equals `key`; the last branch takes the rest.

    kind: "const" (the same `value` for all of them), "string" (`sql` is text), "number" (`sql`
    is float8; `guard` marks values datalogic may compare as 64-bit integers), "boolean",
    "array"/"object" (`sql` is jsonb).
    `zero_like`: for these accounts the next branch's number `sql` is 0, so if a test gives the
    same answer for `value` and for 0 this branch folds into the next (missing event counts).
    """

    kind: str
    when: ColumnElement[bool] | None = None
    sql: ColumnElement[Any] | None = None
    value: Any = None
    zero_like: bool = False
    key: str | None = None
    guard: ColumnElement[bool] | None = None


@dataclass(frozen=True)
class Value:
    branches: list[Branch]
    selector: ColumnElement[Any] | None = None  # CASE selector WHEN key ...: computed once per row


Leaf = Callable[[Branch], Pred]


def per_branch(value: Value, leaf: Leaf, constant: Callable[[Any], Pred]) -> Pred:
    branches = value.branches
    preds: list[tuple[Branch, Pred]] = []
    for i, branch in enumerate(branches):
        pred = constant(branch.value) if branch.kind == "const" else _guarded(branch, leaf(branch))
        if branch.zero_like and i + 1 < len(branches) and constant(0) is pred:
            continue
        preds.append((branch, pred))
    last = preds[-1][1]
    if all(p is last for _, p in preds):
        return last
    exact = all(p.exact for _, p in preds)
    if value.selector is not None:
        keyed = {b.key: p.sql for b, p in preds[:-1] if b.key is not None}
        return Pred(case(keyed, value=value.selector, else_=last.sql), exact)
    whens = [(b.when, p.sql) for b, p in preds[:-1] if b.when is not None]
    return Pred(case(*whens, else_=last.sql), exact)


def _guarded(b: Branch, pred: Pred) -> Pred:
    """Undecided where the branch's guard holds (once per branch, however many comparisons)."""
    if b.guard is None or pred.const is not None or pred is UNDECIDED:
        return pred
    return Pred(case((b.guard, null()), else_=pred.sql), False)


def by_datalogic(condition: Any) -> Pred:
    """A condition over constants only, decided by datalogic itself (NULL if it raises)."""
    try:
        return always(truthy(evaluate(condition, {})))
    except datalogic_py.DataLogicError:
        return UNDECIDED


# -- leaves per JSON type ---------------------------------------------------------------------------


def compare(b: Branch, op: str, other: Any, spelled: Callable[[Any], Any]) -> Pred:
    """`b`'s value `op` the literal `other`, the value on the left (`spelled(value)` is the
    comparison as the condition wrote it, for datalogic to evaluate on constants)."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, spelled)
    if b.kind == "undecided" or b.sql is None:
        return UNDECIDED
    strict = op in ("===", "!==")
    if b.kind in ("array", "object"):
        return always(op == "!==") if strict else UNDECIDED
    if b.kind == "number":
        if strict:
            if not is_number(other):
                return always(op == "!==")
            return decided(_sql_compare(b.sql, op, other))
        number = _as_number(other)
        return UNDECIDED if number is None else decided(_sql_compare(b.sql, op, _bind_number(number)))
    # string
    if isinstance(other, str):
        if op in ("<", "<=", ">", ">="):
            # datalogic orders text by code point, as PostgreSQL's "C" collation does.
            return decided(_sql_compare(b.sql.collate("C"), op, other))
        return decided(_sql_compare(b.sql, op, other))
    if strict:
        return always(op == "!==")
    if other is None and op in ("==", "!="):
        return decided(_sql_compare(b.sql, op, ""))  # datalogic: only "" equals null
    if isinstance(other, bool):
        return UNDECIDED  # "true" == true holds, "1" == true does not: left to datalogic
    number = 0.0 if other is None else float(other)
    as_number = case((b.sql.regexp_match(DECIMAL_TEXT), cast(b.sql, Float)), else_=null())
    return Pred(_sql_compare(as_number, op, number), False)


def one_of(b: Branch, values: list[Any]) -> Pred:
    """`{"in": [value, [literals]]}`: strict membership (1.0 is in [1], true is not)."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, lambda v: {"in": [v, values]})
    if b.sql is None or b.kind not in ("string", "number"):
        return UNDECIDED
    if b.kind == "number":
        numbers = [float(v) for v in values if is_number(v)]
        if any(not exact_number(v) for v in values if is_number(v)):
            return UNDECIDED
        return decided(b.sql.in_(numbers)) if numbers else FALSE
    texts = [v for v in values if isinstance(v, str)]
    return decided(b.sql.in_(texts)) if texts else FALSE


def contains(b: Branch, needle: str) -> Pred:
    """`{"in": ["text", value]}`: an element of a list, or a substring of text."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, lambda v: {"in": [needle, v]})
    if b.kind in ("number", "object"):
        return FALSE  # datalogic looks inside text and lists only
    if b.sql is None or b.kind not in ("string", "array"):
        return UNDECIDED
    if b.kind == "array":
        # Top-level element equality, exactly: '[["a"]]' does not contain '["a"]'.
        return decided(b.sql.op("@>")(cast(literal(json.dumps([needle])), JSONB)))
    if needle == "":
        return TRUE
    return decided(func.strpos(b.sql, literal(needle, String)) > 0)


def _boolean_leaf(sql: ColumnElement[Any], condition: Callable[[bool], Any]) -> Pred:
    when_true, when_false = by_datalogic(condition(True)), by_datalogic(condition(False))
    if when_true is when_false:
        return when_true
    if when_true.const is True and when_false.const is False:
        return decided(sql)
    if when_true.const is False and when_false.const is True:
        return decided(not_(sql))
    return Pred(case((sql, when_true.sql), else_=when_false.sql), False)


def _sql_compare(left: ColumnElement[Any], op: str, right: Any) -> ColumnElement[bool]:
    compared: ColumnElement[bool] = _SQL_OPERATORS[op](left, right)
    return compared


def _as_number(value: Any) -> float | None:
    """What a literal is to datalogic next to a number: null is 0, booleans 1/0, decimal text."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _DECIMAL.match(value):
        return float(value)
    return None


def _bind_number(number: float) -> int | float:
    """Whole numbers bind as integers: an event count then compares as bigint, not numeric."""
    return int(number) if number.is_integer() else number


def is_literal(node: Any) -> bool:
    return node is None or isinstance(node, bool | int | float | str)


def is_number(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool)


def exact_number(node: Any) -> bool:
    return math.isfinite(node) and abs(node) < EXACT_INTEGER


def is_var(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and "var" in node


def escape_pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# -- entry points -----------------------------------------------------------------------------------
