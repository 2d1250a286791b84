"""Segment preview: a rule's JSON Logic condition as SQL over accounts, or evaluated in batches.

`translate` compiles the vocabulary rules use most (account columns and traits, event counts, plan
state; and/or/!/!!, comparisons, `in`) to a SQLAlchemy predicate on PostgreSQL. It must never
change the answer `evaluate()` gives, and datalogic's coercions are subtle (`null == 0` holds,
`"" == 0` raises, `"05" == 5` holds, `"05" < "5"` compares text), so every leaf is built per JSON
type of the value it reads:

- types whose result is certain (a number against a number literal, text against a text
  literal, null or a boolean, whose handful of values are evaluated by datalogic itself at
  translation time) become exact SQL;
- the rest (a string like "1e3" or "abc" compared with a number, arrays compared with scalars,
  anything that would raise) becomes SQL NULL: "SQL cannot decide this account".

NULL is carried through and/or/! with JsonLogic's left-to-right short-circuit (not SQL's
three-valued AND), so an account is counted by SQL only when its result is certain, and the few
undecided accounts are evaluated in Python with the facts rules read. Conditions outside the
vocabulary (survey answers, outcomes, arithmetic, ...) are not translated at all: the preview
evaluates every account in batches and says why.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import datalogic_py
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Numeric,
    String,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.expression import FromClause, Subquery

from engine.accounts import Account
from engine.events.models import Event
from engine.plans.models import PlanStatus, SuccessPlan
from engine.rules.facts import EVENT_WINDOWS, load_facts
from engine.rules.logic import (
    compile_condition,
    evaluate,
    facts_handle,
    truthy,
    truthy_evaluator,
    validate_condition,
)

BATCH_SIZE = 2000
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
COLUMNS = ("external_id", "segment", "lifecycle_stage")
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!=", "===": "===", "!==": "!=="}
_MISSING = object()


@dataclass(frozen=True)
class Translation:
    """A condition as SQL over `accounts`, or why it could not be translated.

    `where` holds for exactly the accounts the condition certainly matches; `undecided` (None when
    SQL decides every account) selects the accounts whose data SQL cannot judge exactly, to be
    evaluated with `load_facts` + `evaluate`. `pointer` is the JSON pointer of the first part of
    the condition that has no translation.
    """

    where: ColumnElement[bool] | None
    undecided: ColumnElement[bool] | None = None
    reason: str | None = None
    pointer: str | None = None
    # `accounts` outer-joined to what the condition reads (event counts, the active plan): select
    # from it so `where` and `state` see those columns. At most one row per account.
    from_: FromClause = field(default_factory=lambda: Account.__table__)
    state: ColumnElement[Any] | None = None  # TRUE, FALSE or NULL (undecided) per account

    @property
    def translated(self) -> bool:
        return self.where is not None


@dataclass(frozen=True)
class Preview:
    """How many accounts a condition matches now, and how that was found out."""

    count: int
    total: int
    method: str  # "sql" or "batched"
    reason: str | None
    sample: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    evaluated: int = 0  # accounts whose condition ran in Python (all of them when batched)
    complete: bool = True  # False when `fallback_limit` stopped the batches early


class Untranslatable(Exception):
    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(f"{pointer or '/'}: {reason}")
        self.pointer = pointer
        self.reason = reason


@dataclass(frozen=True, eq=False)
class _Pred:
    """A tri-state predicate: TRUE, FALSE, or NULL for "SQL cannot decide this account".

    `exact` means it is never NULL; `const` is its value when it is the same for every account.
    """

    sql: ColumnElement[Any]
    exact: bool
    const: bool | None = None


_TRUE = _Pred(true(), True, True)
_FALSE = _Pred(false(), True, False)
_UNDECIDED = _Pred(cast(null(), Boolean), False)  # typed: a CASE of NULLs alone would be text


def _const(value: bool) -> _Pred:
    return _TRUE if value else _FALSE


def _exact(sql: ColumnElement[Any]) -> _Pred:
    return _Pred(sql, True)


def _not(p: _Pred) -> _Pred:
    if p.const is not None:
        return _const(not p.const)
    if p is _UNDECIDED:
        return p
    return _Pred(not_(p.sql), p.exact)


def _and(a: _Pred, b: _Pred) -> _Pred:
    """JsonLogic `and` in a boolean context: `a` falsy stops before `b` is evaluated."""
    if a.const is not None:
        return b if a.const else _FALSE
    if a.exact:
        # a decided: FALSE AND x is FALSE, TRUE AND x is x, exactly the short-circuit.
        return _FALSE if b.const is False else _Pred(a.sql if b.const else and_(a.sql, b.sql), b.exact)
    # a undecided may mean "raises", which b being false must not hide: SQL's AND would.
    return _Pred(case((a.sql, b.sql), (not_(a.sql), false()), else_=null()), False)


def _or(a: _Pred, b: _Pred) -> _Pred:
    if a.const is not None:
        return _TRUE if a.const else b
    if a.exact:
        return _TRUE if b.const is True else _Pred(a.sql if b.const is False else or_(a.sql, b.sql), b.exact)
    return _Pred(case((a.sql, true()), (not_(a.sql), b.sql), else_=null()), False)


# -- values: what a `var` reads, per JSON type ----------------------------------------------------


@dataclass(frozen=True)
class _Branch:
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
class _Value:
    branches: list[_Branch]
    selector: ColumnElement[Any] | None = None  # CASE selector WHEN key ...: computed once per row


Leaf = Callable[[_Branch], _Pred]


def _per_branch(value: _Value, leaf: Leaf, constant: Callable[[Any], _Pred]) -> _Pred:
    branches = value.branches
    preds: list[tuple[_Branch, _Pred]] = []
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
        return _Pred(case(keyed, value=value.selector, else_=last.sql), exact)
    whens = [(b.when, p.sql) for b, p in preds[:-1] if b.when is not None]
    return _Pred(case(*whens, else_=last.sql), exact)


def _guarded(b: _Branch, pred: _Pred) -> _Pred:
    """Undecided where the branch's guard holds (once per branch, however many comparisons)."""
    if b.guard is None or pred.const is not None or pred is _UNDECIDED:
        return pred
    return _Pred(case((b.guard, null()), else_=pred.sql), False)


def _evaluated(condition: Any) -> _Pred:
    """A condition over constants only, decided by datalogic itself (NULL if it raises)."""
    try:
        return _const(truthy(evaluate(condition, {})))
    except datalogic_py.DataLogicError:
        return _UNDECIDED


class _Translator:
    def __init__(self, now: dt.datetime, up_to_account: int | None = None) -> None:
        self.now = now
        self.up_to_account = up_to_account
        self.joins: dict[str, tuple[FromClause, ColumnElement[bool]]] = {}

    # -- boolean context -------------------------------------------------------------------------

    def truth(self, node: Any, pointer: str) -> _Pred:
        if _is_literal(node):
            return _const(truthy(node))
        if not isinstance(node, dict) or len(node) != 1:
            raise Untranslatable(pointer, "only operators and literals can be translated here")
        ((op, args),) = node.items()
        here = f"{pointer}/{_escape(op)}"
        if op in ("and", "or"):
            if not isinstance(args, list) or not args:
                raise Untranslatable(here, f"{op!r} needs a list of conditions")
            parts = [self.truth(arg, f"{here}/{i}") for i, arg in enumerate(args)]
            combine = _and if op == "and" else _or
            result = parts[-1]
            for part in reversed(parts[:-1]):
                result = combine(part, result)
            return result
        if op in ("!", "!!"):
            if isinstance(args, list):
                if len(args) != 1:
                    raise Untranslatable(here, f"{op!r} with {len(args)} arguments")
                inner = self.truth(args[0], f"{here}/0")
            else:
                inner = self.truth(args, here)
            return _not(inner) if op == "!" else inner
        if op == "var":
            return self.var_truth(node, pointer)
        if op in COMPARISONS:
            return self.comparison(op, args, here)
        if op == "in":
            return self.membership(args, here)
        raise Untranslatable(here, f"operator {op!r} has no SQL translation")

    def var_truth(self, node: dict[str, Any], pointer: str) -> _Pred:
        def leaf(b: _Branch) -> _Pred:
            if b.sql is None:
                return _UNDECIDED
            if b.kind == "boolean":
                return _exact(b.sql)
            if b.kind == "number":
                return _exact(b.sql != 0)
            if b.kind == "string":
                return _exact(b.sql != "")
            if b.kind == "array":
                return _exact(func.jsonb_array_length(b.sql) > 0)
            return _exact(b.sql != cast(literal("{}"), JSONB))

        return _per_branch(self.value(node, pointer), leaf, lambda v: _const(truthy(v)))

    # -- comparisons -----------------------------------------------------------------------------

    def comparison(self, op: str, args: Any, pointer: str) -> _Pred:
        if not isinstance(args, list) or len(args) not in (2, 3):
            raise Untranslatable(pointer, f"{op!r} needs two arguments (or three for between)")
        variables = [i for i, a in enumerate(args) if _is_var(a)]
        for i, arg in enumerate(args):
            if i not in variables and not _is_literal(arg):
                raise Untranslatable(f"{pointer}/{i}", "only fields and literal values can be compared")
        if not variables:
            return _evaluated({op: args})
        if len(variables) > 1:
            raise Untranslatable(f"{pointer}/{variables[1]}", "comparing two fields is not translated")
        (at,) = variables
        if len(args) == 3:
            low, high = args[0], args[2]
            if (
                op not in ("<", "<=")
                or at != 1
                or not all(_is_number(n) and _exact_number(n) for n in (low, high))
            ):
                raise Untranslatable(pointer, "between needs the form [number, field, number]")
            branches = self.value(args[1], f"{pointer}/1")
            return _per_branch(
                branches,
                lambda b: _and(
                    _compare(b, _FLIPPED[op], low, lambda v: {op: [low, v]}),
                    _compare(b, op, high, lambda v: {op: [v, high]}),
                ),
                lambda v: _evaluated({op: [low, v, high]}),
            )
        other = args[1 - at]
        oriented = op if at == 0 else _FLIPPED[op]
        if _is_number(other) and not _exact_number(other):
            raise Untranslatable(f"{pointer}/{1 - at}", "numbers beyond 2**53 are not translated")
        branches = self.value(args[at], f"{pointer}/{at}")

        def spelled(v: Any) -> Any:
            return {op: [v, other] if at == 0 else [other, v]}

        return _per_branch(
            branches, lambda b: _compare(b, oriented, other, spelled), lambda v: _evaluated(spelled(v))
        )

    # -- membership ------------------------------------------------------------------------------

    def membership(self, args: Any, pointer: str) -> _Pred:
        if not isinstance(args, list) or len(args) != 2:
            raise Untranslatable(pointer, "'in' needs two arguments")
        needle, haystack = args
        if _is_var(needle) and isinstance(haystack, list):
            if not all(_is_literal(v) for v in haystack):
                raise Untranslatable(f"{pointer}/1", "the list must hold literal values only")
            branches = self.value(needle, f"{pointer}/0")
            return _per_branch(
                branches,
                lambda b: _one_of(b, haystack),
                lambda v: _evaluated({"in": [v, haystack]}),
            )
        if isinstance(needle, str) and _is_var(haystack):
            branches = self.value(haystack, f"{pointer}/1")
            return _per_branch(
                branches,
                lambda b: _contains(b, needle),
                lambda v: _evaluated({"in": [needle, v]}),
            )
        if _is_literal(needle) and (_is_literal(haystack) or isinstance(haystack, list)):
            if isinstance(haystack, list) and not all(_is_literal(v) for v in haystack):
                raise Untranslatable(f"{pointer}/1", "the list must hold literal values only")
            return _evaluated({"in": args})
        raise Untranslatable(
            pointer, "'in' is translated for a field in a list of literals, or a text literal in a field"
        )

    # -- fields ----------------------------------------------------------------------------------

    def value(self, node: Any, pointer: str) -> _Value:
        args = node["var"]
        here = f"{pointer}/var"
        default: Any = _MISSING
        if isinstance(args, list):
            if len(args) not in (1, 2):
                raise Untranslatable(here, "var takes a path and an optional default")
            if len(args) == 2:
                default = args[1]
                if not _is_literal(default):
                    raise Untranslatable(f"{here}/1", "only a literal default is translated")
            path = args[0]
        else:
            path = args
        if not isinstance(path, str):
            raise Untranslatable(here, "only a dotted text path is translated")
        missing = None if default is _MISSING else default
        parts = path.split(".")
        if parts[0] == "account":
            return self.account_field(parts[1:], missing, here)
        if parts[0] == "events" and len(parts) == 3:
            return self.event_count(parts[1], parts[2], missing, here)
        if parts[0] == "plan" and len(parts) == 2:
            return self.plan_field(parts[1], here)
        if parts[0] in ("outcomes", "objectives", "answers"):
            raise Untranslatable(here, f"{parts[0]} come from survey answers, which SQL does not read")
        raise Untranslatable(here, f"field {path!r} has no SQL translation")

    def account_field(self, parts: list[str], missing: Any, pointer: str) -> _Value:
        if len(parts) == 1 and parts[0] in COLUMNS:
            return _Value([_Branch("string", sql=getattr(Account, parts[0]))])
        if parts == ["plan_tier"]:
            tier = Account.plan_tier.expression
            return _Value([_Branch("const", tier.is_(None)), _Branch("string", sql=tier)])
        if len(parts) == 2 and parts[0] == "traits" and parts[1]:
            return _trait(parts[1], missing)
        raise Untranslatable(pointer, f"account field {'.'.join(parts)!r} has no SQL translation")

    def event_count(self, name: str, window: str, missing: Any, pointer: str) -> _Value:
        if window not in dict(EVENT_WINDOWS):
            windows = ", ".join(w for w, _ in EVENT_WINDOWS)
            raise Untranslatable(pointer, f"event counts are {windows}, not {window!r}")
        counts = self._event_counts(name)
        return _Value(
            [
                # No event of that name in the longest window: the facts have no `events.<name>`.
                _Branch("const", counts.c.account_id.is_(None), value=missing, zero_like=True),
                _Branch("number", sql=func.coalesce(counts.c[window], 0)),
            ]
        )

    def _event_counts(self, name: str) -> Subquery:
        """Per account, the event's counts in each window, as load_facts counts them: one
        aggregate joined to the accounts (a correlated count per account is 1M index probes)."""
        key = f"events:{name}"
        if key not in self.joins:
            longest = max(d for _, d in EVENT_WINDOWS)
            counts = (
                select(
                    Event.account_id,
                    *[
                        func.count().filter(Event.occurred_at >= self.now - dt.timedelta(days=d)).label(label)
                        for label, d in EVENT_WINDOWS
                    ],
                )
                .where(
                    Event.name == name,
                    Event.occurred_at >= self.now - dt.timedelta(days=longest),
                    Event.occurred_at <= self.now,
                    true() if self.up_to_account is None else Event.account_id <= self.up_to_account,
                )
                .group_by(Event.account_id)
                .subquery(f"event_counts_{len(self.joins)}")
            )
            self.joins[key] = (counts, counts.c.account_id == Account.id)
        found = self.joins[key][0]
        assert isinstance(found, Subquery)
        return found

    def plan_field(self, name: str, pointer: str) -> _Value:
        if name not in ("exists", "status", "template"):
            raise Untranslatable(pointer, f"plan field {name!r} has no SQL translation")
        if "plan" not in self.joins:
            # success_plans.account_id is unique: the join never repeats an account.
            active = SuccessPlan.__table__.alias("active_plan")
            on = and_(active.c.account_id == Account.id, active.c.status == str(PlanStatus.ACTIVE))
            self.joins["plan"] = (active, on)
        plan = self.joins["plan"][0]
        has_plan = plan.c.id.is_not(None)
        if name == "exists":
            return _Value([_Branch("boolean", sql=has_plan)])
        if name == "status":
            return _Value(
                [_Branch("const", has_plan, value=str(PlanStatus.ACTIVE)), _Branch("const", value=None)]
            )
        template = plan.c.template_key
        return _Value([_Branch("const", template.is_(None)), _Branch("string", sql=template)])


def _trait(key: str, missing: Any) -> _Value:
    traits = type_coerce(Account.traits, JSONB)
    node = traits.op("->", return_type=JSONB)(literal(key, String))
    text_value = traits.op("->>", return_type=Text)(literal(key, String))
    # CASE jsonb_typeof(...) WHEN ...: the type is computed once and the casts only ever see
    # values of their type; a missing key has no type and takes the last branch.
    return _Value(
        [
            _Branch("const", key="null", value=None),
            _Branch("string", key="string", sql=text_value),
            _Branch(
                "number",
                key="number",
                sql=cast(text_value, Float),
                guard=func.abs(cast(text_value, Numeric)) >= EXACT_INTEGER,
            ),
            _Branch("boolean", key="boolean", sql=cast(text_value, Boolean)),
            _Branch("array", key="array", sql=node),
            _Branch("object", key="object", sql=node),
            _Branch("const", value=missing),
        ],
        selector=func.jsonb_typeof(node),
    )


# -- leaves per JSON type ---------------------------------------------------------------------------


def _compare(b: _Branch, op: str, other: Any, spelled: Callable[[Any], Any]) -> _Pred:
    """`b`'s value `op` the literal `other`, the value on the left (`spelled(value)` is the
    comparison as the condition wrote it, for datalogic to evaluate on constants)."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, spelled)
    if b.kind == "undecided" or b.sql is None:
        return _UNDECIDED
    strict = op in ("===", "!==")
    if b.kind in ("array", "object"):
        return _const(op == "!==") if strict else _UNDECIDED
    if b.kind == "number":
        if strict:
            if not _is_number(other):
                return _const(op == "!==")
            return _exact(_sql_compare(b.sql, op, other))
        number = _as_number(other)
        return _UNDECIDED if number is None else _exact(_sql_compare(b.sql, op, _bind_number(number)))
    # string
    if isinstance(other, str):
        if op in ("<", "<=", ">", ">="):
            # datalogic orders text by code point, as PostgreSQL's "C" collation does.
            return _exact(_sql_compare(b.sql.collate("C"), op, other))
        return _exact(_sql_compare(b.sql, op, other))
    if strict:
        return _const(op == "!==")
    if other is None and op in ("==", "!="):
        return _exact(_sql_compare(b.sql, op, ""))  # datalogic: only "" equals null
    if isinstance(other, bool):
        return _UNDECIDED  # "true" == true holds, "1" == true does not: left to datalogic
    number = 0.0 if other is None else float(other)
    as_number = case((b.sql.regexp_match(DECIMAL_TEXT), cast(b.sql, Float)), else_=null())
    return _Pred(_sql_compare(as_number, op, number), False)


def _one_of(b: _Branch, values: list[Any]) -> _Pred:
    """`{"in": [value, [literals]]}`: strict membership (1.0 is in [1], true is not)."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, lambda v: {"in": [v, values]})
    if b.sql is None or b.kind not in ("string", "number"):
        return _UNDECIDED
    if b.kind == "number":
        numbers = [float(v) for v in values if _is_number(v)]
        if any(not _exact_number(v) for v in values if _is_number(v)):
            return _UNDECIDED
        return _exact(b.sql.in_(numbers)) if numbers else _FALSE
    texts = [v for v in values if isinstance(v, str)]
    return _exact(b.sql.in_(texts)) if texts else _FALSE


def _contains(b: _Branch, needle: str) -> _Pred:
    """`{"in": ["text", value]}`: an element of a list, or a substring of text."""
    if b.kind == "boolean":
        assert b.sql is not None
        return _boolean_leaf(b.sql, lambda v: {"in": [needle, v]})
    if b.kind in ("number", "object"):
        return _FALSE  # datalogic looks inside text and lists only
    if b.sql is None or b.kind not in ("string", "array"):
        return _UNDECIDED
    if b.kind == "array":
        # Top-level element equality, exactly: '[["a"]]' does not contain '["a"]'.
        return _exact(b.sql.op("@>")(cast(literal(json.dumps([needle])), JSONB)))
    if needle == "":
        return _TRUE
    return _exact(func.strpos(b.sql, literal(needle, String)) > 0)


def _boolean_leaf(sql: ColumnElement[Any], condition: Callable[[bool], Any]) -> _Pred:
    when_true, when_false = _evaluated(condition(True)), _evaluated(condition(False))
    if when_true is when_false:
        return when_true
    if when_true.const is True and when_false.const is False:
        return _exact(sql)
    if when_true.const is False and when_false.const is True:
        return _exact(not_(sql))
    return _Pred(case((sql, when_true.sql), else_=when_false.sql), False)


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


def _is_literal(node: Any) -> bool:
    return node is None or isinstance(node, bool | int | float | str)


def _is_number(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool)


def _exact_number(node: Any) -> bool:
    return math.isfinite(node) and abs(node) < EXACT_INTEGER


def _is_var(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and "var" in node


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# -- entry points -----------------------------------------------------------------------------------


def translate(
    condition: Any,
    *,
    now: dt.datetime | None = None,
    dialect: str = "postgresql",
    up_to_account: int | None = None,
) -> Translation:
    """`condition` as SQL over `accounts` (event windows end at `now`), or why it cannot be.

    Only PostgreSQL is translated: the demo's SQLite gets the batched evaluation instead.
    `up_to_account` limits the accounts to ids up to it (a sample need not aggregate them all).
    """
    if dialect != "postgresql":
        return Translation(None, reason=f"segment preview in SQL needs PostgreSQL, not {dialect}", pointer="")
    translator = _Translator(now or dt.datetime.now(dt.UTC), up_to_account)
    try:
        pred = translator.truth(condition, "")
    except Untranslatable as exc:
        return Translation(None, reason=exc.reason, pointer=exc.pointer)
    accounts: FromClause = Account.__table__
    for joined, on in translator.joins.values():
        accounts = accounts.outerjoin(joined, on)
    if up_to_account is not None:
        pred = _and(_exact(Account.id <= up_to_account), pred)
    if pred.exact:
        return Translation(pred.sql, from_=accounts, state=pred.sql)
    grouped = Grouping(pred.sql)  # `NOT CASE ... END IS TRUE` would bind IS before NOT
    return Translation(grouped.is_(True), undecided=grouped.is_(None), from_=accounts, state=pred.sql)


def preview(
    session: Session,
    condition: Any,
    *,
    now: dt.datetime,
    limit_sample: int = 10,
    fallback_limit: int | None = None,
) -> Preview:
    """How many accounts `condition` matches: one SQL count when it translates, else batches.

    Raises InvalidCondition for a condition that is not valid JSON Logic. `fallback_limit` caps
    the accounts the batched evaluation reads (the preview is then marked incomplete).
    """
    started = time.perf_counter()
    validate_condition(condition)
    bind = session.get_bind()
    translation = translate(condition, now=now, dialect=bind.dialect.name)
    if translation.where is None:
        where = f" at {translation.pointer}" if translation.pointer else ""
        reason = f"evaluated in batches: {translation.reason}{where}"
        return preview_in_batches(
            session,
            condition,
            now=now,
            reason=reason,
            limit_sample=limit_sample,
            fallback_limit=fallback_limit,
            started=started,
        )
    assert translation.state is not None
    # One pass, the condition computed once per account (OFFSET 0 keeps PostgreSQL from
    # inlining it into each count): how many are TRUE, and how many SQL left undecided.
    states = (
        select(cast(translation.state, Boolean).label("state"))
        .select_from(translation.from_)
        .offset(0)
        .subquery()
    )
    state = states.c.state
    total, count, unsure = session.execute(
        select(func.count(), func.count().filter(state.is_(True)), func.count().filter(state.is_(None)))
    ).one()
    sample = _first_matches(session, condition, now, limit_sample, share=count / max(total, 1))
    evaluated = 0
    if unsure:
        # The accounts SQL could not judge exactly: evaluated in Python with the facts rules read.
        assert translation.undecided is not None
        ids = list(
            session.scalars(
                select(Account.id)
                .select_from(translation.from_)
                .where(translation.undecided)
                .order_by(Account.id)
            )
        )
        extra, extra_sample = _evaluate_ids(session, condition, ids, now, limit_sample)
        count += extra
        evaluated = len(ids)
        sample = sorted(sample + extra_sample)[:limit_sample]
    return Preview(
        count=int(count),
        total=int(total),
        method="sql",
        reason=None,
        sample=[external_id for _, external_id in sample],
        elapsed_ms=_ms_since(started),
        evaluated=evaluated,
    )


def preview_in_batches(
    session: Session,
    condition: Any,
    *,
    now: dt.datetime,
    reason: str = "evaluated in batches",
    limit_sample: int = 10,
    fallback_limit: int | None = None,
    started: float | None = None,
) -> Preview:
    """Evaluate `condition` on every account's facts, `BATCH_SIZE` accounts at a time, by id."""
    started = time.perf_counter() if started is None else started
    total = int(session.scalar(select(func.count()).select_from(Account)) or 0)
    count, evaluated, last_id = 0, 0, 0
    sample: list[str] = []
    while fallback_limit is None or evaluated < fallback_limit:
        size = BATCH_SIZE if fallback_limit is None else min(BATCH_SIZE, fallback_limit - evaluated)
        ids = list(
            session.scalars(select(Account.id).where(Account.id > last_id).order_by(Account.id).limit(size))
        )
        if not ids:
            break
        matched, matched_sample = _evaluate_ids(session, condition, ids, now, limit_sample - len(sample))
        count += matched
        sample += [external_id for _, external_id in matched_sample]
        evaluated += len(ids)
        last_id = ids[-1]
    complete = evaluated >= total
    if not complete:
        reason = f"{reason}; stopped after {evaluated:,} of {total:,} accounts"
    return Preview(
        count=count,
        total=total,
        method="batched",
        reason=reason,
        sample=sample,
        elapsed_ms=_ms_since(started),
        evaluated=evaluated,
        complete=complete,
    )


def _first_matches(
    session: Session, condition: Any, now: dt.datetime, limit: int, share: float
) -> list[tuple[int, str]]:
    """The first `limit` accounts by id SQL says match, reading only a prefix of the accounts
    big enough to hold them at the matching `share` (widened while it falls short)."""
    if not limit or not share:
        return []
    span = max(1000, int(4 * limit / share))
    while True:
        bound = session.scalar(select(Account.id).order_by(Account.id).offset(span).limit(1))
        translation = translate(condition, now=now, up_to_account=bound)
        assert translation.where is not None
        found = [
            (row.id, row.external_id)
            for row in session.execute(
                select(Account.id, Account.external_id)
                .select_from(translation.from_)
                .where(translation.where)
                .order_by(Account.id)
                .limit(limit)
            )
        ]
        if len(found) >= limit or bound is None:
            return found
        span *= 8


def _evaluate_ids(
    session: Session, condition: Any, ids: Sequence[int], now: dt.datetime, limit_sample: int
) -> tuple[int, list[tuple[int, str]]]:
    """How many of these accounts match (a condition that raises does not), and the first ones."""
    rule = compile_condition(condition)
    holds = truthy_evaluator()
    count = 0
    sample: list[tuple[int, str]] = []
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        # Transient copies, so a preview never fills (or detaches from) the caller's session.
        accounts = [
            Account(
                id=row.id,
                external_id=row.external_id,
                segment=row.segment,
                plan_tier=row.plan_tier,
                lifecycle_stage=row.lifecycle_stage,
                traits=row.traits,
            )
            for row in session.execute(
                select(
                    Account.id,
                    Account.external_id,
                    Account.segment,
                    Account.plan_tier,
                    Account.lifecycle_stage,
                    Account.traits,
                )
                .where(Account.id.in_(chunk))
                .order_by(Account.id)
            )
        ]
        facts = load_facts(session, accounts, now)
        for account in accounts:
            try:
                matched = holds(rule, facts_handle(facts[account.id]))
            except datalogic_py.DataLogicError:
                matched = False  # as decide() treats it: a rule that fails to evaluate does not match
            if matched:
                count += 1
                if len(sample) < limit_sample:
                    sample.append((account.id, account.external_id))
    return count, sample


def _ms_since(started: float) -> float:
    return 1000 * (time.perf_counter() - started)
