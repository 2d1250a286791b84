"""A rule's JSON Logic condition as one SQL predicate over accounts (see engine.rules.sql)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Numeric,
    String,
    Text,
    and_,
    cast,
    func,
    literal,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.expression import FromClause, Subquery

from engine.accounts import Account
from engine.events.models import Event
from engine.plans.models import PlanStatus, SuccessPlan
from engine.rules.facts import EVENT_WINDOWS
from engine.rules.logic import truthy
from engine.rules.sql_predicates import (
    COMPARISONS,
    EXACT_INTEGER,
    FLIPPED,
    UNDECIDED,
    Branch,
    Pred,
    Value,
    always,
    by_datalogic,
    compare,
    conjunction,
    contains,
    decided,
    disjunction,
    escape_pointer,
    exact_number,
    is_literal,
    is_number,
    is_var,
    negation,
    one_of,
    per_branch,
)

COLUMNS = ("external_id", "segment", "lifecycle_stage")
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


class Untranslatable(Exception):
    def __init__(self, pointer: str, reason: str) -> None:
        super().__init__(f"{pointer or '/'}: {reason}")
        self.pointer = pointer
        self.reason = reason


class _Translator:
    def __init__(self, now: dt.datetime, up_to_account: int | None = None) -> None:
        self.now = now
        self.up_to_account = up_to_account
        self.joins: dict[str, tuple[FromClause, ColumnElement[bool]]] = {}

    # -- boolean context -------------------------------------------------------------------------

    def truth(self, node: Any, pointer: str) -> Pred:
        if is_literal(node):
            return always(truthy(node))
        if not isinstance(node, dict) or len(node) != 1:
            raise Untranslatable(pointer, "only operators and literals can be translated here")
        ((op, args),) = node.items()
        here = f"{pointer}/{escape_pointer(op)}"
        if op in ("and", "or"):
            if not isinstance(args, list) or not args:
                raise Untranslatable(here, f"{op!r} needs a list of conditions")
            parts = [self.truth(arg, f"{here}/{i}") for i, arg in enumerate(args)]
            combine = conjunction if op == "and" else disjunction
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
            return negation(inner) if op == "!" else inner
        if op == "var":
            return self.var_truth(node, pointer)
        if op in COMPARISONS:
            return self.comparison(op, args, here)
        if op == "in":
            return self.membership(args, here)
        raise Untranslatable(here, f"operator {op!r} has no SQL translation")

    def var_truth(self, node: dict[str, Any], pointer: str) -> Pred:
        def leaf(b: Branch) -> Pred:
            if b.sql is None:
                return UNDECIDED
            if b.kind == "boolean":
                return decided(b.sql)
            if b.kind == "number":
                return decided(b.sql != 0)
            if b.kind == "string":
                return decided(b.sql != "")
            if b.kind == "array":
                return decided(func.jsonb_array_length(b.sql) > 0)
            return decided(b.sql != cast(literal("{}"), JSONB))

        return per_branch(self.value(node, pointer), leaf, lambda v: always(truthy(v)))

    # -- comparisons -----------------------------------------------------------------------------

    def comparison(self, op: str, args: Any, pointer: str) -> Pred:
        if not isinstance(args, list) or len(args) not in (2, 3):
            raise Untranslatable(pointer, f"{op!r} needs two arguments (or three for between)")
        variables = [i for i, a in enumerate(args) if is_var(a)]
        for i, arg in enumerate(args):
            if i not in variables and not is_literal(arg):
                raise Untranslatable(f"{pointer}/{i}", "only fields and literal values can be compared")
        if not variables:
            return by_datalogic({op: args})
        if len(variables) > 1:
            raise Untranslatable(f"{pointer}/{variables[1]}", "comparing two fields is not translated")
        (at,) = variables
        if len(args) == 3:
            low, high = args[0], args[2]
            if (
                op not in ("<", "<=")
                or at != 1
                or not all(is_number(n) and exact_number(n) for n in (low, high))
            ):
                raise Untranslatable(pointer, "between needs the form [number, field, number]")
            branches = self.value(args[1], f"{pointer}/1")
            return per_branch(
                branches,
                lambda b: conjunction(
                    compare(b, FLIPPED[op], low, lambda v: {op: [low, v]}),
                    compare(b, op, high, lambda v: {op: [v, high]}),
                ),
                lambda v: by_datalogic({op: [low, v, high]}),
            )
        other = args[1 - at]
        oriented = op if at == 0 else FLIPPED[op]
        if is_number(other) and not exact_number(other):
            raise Untranslatable(f"{pointer}/{1 - at}", "numbers beyond 2**53 are not translated")
        branches = self.value(args[at], f"{pointer}/{at}")

        def spelled(v: Any) -> Any:
            return {op: [v, other] if at == 0 else [other, v]}

        return per_branch(
            branches, lambda b: compare(b, oriented, other, spelled), lambda v: by_datalogic(spelled(v))
        )

    # -- membership ------------------------------------------------------------------------------

    def membership(self, args: Any, pointer: str) -> Pred:
        if not isinstance(args, list) or len(args) != 2:
            raise Untranslatable(pointer, "'in' needs two arguments")
        needle, haystack = args
        if is_var(needle) and isinstance(haystack, list):
            if not all(is_literal(v) for v in haystack):
                raise Untranslatable(f"{pointer}/1", "the list must hold literal values only")
            branches = self.value(needle, f"{pointer}/0")
            return per_branch(
                branches,
                lambda b: one_of(b, haystack),
                lambda v: by_datalogic({"in": [v, haystack]}),
            )
        if isinstance(needle, str) and is_var(haystack):
            branches = self.value(haystack, f"{pointer}/1")
            return per_branch(
                branches,
                lambda b: contains(b, needle),
                lambda v: by_datalogic({"in": [needle, v]}),
            )
        if is_literal(needle) and (is_literal(haystack) or isinstance(haystack, list)):
            if isinstance(haystack, list) and not all(is_literal(v) for v in haystack):
                raise Untranslatable(f"{pointer}/1", "the list must hold literal values only")
            return by_datalogic({"in": args})
        raise Untranslatable(
            pointer, "'in' is translated for a field in a list of literals, or a text literal in a field"
        )

    # -- fields ----------------------------------------------------------------------------------

    def value(self, node: Any, pointer: str) -> Value:
        args = node["var"]
        here = f"{pointer}/var"
        default: Any = _MISSING
        if isinstance(args, list):
            if len(args) not in (1, 2):
                raise Untranslatable(here, "var takes a path and an optional default")
            if len(args) == 2:
                default = args[1]
                if not is_literal(default):
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

    def account_field(self, parts: list[str], missing: Any, pointer: str) -> Value:
        if len(parts) == 1 and parts[0] in COLUMNS:
            return Value([Branch("string", sql=getattr(Account, parts[0]))])
        if parts == ["plan_tier"]:
            tier = Account.plan_tier.expression
            return Value([Branch("const", tier.is_(None)), Branch("string", sql=tier)])
        if len(parts) == 2 and parts[0] == "traits" and parts[1]:
            return _trait(parts[1], missing)
        raise Untranslatable(pointer, f"account field {'.'.join(parts)!r} has no SQL translation")

    def event_count(self, name: str, window: str, missing: Any, pointer: str) -> Value:
        if window not in dict(EVENT_WINDOWS):
            windows = ", ".join(w for w, _ in EVENT_WINDOWS)
            raise Untranslatable(pointer, f"event counts are {windows}, not {window!r}")
        counts = self._event_counts(name)
        return Value(
            [
                # No event of that name in the longest window: the facts have no `events.<name>`.
                Branch("const", counts.c.account_id.is_(None), value=missing, zero_like=True),
                Branch("number", sql=func.coalesce(counts.c[window], 0)),
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

    def plan_field(self, name: str, pointer: str) -> Value:
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
            return Value([Branch("boolean", sql=has_plan)])
        if name == "status":
            return Value(
                [Branch("const", has_plan, value=str(PlanStatus.ACTIVE)), Branch("const", value=None)]
            )
        template = plan.c.template_key
        return Value([Branch("const", template.is_(None)), Branch("string", sql=template)])


def _trait(key: str, missing: Any) -> Value:
    traits = type_coerce(Account.traits, JSONB)
    node = traits.op("->", return_type=JSONB)(literal(key, String))
    text_value = traits.op("->>", return_type=Text)(literal(key, String))
    # CASE jsonb_typeof(...) WHEN ...: the type is computed once and the casts only ever see
    # values of their type; a missing key has no type and takes the last branch.
    return Value(
        [
            Branch("const", key="null", value=None),
            Branch("string", key="string", sql=text_value),
            Branch(
                "number",
                key="number",
                sql=cast(text_value, Float),
                guard=func.abs(cast(text_value, Numeric)) >= EXACT_INTEGER,
            ),
            Branch("boolean", key="boolean", sql=cast(text_value, Boolean)),
            Branch("array", key="array", sql=node),
            Branch("object", key="object", sql=node),
            Branch("const", value=missing),
        ],
        selector=func.jsonb_typeof(node),
    )


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
        pred = conjunction(decided(Account.id <= up_to_account), pred)
    if pred.exact:
        return Translation(pred.sql, from_=accounts, state=pred.sql)
    grouped = Grouping(pred.sql)  # `NOT CASE ... END IS TRUE` would bind IS before NOT
    return Translation(grouped.is_(True), undecided=grouped.is_(None), from_=accounts, state=pred.sql)
