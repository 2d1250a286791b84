"""Properties of decide() and of the save-time check over catalogue-shaped facts and generated rules
(Hypothesis, on the recruiting playbook's catalogue)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from engine.rules import RuleSpec, decide
from engine.rules.catalogue import Catalogue, Field, check_condition
from tests.recruiting_catalogue import (
    build_recruiting_catalogue,
    resolve_pointer,
)


@pytest.fixture(scope="module")
def recruiting_catalogue(pg_engine: Engine) -> Catalogue:
    return build_recruiting_catalogue(pg_engine)


# Properties over catalogue-shaped facts and generated rules ------------------------------------

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=6))


def values_of(field: Field) -> st.SearchStrategy[Any]:
    words = st.sampled_from(field.values) | st.text(max_size=8) if field.values else st.text(max_size=8)
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "number": st.integers(-(10**6), 10**6)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(2**63, 2**70),
        "string": words,
        "boolean": st.booleans(),
        "list[string]": st.lists(words, max_size=4),
        "object": st.dictionaries(
            st.text(max_size=6), JSON_SCALARS | st.dictionaries(st.text(max_size=4), JSON_SCALARS), max_size=3
        ),
        "any": JSON_SCALARS,
    }
    return st.none() | by_type[field.type]


@st.composite
def facts_for(draw: st.DrawFn, found: Catalogue) -> dict[str, Any]:
    """A facts document shaped by the catalogue: any field may be missing or null, and now and then
    a whole branch (`events`, `account.traits`) is null."""
    document: dict[str, Any] = {}
    for path, field in sorted(found.fields.items()):
        if draw(st.booleans()):
            continue
        *parents, leaf = path.split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = draw(values_of(field))
    for branch in draw(st.lists(st.sampled_from(["events", "plan", "answers", "account"]), max_size=2)):
        document[branch] = None
    if document.get("account") and draw(st.booleans()):
        document["account"]["traits"] = None
    return document


def leaf_conditions(found: Catalogue) -> st.SearchStrategy[Any]:
    fields = [found.fields[p] for p in sorted(found.fields)]
    field = st.sampled_from(fields)

    def var(f: Field, default: bool) -> Any:
        return {"var": [f.path, None if f.type != "list[string]" else []]} if default else {"var": f.path}

    def compare(f: Field, op: str, default: bool, literal: Any) -> Any:
        return {op: [var(f, default), literal]}

    literal = JSON_SCALARS | st.sampled_from(["hire_faster", "adoption", "10", "x"])
    return st.one_of(
        st.builds(
            compare,
            field,
            st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="]),
            st.booleans(),
            literal,
        ),
        st.builds(lambda f, w: {"in": [w, var(f, True)]}, field, literal),
        st.builds(lambda f, ws: {"in": [var(f, False), ws]}, field, st.lists(literal, max_size=3)),
        st.builds(lambda f: {"!!": [var(f, False)]}, field),
        st.builds(lambda f, n: {">": [{"+": [var(f, True), 1]}, n]}, field, st.integers(-5, 50)),
        st.builds(lambda f, w: {"some": [var(f, True), {"==": [{"var": ""}, w]}]}, field, literal),
        st.builds(lambda f: {"reduce": [var(f, True), {"+": [{"var": "accumulator"}, 1]}, 0]}, field),
        st.builds(
            lambda ps: {"missing": ps}, st.lists(st.sampled_from([f.path for f in fields]), max_size=2)
        ),
        st.booleans(),
    )


def conditions_for(found: Catalogue) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf_conditions(found),
        lambda inner: st.one_of(
            st.builds(lambda cs: {"and": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda cs: {"or": cs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda c: {"!": [c]}, inner),
            st.builds(lambda a, b, c: {"if": [a, b, c]}, inner, inner, inner),
        ),
        max_leaves=6,
    )


def rules_for(found: Catalogue) -> st.SearchStrategy[list[RuleSpec]]:
    rule = st.builds(
        lambda i, condition, priority, stop: RuleSpec(
            f"rule {i}", condition, ({"type": "tag_account", "value": f"t{i}"},), priority, stop
        ),
        st.integers(0, 10**6),
        conditions_for(found),
        st.integers(0, 3),
        st.booleans(),
    )
    return st.lists(rule, min_size=1, max_size=6, unique_by=lambda r: r.name)


PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(data=st.data())
def test_decide_never_raises_on_catalogue_shaped_facts(
    recruiting_catalogue: Catalogue, data: st.DataObject
) -> None:
    facts = data.draw(facts_for(recruiting_catalogue), "facts")
    rules = data.draw(rules_for(recruiting_catalogue), "rules")
    decision = decide(facts, rules)
    assert [t.rule for t in decision.trace] == [
        r.name for r in sorted(rules, key=lambda r: (-r.priority, r.name))
    ]
    assert all(isinstance(t.reason, str) and t.reason for t in decision.trace)
    matched = {t.rule for t in decision.trace if t.matched}
    assert {a.rule for a in decision.actions} == matched


@PROPERTY_SETTINGS
@given(data=st.data())
def test_decide_is_deterministic(recruiting_catalogue: Catalogue, data: st.DataObject) -> None:
    facts = data.draw(facts_for(recruiting_catalogue), "facts")
    rules = data.draw(rules_for(recruiting_catalogue), "rules")
    first, second = decide(facts, rules), decide(copy.deepcopy(facts), list(reversed(rules)))
    assert first == second
    assert first.trace == second.trace


ODD_OPERATORS = [
    "and",
    "or",
    "!",
    "in",
    "==",
    "<",
    "+",
    "/",
    "some",
    "map",
    "var",
    "missing",
    "if",
    "nope",
    "a~b",
    "",
]


def odd_conditions(found: Catalogue) -> st.SearchStrategy[Any]:
    """Conditions a person might save: sound, mistyped, misspelt, or not JSON Logic at all."""
    paths = st.sampled_from(sorted(found.fields)) | st.sampled_from(
        ["outcomez", "events.job_posted.count", "a/b"]
    )
    leaves = st.one_of(
        conditions_for(found),
        st.builds(lambda p: {"var": p}, paths),
        JSON_SCALARS,
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.dictionaries(
                st.sampled_from(ODD_OPERATORS), st.lists(inner, max_size=3) | inner, min_size=1, max_size=1
            ),
            st.lists(inner, max_size=3),
        ),
        max_leaves=8,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_check_condition_pointers_resolve_inside_the_condition(
    recruiting_catalogue: Catalogue, data: st.DataObject
) -> None:
    condition = data.draw(odd_conditions(recruiting_catalogue), "condition")
    errors = check_condition(recruiting_catalogue, condition)
    event(f"{min(len(errors), 3)} errors")
    for pointer in errors:
        resolve_pointer(condition, pointer)
    document = {"rules": [{"condition": condition}]}
    for pointer in check_condition(recruiting_catalogue, condition, pointer="/rules/0/condition"):
        assert pointer.startswith("/rules/0/condition")
        resolve_pointer(document, pointer)
