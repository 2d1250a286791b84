"""Segment preview in SQL counts exactly the accounts `evaluate()` matches on their facts."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import datalogic_py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.events.models import Event
from engine.plans.models import PlanStatus, SuccessPlan
from engine.rules import InvalidCondition
from engine.rules.facts import load_facts
from engine.rules.logic import evaluate, truthy
from engine.rules.sql import preview, translate

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)

# Trait values chosen for datalogic's coercions: numbers, text that reads as a number and text
# that does not, empty text, null, booleans, lists, objects, a number beyond 2**53.
TRAIT_VALUES: list[Any] = [
    0,
    1,
    5,
    12,
    100,
    250,
    2.5,
    -3,
    "",
    " ",
    "0",
    "5",
    "05",
    "5.0",
    "12",
    "100",
    "1e2",
    " 5",
    "-1",
    "abc",
    "true",
    "null",
    "vip",
    "emea",
    None,
    True,
    False,
    [],
    ["vip"],
    ["vip", "beta"],
    [["vip"]],
    [1, "a"],
    {},
    {"vip": 1},
    2**60,
]
LITERALS: list[Any] = [None, True, False, 0, 1, 5, 12, 100, 2.5, -1, "", "0", "5", "12", "abc", "vip", "emea"]
SEGMENTS = ("starter", "growth", "enterprise")
TIERS = (None, "team", "pro", "")
STAGES = ("onboarding", "adopting", "renewing")
EVENT_OFFSETS = (0, 1, 6, 7, 8, 29, 30, 31, 89, 90, 91, 200, -1)  # days before NOW (-1: in the future)


def _seed_accounts(session: Session, traits: list[dict[str, Any]], prefix: str = "acct") -> list[Account]:
    accounts = []
    for i, account_traits in enumerate(traits):
        account = Account(
            external_id=f"{prefix}-{i:03d}",
            name=f"Account {i}",
            segment=SEGMENTS[i % len(SEGMENTS)],
            plan_tier=TIERS[i % len(TIERS)],
            lifecycle_stage=STAGES[i % len(STAGES)],
            traits=account_traits,
        )
        session.add(account)
        accounts.append(account)
    session.flush()
    for i, account in enumerate(accounts):
        offsets = EVENT_OFFSETS[: i % (len(EVENT_OFFSETS) + 1)]
        for j, days in enumerate(offsets):
            name = "login" if j % 3 else "job_posted"
            # Exactly on a window's edge for some: load_facts counts occurred_at >= now - N days.
            session.add(
                Event(
                    account_id=account.id,
                    name=name,
                    occurred_at=NOW - dt.timedelta(days=days),
                    idempotency_key=f"{prefix}-{i}-{j}",
                )
            )
        if i % 4 != 3:
            status = PlanStatus.COMPLETED if i % 4 == 2 else PlanStatus.ACTIVE
            session.add(
                SuccessPlan(
                    account_id=account.id,
                    template_key=("hire_faster_plan", "onboarding_plan")[i % 2],
                    status=status,
                    goal="Hire faster",
                    review_date=NOW.date(),
                )
            )
    session.flush()
    return accounts


def _fixed_traits() -> list[dict[str, Any]]:
    traits: list[dict[str, Any]] = [{}]
    for i, value in enumerate(TRAIT_VALUES):
        traits.append({"seats": value, "tags": TRAIT_VALUES[(i * 7) % len(TRAIT_VALUES)], "region": "emea"})
    traits.append({"seats": None, "tags": None})
    traits.append({"region": "amer", "tags": ["beta"]})
    return traits


@pytest.fixture
def accounts(db: Session) -> Iterator[list[Account]]:
    yield _seed_accounts(db, _fixed_traits())


def reference_count(session: Session, condition: Any) -> int:
    """What the product does on each account: evaluate() on load_facts; a raise does not match."""
    everyone = list(session.scalars(select(Account).order_by(Account.id)))
    facts = load_facts(session, everyone, NOW)
    matched = 0
    for account in everyone:
        with contextlib.suppress(datalogic_py.DataLogicError):
            matched += truthy(evaluate(condition, facts[account.id]))
    return matched


def assert_sql_matches_reference(session: Session, condition: Any) -> None:
    result = preview(session, condition, now=NOW)
    assert result.method == "sql", result.reason
    assert result.count == reference_count(session, condition), condition


def var(path: str, *default: Any) -> dict[str, Any]:
    return {"var": [path, *default]} if default else {"var": path}


SEATS, TAGS, REGION = var("account.traits.seats"), var("account.traits.tags"), var("account.traits.region")

CONDITIONS: list[Any] = [
    {"==": [var("account.segment"), "growth"]},
    {"!=": [var("account.segment"), "growth"]},
    {"===": [var("account.lifecycle_stage"), "renewing"]},
    {"!==": ["renewing", var("account.lifecycle_stage")]},
    {"<": [var("account.external_id"), "acct-010"]},
    {"==": [var("account.plan_tier"), None]},
    {"!=": [var("account.plan_tier"), None]},
    {"==": [var("account.plan_tier"), ""]},
    {"!": var("account.plan_tier")},
    {"in": [var("account.segment"), ["growth", "enterprise", 5]]},
    {"in": [var("account.plan_tier"), [None, "pro"]]},
    {"in": ["row", var("account.segment")]},
    {"==": [SEATS, 5]},
    {"==": [SEATS, "5"]},
    {"===": [SEATS, 5]},
    {"!==": [SEATS, "5"]},
    {"!=": [SEATS, 0]},
    {"==": [SEATS, None]},
    {"!=": [SEATS, None]},
    {"==": [SEATS, True]},
    {"==": [SEATS, False]},
    {"<": [SEATS, 12]},
    {">=": [SEATS, 100]},
    {">": [12, SEATS]},
    {"<=": [SEATS, None]},
    {">": [SEATS, True]},
    {"<": [SEATS, "12"]},
    {"<": [SEATS, "abc"]},
    {">": [SEATS, ""]},
    {"<": [SEATS, "5"]},
    {"<": [1, SEATS, 100]},
    {"<=": [5, SEATS, 100]},
    {"<=": [0, var("account.traits.seats", 0), 12]},
    {">=": [var("account.traits.seats", 50), 50]},
    {"==": [var("account.traits.seats", "missing"), "missing"]},
    {"in": [SEATS, [5, "5", 2.5, None, True]]},
    {"in": ["vip", TAGS]},
    {"in": ["", TAGS]},
    {"!": {"in": ["vip", TAGS]}},
    {"!!": SEATS},
    {"!": [TAGS]},
    {"==": [REGION, "emea"]},
    {"==": [var("events.login.count_30d"), 0]},
    {"==": [var("events.login.count_30d", 0), 0]},
    {">=": [var("events.login.count_30d"), 2]},
    {"<": [var("events.login.count_7d"), 1]},
    {">": [var("events.job_posted.count_90d", -1), -1]},
    {"===": [var("events.login.count_90d"), None]},
    {"!!": var("events.login.count_7d")},
    {"var": "plan.exists"},
    {"!": var("plan.exists")},
    {"==": [var("plan.exists"), 1]},
    {"==": [var("plan.template"), "hire_faster_plan"]},
    {"==": [var("plan.template"), None]},
    {"===": [var("plan.status"), "active"]},
    {"and": [{"var": "plan.exists"}, {"<": [SEATS, 100]}]},
    {"or": [{"<": [SEATS, "abc"]}, {"==": [var("account.segment"), "growth"]}]},
    {"!": {"or": [{"<": [SEATS, "abc"]}, {"==": [var("account.segment"), "growth"]}]}},
    {"!": {"and": [{"==": [var("account.segment"), "growth"]}, {"<": [SEATS, "abc"]}]}},
    {"!": {"and": [{"<": [SEATS, "abc"]}, False]}},
    {"and": [SEATS, TAGS]},
    {"or": [{"==": [1, 1]}, {"<": [SEATS, "abc"]}]},
    {"and": [{"==": [1, "1"]}, {"in": ["a", "cat"]}, {"!": var("account.traits.nope")}]},
    {"and": [True]},
    {"or": [0]},
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=[str(i) for i in range(len(CONDITIONS))])
def test_sql_count_equals_evaluating_every_account(
    db: Session, accounts: list[Account], condition: Any
) -> None:
    assert_sql_matches_reference(db, condition)


def _fields() -> st.SearchStrategy[dict[str, Any]]:
    paths = [
        "account.segment",
        "account.plan_tier",
        "account.lifecycle_stage",
        "account.external_id",
        "account.traits.seats",
        "account.traits.tags",
        "account.traits.region",
        "account.traits.absent",
        "events.login.count_7d",
        "events.login.count_30d",
        "events.job_posted.count_90d",
        "plan.exists",
        "plan.template",
        "plan.status",
    ]
    plain = st.builds(lambda p: {"var": p}, st.sampled_from(paths))
    defaulted = st.builds(lambda p, d: {"var": [p, d]}, st.sampled_from(paths), st.sampled_from(LITERALS))
    return plain | defaulted


def _leaves() -> st.SearchStrategy[Any]:
    literal = st.sampled_from(LITERALS)
    ops = st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="])
    compare = st.builds(
        lambda op, f, v, flip: {op: [v, f] if flip else [f, v]}, ops, _fields(), literal, st.booleans()
    )
    numbers = st.sampled_from([-1, 0, 1, 5, 12, 100, 2.5])
    between = st.builds(
        lambda op, lo, f, hi: {op: [lo, f, hi]}, st.sampled_from(["<", "<="]), numbers, _fields(), numbers
    )
    one_of = st.builds(lambda f, vs: {"in": [f, vs]}, _fields(), st.lists(literal, max_size=4))
    contains = st.builds(
        lambda s, f: {"in": [s, f]}, st.sampled_from(["vip", "beta", "", "a", "5", "growth"]), _fields()
    )
    return compare | between | one_of | contains | _fields() | literal


CONDITION = st.recursive(
    _leaves(),
    lambda inner: (
        st.builds(lambda xs: {"and": xs}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda xs: {"or": xs}, st.lists(inner, min_size=1, max_size=3))
        | st.builds(lambda x: {"!": x}, inner)
        | st.builds(lambda x: {"!!": [x]}, inner)
    ),
    max_leaves=6,
).filter(lambda c: isinstance(c, dict))  # a rule's condition is an operator, never a bare literal


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(condition=CONDITION)
def test_generated_conditions_count_the_same_in_sql(
    db: Session, accounts: list[Account], condition: Any
) -> None:
    assert_sql_matches_reference(db, condition)


TRAIT = st.sampled_from(TRAIT_VALUES)
TRAITS = st.fixed_dictionaries({}, optional={"seats": TRAIT, "tags": TRAIT, "region": TRAIT})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traits=st.lists(TRAITS, min_size=1, max_size=12), condition=CONDITION)
def test_generated_accounts_and_conditions_count_the_same_in_sql(
    db: Session, traits: list[dict[str, Any]], condition: Any
) -> None:
    savepoint = db.begin_nested()
    try:
        _seed_accounts(db, traits, prefix="gen")
        assert_sql_matches_reference(db, condition)
    finally:
        savepoint.rollback()


def test_preview_reports_count_total_and_a_sample_in_id_order(db: Session, accounts: list[Account]) -> None:
    result = preview(db, {"==": [var("account.segment"), "growth"]}, now=NOW, limit_sample=3)
    growth = [a.external_id for a in accounts if a.segment == "growth"]
    assert (result.count, result.total, result.method, result.reason) == (
        len(growth),
        len(accounts),
        "sql",
        None,
    )
    assert result.sample == growth[:3]
    assert result.evaluated == 0


def test_text_that_only_looks_like_a_number_is_evaluated_in_python(db: Session) -> None:
    _seed_accounts(db, [{"seats": "1e2"}, {"seats": "120"}, {"seats": 90}, {"seats": " 150"}])
    result = preview(db, {">=": [SEATS, 100]}, now=NOW)
    assert (result.method, result.count, result.evaluated) == ("sql", 2, 2)
    assert result.sample == ["acct-000", "acct-001"]


def test_outcomes_fall_back_to_batches_and_say_why(db: Session, accounts: list[Account]) -> None:
    condition = {"and": [{"var": "plan.exists"}, {"!": {"in": ["hire_faster", {"var": "outcomes"}]}}]}
    result = preview(db, condition, now=NOW)
    assert result.method == "batched"
    assert result.reason is not None
    assert "outcomes" in result.reason and "/and/1/!/in/1/var" in result.reason
    assert result.count == reference_count(db, condition)
    assert result.evaluated == result.total == len(accounts)
    assert result.complete


def test_batched_fallback_can_stop_early_and_says_so(db: Session, accounts: list[Account]) -> None:
    result = preview(db, {"+": [1, 1]}, now=NOW, fallback_limit=5, limit_sample=2)
    assert (result.method, result.evaluated, result.count, result.complete) == ("batched", 5, 5, False)
    assert result.reason is not None and f"stopped after 5 of {len(accounts)} accounts" in result.reason
    assert result.sample == [a.external_id for a in accounts[:2]]


@pytest.mark.parametrize(
    ("condition", "pointer", "reason"),
    [
        ({"and": [{"==": [var("account.segment"), "x"]}, {"+": [1, 2]}]}, "/and/1/+", "operator '+'"),
        ({"or": [True, {"<": [SEATS, var("account.traits.other")]}]}, "/or/1/</1", "two fields"),
        ({"==": [var("answers.onboarding.nps"), 9]}, "/==/0/var", "survey answers"),
        ({"in": ["hire_faster", var("objectives")]}, "/in/1/var", "survey answers"),
        ({"==": [var("plan.milestones_total"), 0]}, "/==/0/var", "plan field"),
        ({"<": [var("account.traits.tags.0"), 1]}, "/</0/var", "account field"),
        ({"==": [var("events.login.count_1d"), 0]}, "/==/0/var", "count_7d"),
        ({"!": [{"if": [True, 1, 0]}]}, "/!/0/if", "operator 'if'"),
        ({"in": [1, TAGS]}, "/in", "'in' is translated"),
        ({"<": [SEATS, 2**60]}, "/</1", "2**53"),
    ],
)
def test_untranslatable_parts_are_named_by_json_pointer(condition: Any, pointer: str, reason: str) -> None:
    translation = translate(condition, now=NOW)
    assert translation.where is None
    assert translation.pointer == pointer
    assert translation.reason is not None and reason in translation.reason


def test_sqlite_is_never_translated() -> None:
    translation = translate({"==": [var("account.segment"), "x"]}, now=NOW, dialect="sqlite")
    assert translation.where is None and translation.reason is not None and "PostgreSQL" in translation.reason


def test_invalid_json_logic_is_rejected_before_counting(db: Session) -> None:
    with pytest.raises(InvalidCondition):
        preview(db, {"no_such_operator": [1]}, now=NOW)
