"""The field catalogue: every fact a rule may read, typed, and the save-time check of a condition
against it (unknown fields with a suggestion, type mismatches decidable without data).

Paths match the facts document `engine.rules.facts.build_facts` produces. Survey answers live in the
surveys package, above engine, which contributes its fields through `register_field_provider`
(docs/adr/0002).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import refcache
from engine.accounts import TraitDefinition, TraitType
from engine.events.models import EventType
from engine.library import Objective, Outcome, library
from engine.plans.models import PlanStatus, PlanTemplate
from engine.rules.facts import EVENT_WINDOWS, PLAN_MILESTONE_FIELDS
from engine.rules.logic import MAX_CONDITION_DEPTH, SCOPED_ARGUMENT, InvalidCondition, validate_condition

FIELD_TYPES = ("string", "number", "boolean", "list[string]", "object", "any")
LIFECYCLE_STAGES = ("onboarding", "enablement", "adoption", "optimisation", "renewal")
TRAIT_FIELD_TYPES: dict[TraitType, str] = {
    TraitType.STRING: "string",
    TraitType.NUMBER: "number",
    TraitType.BOOLEAN: "boolean",
    TraitType.LIST: "list[string]",
    TraitType.DATE: "string",
}
COMPARISONS = frozenset({"==", "!=", "===", "!=="})
ORDERINGS = frozenset({"<", "<=", ">", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "min", "max"})
NOT_NUMERIC = frozenset({"list[string]", "boolean", "object"})


@dataclass(frozen=True)
class Field:
    """One readable fact: its dotted path in the facts document, its type, and, for pickers, the
    values it can take (`values` empty means any value of the type)."""

    path: str
    type: str
    description: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(
                f"field {self.path!r}: type {self.type!r} is not one of {', '.join(FIELD_TYPES)}"
            )


FieldProvider = Callable[[Session], Iterable[Field]]
_providers: dict[str, FieldProvider] = {}


def register_field_provider(fn: FieldProvider) -> None:
    """Add fields a higher package owns (wiring twice replaces, so it is harmless)."""
    _providers[f"{fn.__module__}.{fn.__qualname__}"] = fn


class Catalogue:
    """Fields by path. Intermediate paths (`account`, `events.job_posted`) read as objects, and
    anything below an `object` field (a key result's `target`) reads as `any`."""

    def __init__(self, fields: Iterable[Field]) -> None:
        self.fields: dict[str, Field] = {}
        for item in fields:
            self.fields.setdefault(item.path, item)
        self._prefixes = {
            ".".join(parts[:i]) for parts in (p.split(".") for p in self.fields) for i in range(1, len(parts))
        }
        self._paths = sorted(self.fields)

    def get(self, path: str) -> Field | None:
        return self.fields.get(path)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.resolve(path) is not None

    def resolve(self, path: str) -> Field | None:
        """The field a `var` path reads, declared or implied; None when the path is unknown."""
        if path == "":
            return Field("", "object", "the whole facts document")
        found = self.fields.get(path)
        if found is not None:
            return found
        if path in self._prefixes:
            return Field(path, "object", f"everything under {path}")
        parts = path.split(".")
        for i in range(len(parts) - 1, 0, -1):
            parent = self.fields.get(".".join(parts[:i]))
            if parent is not None:
                return (
                    Field(path, "any", f"inside {parent.path}") if parent.type in ("object", "any") else None
                )
        return None

    def suggest(self, path: str) -> str | None:
        close = difflib.get_close_matches(path, self._paths, n=1, cutoff=0.6)
        return close[0] if close else None


def catalogue(session: Session) -> Catalogue:
    """This database's catalogue, cached per process like the objective library."""
    return refcache.cached(session, "rules.catalogue", lambda: build_catalogue(session))


def build_catalogue(session: Session) -> Catalogue:
    """The catalogue read fresh: built-in fields, then every registered provider's."""
    return Catalogue(_fields(session))


refcache.watch(
    Outcome.__tablename__,
    Objective.__tablename__,
    TraitDefinition.__tablename__,
    EventType.__tablename__,
    PlanTemplate.__tablename__,
)


def _fields(session: Session) -> Iterator[Field]:
    yield from builtin_fields(session)
    for provider in _providers.values():
        yield from provider(session)


def builtin_fields(session: Session) -> Iterator[Field]:
    lib = library(session)
    yield Field("outcomes", "list[string]", "outcomes chosen in any survey", tuple(sorted(lib.outcomes)))
    yield Field(
        "objectives", "list[string]", "objectives chosen in any survey", tuple(sorted(lib.objectives))
    )
    yield Field("account.external_id", "string", "the account's id in the host product")
    yield Field("account.segment", "string", "the account's segment")
    yield Field("account.plan_tier", "string", "the account's pricing tier (null when unknown)")
    yield Field(
        "account.lifecycle_stage", "string", "where the account is in its lifecycle", LIFECYCLE_STAGES
    )
    yield Field("account.traits.seats", "number", "seats the account pays for")
    yield Field(
        "account.traits.tags", "list[string]", "tags on the account (rules add them with tag_account)"
    )
    for trait in session.scalars(select(TraitDefinition).order_by(TraitDefinition.key)):
        yield Field(
            f"account.traits.{trait.key}",
            TRAIT_FIELD_TYPES[trait.type],
            trait.description or f"custom trait {trait.key} ({trait.type.value})",
        )
    for event in session.scalars(select(EventType).order_by(EventType.name)):
        for label, days in EVENT_WINDOWS:
            yield Field(
                f"events.{event.name}.{label}",
                "number",
                f"{event.name} events in the last {days} days"
                + (f": {event.description}" if event.description else ""),
            )
    templates = tuple(session.scalars(select(PlanTemplate.key).order_by(PlanTemplate.key)))
    yield Field("plan.exists", "boolean", "the account has an active success plan")
    yield Field("plan.template", "string", "the active plan's template key (null without a plan)", templates)
    yield Field(
        "plan.status", "string", "the active plan's status (null without a plan)", (PlanStatus.ACTIVE.value,)
    )
    yield Field("plan.milestones_total", "number", "milestones in the active plan")
    for name in PLAN_MILESTONE_FIELDS:
        label = name.replace("_", " ")
        yield Field(f"plan.milestones_{name}", "number", f"milestones in the active plan that are {label}")


def check_condition(catalogue: Catalogue, condition: Any, *, pointer: str = "") -> dict[str, str]:
    """JSON pointer (RFC 6901, prefixed with `pointer`) → message for every problem found before the
    condition runs: invalid JSON Logic, fields not in the catalogue, and type mismatches. {} if fine."""
    errors: dict[str, str] = {}
    try:
        validate_condition(condition, pointer=pointer)
    except InvalidCondition as exc:
        # validate_condition names the root "/" when it has no prefix; RFC 6901's root is "".
        errors.update({(k if k != "/" or pointer else ""): v for k, v in exc.errors.items()})
    _Checker(catalogue, errors).visit(condition, pointer, 0)
    return errors


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Checker:
    def __init__(self, catalogue: Catalogue, errors: dict[str, str]) -> None:
        self.catalogue = catalogue
        self.errors = errors

    def report(self, pointer: str, message: str) -> None:
        self.errors.setdefault(pointer, message)

    def visit(self, node: Any, pointer: str, depth: int, scoped: bool = False) -> None:
        if depth > MAX_CONDITION_DEPTH:
            return
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.visit(item, f"{pointer}/{i}", depth + 1, scoped)
            return
        if not isinstance(node, dict) or len(node) != 1:
            return
        op, raw = next(iter(node.items()))
        here = f"{pointer}/{escape(op)}"
        args = raw if isinstance(raw, list) else [raw]
        at = [f"{here}/{i}" for i in range(len(args))] if isinstance(raw, list) else [here]
        if not scoped:
            self.check_paths(op, raw, pointer, here)
            self.check_types(op, args, at)
        scoped_at = SCOPED_ARGUMENT.get(op)
        for i, arg in enumerate(args):
            inner = scoped or i == scoped_at or (op == "try" and 0 < i == len(args) - 1)
            self.visit(arg, at[i], depth + 1, inner)

    def check_paths(self, op: str, raw: Any, node: str, here: str) -> None:
        """Unknown fields are reported at the `var` node itself (`/and/1/>=/0`), and at the path
        string for `missing` and `missing_some`, which list several."""
        if op == "var":
            path = _var_path(raw)
            if path is not None:
                self.check_path(path, node)
        elif op == "val" and isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
            self.check_path(".".join(raw), node)
        elif op == "missing":
            for i, item in enumerate(raw if isinstance(raw, list) else [raw]):
                if isinstance(item, str):
                    self.check_path(item, f"{here}/{i}" if isinstance(raw, list) else here)
        elif op == "missing_some" and isinstance(raw, list) and len(raw) == 2 and isinstance(raw[1], list):
            for i, item in enumerate(raw[1]):
                if isinstance(item, str):
                    self.check_path(item, f"{here}/1/{i}")

    def check_path(self, path: str, at: str) -> None:
        if path in self.catalogue:
            return
        suggestion = self.catalogue.suggest(path)
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        self.report(at, f"unknown field {path!r}{hint}")

    def field_of(self, node: Any) -> Field | None:
        if isinstance(node, dict) and len(node) == 1 and "var" in node:
            path = _var_path(node["var"])
            return self.catalogue.resolve(path) if path is not None else None
        return None

    def check_types(self, op: str, args: list[Any], at: list[str]) -> None:
        fields = [self.field_of(a) for a in args]
        if op in COMPARISONS or op in ORDERINGS:
            for i, field in enumerate(fields):
                if field is None:
                    continue
                if op in ORDERINGS and field.type in NOT_NUMERIC:
                    self.report(at[i], f"{field.path} is {_a(field.type)}; {op!r} compares numbers")
                    continue
                for j, other in enumerate(args):
                    if j != i and isinstance(other, str):
                        self.check_literal(field, other, at[j], op)
        elif op in ARITHMETIC:
            for i, field in enumerate(fields):
                if field is not None and field.type in NOT_NUMERIC:
                    self.report(at[i], f"{field.path} is {_a(field.type)}; {op!r} needs numbers")
        elif op == "in" and len(args) == 2:
            needle, haystack = fields
            if needle is not None and needle.type == "list[string]":
                self.report(
                    at[0],
                    f'{needle.path} is a list: put it second, {{"in": [value, {{"var": {needle.path!r}}}]}}',
                )
            if haystack is not None and haystack.type in ("number", "boolean"):
                self.report(
                    at[1], f"{haystack.path} is {_a(haystack.type)}; 'in' searches a list or a string"
                )
            if haystack is not None and haystack.type == "list[string]" and isinstance(args[0], str):
                self.check_literal(haystack, args[0], at[0], op)
            if needle is not None and isinstance(args[1], list):
                for k, item in enumerate(args[1]):
                    if isinstance(item, str):
                        self.check_literal(needle, item, f"{at[1]}/{k}", op)

    def check_literal(self, field: Field, literal: str, at: str, op: str) -> None:
        if field.type == "number" and not _numeric(literal):
            self.report(
                at, f"{field.path} is a number; {literal!r} is not one, so {op!r} never holds as meant"
            )
        elif field.type in ("string", "list[string]") and field.values and literal not in field.values:
            close = difflib.get_close_matches(literal, field.values, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(field.values)}"
            self.report(at, f"{literal!r} is not a value of {field.path}; {hint}")


def _var_path(raw: Any) -> str | None:
    """The literal path a `var` reads (`{"var": "a.b"}`, `{"var": ["a.b", default]}`), or None."""
    if isinstance(raw, list):
        raw = raw[0] if raw else ""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float):
        return str(raw)
    if raw is None:
        return ""
    return None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() != ""


def _a(kind: str) -> str:
    return {"list[string]": "a list", "object": "an object", "boolean": "a boolean"}.get(kind, f"a {kind}")
