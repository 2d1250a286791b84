"""The field catalogue (every fact a rule can read), save-time condition checks by JSON pointer, and
the explained trace (properties of decide() over generated rules: tests/test_rules_properties.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from engine import refcache
from engine.db import utcnow
from engine.events.models import Event, EventType
from engine.rules import RuleSpec, decide
from engine.rules.catalogue import Catalogue, Field, catalogue, check_condition
from engine.rules.explain import Reason
from engine.rules.facts import load_facts
from engine.rules.models import published_ruleset
from surveys.models import Channel, Response, ResponseStatus, Survey
from tests.factories import make_account, outcomes_answers
from tests.recruiting_catalogue import (
    OUTCOME_KEYS,
    build_recruiting_catalogue,
    import_recruiting,
    resolve_pointer,
)


@pytest.fixture(scope="module")
def recruiting_catalogue(pg_engine: Engine) -> Catalogue:
    return build_recruiting_catalogue(pg_engine)


# The catalogue, on the real database ---------------------------------------------------------


def test_catalogue_declares_every_recruiting_fact_with_its_type(db: Session) -> None:
    import_recruiting(db)
    refcache.clear()
    fields = catalogue(db).fields

    assert fields["outcomes"] == Field(
        "outcomes", "list[string]", fields["outcomes"].description, tuple(OUTCOME_KEYS)
    )
    assert "careers_site_traffic" in fields["objectives"].values
    assert fields["account.lifecycle_stage"].values == (
        "onboarding",
        "enablement",
        "adoption",
        "optimisation",
        "renewal",
    )
    assert fields["account.traits.seats"].type == "number"
    assert fields["account.traits.tags"].type == "list[string]"
    assert fields["account.traits.region"].type == "string"
    assert fields["account.traits.region"].description == "sales region"
    assert fields["account.traits.renewal_date"].type == "string"
    for window in ("count_7d", "count_30d", "count_90d"):
        assert fields[f"events.job_posted.{window}"].type == "number"
        assert fields[f"events.new_hire_started.{window}"].type == "number"
    assert fields["plan.exists"].type == "boolean"
    assert "hire_faster_plan" in fields["plan.template"].values
    for name in ("total", "achieved", "on_track", "behind", "missed"):
        assert fields[f"plan.milestones_{name}"].type == "number"


def test_catalogue_declares_answers_of_each_published_survey_by_question_kind(db: Session) -> None:
    import_recruiting(db)
    refcache.clear()
    found = catalogue(db)

    assert found.fields["answers.outcomes.outcomes"].type == "list[string]"
    assert found.fields["answers.outcomes.outcomes"].values == tuple(OUTCOME_KEYS)
    assert "time_to_fill" in found.fields["answers.outcomes.objectives"].values
    assert found.fields["answers.outcomes.key_results"].type == "object"
    assert found.fields["answers.outcomes.role"] == Field(
        "answers.outcomes.role",
        "string",
        found.fields["answers.outcomes.role"].description,
        ("exec", "leader", "user"),
    )
    assert found.fields["answers.outcomes.nps"].type == "number"
    assert found.fields["answers.outcomes.comment"].type == "string"
    # Below an object field any path may be read: a key result's target.
    assert "answers.outcomes.key_results.time_to_fill.target" in found


def test_recruiting_playbook_rules_pass_the_catalogue_check(db: Session) -> None:
    import_recruiting(db)
    refcache.clear()
    ruleset = published_ruleset(db)
    assert ruleset is not None and ruleset.rules
    for i, rule in enumerate(ruleset.rules):
        assert check_condition(catalogue(db), rule.condition, pointer=f"/rules/{i}/condition") == {}, (
            rule.name
        )


def test_catalogue_is_cached_until_a_watched_table_changes(db: Session) -> None:
    import_recruiting(db)
    db.commit()
    refcache.clear()
    first = catalogue(db)
    assert catalogue(db) is first
    assert "events.demo_booked.count_30d" not in first

    db.add(EventType(name="demo_booked", description="a demo was booked"))
    db.commit()

    assert catalogue(db).fields["events.demo_booked.count_30d"].type == "number"


def test_facts_loaded_for_a_real_account_read_only_catalogue_fields(db: Session) -> None:
    import_recruiting(db)
    refcache.clear()
    now = utcnow()
    account = make_account(db, "globex", seats=40, tags=["expansion"], region="emea")
    db.add(
        Event(
            account_id=account.id,
            name="job_posted",
            occurred_at=now - dt.timedelta(days=3),
            idempotency_key="e1",
        )
    )
    survey = db.scalars(select(Survey).where(Survey.key == "outcomes")).one()
    version = survey.latest_published
    assert version is not None
    db.add(
        Response(
            survey_version_id=version.id,
            account_id=account.id,
            client_response_id="catalogue-test-1",
            channel=Channel.API,
            status=ResponseStatus.COMPLETED,
            answers={**outcomes_answers(), "role": "leader", "comment": "slow reviews"},
            completed_at=now,
        )
    )
    db.flush()
    facts = load_facts(db, [account], now)[account.id]
    found = catalogue(db)

    leaves = list(_leaves(facts))
    assert ("events.job_posted.count_7d", 1) in leaves
    assert ("answers.outcomes.nps", 9) in leaves
    for path, value in leaves:
        field = found.resolve(path)
        assert field is not None, path
        assert value is None or _has_type(value, field.type), (path, value, field.type)


def _leaves(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def _has_type(value: Any, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "list[string]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "object":
        return isinstance(value, dict)
    return True


# check_condition: one test per kind of error, with its exact pointer -------------------------


def test_unknown_field_is_reported_at_its_var_with_a_suggestion(recruiting_catalogue: Catalogue) -> None:
    condition = {"and": [True, {">=": [{"var": "events.job_posted.count"}, 5]}]}
    errors = check_condition(recruiting_catalogue, condition)
    assert list(errors) == ["/and/1/>=/0"]
    assert "unknown field 'events.job_posted.count'" in errors["/and/1/>=/0"]
    assert "did you mean 'events.job_posted.count_" in errors["/and/1/>=/0"]


def test_unknown_field_pointer_is_prefixed_for_the_rule_being_saved(recruiting_catalogue: Catalogue) -> None:
    errors = check_condition(
        recruiting_catalogue,
        {"==": [{"var": ["acount.segment", "x"]}, "growth"]},
        pointer="/rules/3/condition",
    )
    assert list(errors) == ["/rules/3/condition/==/0"]
    assert "did you mean 'account.segment'?" in errors["/rules/3/condition/==/0"]


def test_unknown_fields_in_missing_are_reported_per_path(recruiting_catalogue: Catalogue) -> None:
    errors = check_condition(recruiting_catalogue, {"missing": ["account.segment", "account.segmnt"]})
    assert list(errors) == ["/missing/1"]
    errors = check_condition(recruiting_catalogue, {"missing_some": [1, ["outcomes", "outcomez"]]})
    assert list(errors) == ["/missing_some/1/1"]


def test_paths_relative_to_an_element_are_not_fields(recruiting_catalogue: Catalogue) -> None:
    for condition in (
        {"some": [{"var": "outcomes"}, {"==": [{"var": ""}, "hire_faster"]}]},
        {"all": [{"var": "answers.outcomes.objectives"}, {"in": [{"var": ""}, ["time_to_fill"]]}]},
        {"none": [{"var": "outcomes"}, {"==": [{"var": "title"}, "x"]}]},
        {"filter": [{"var": "outcomes"}, {"!!": [{"var": "anything.at.all"}]}]},
        {">": [{"reduce": [{"var": "objectives"}, {"+": [{"var": "accumulator"}, 1]}, 0]}, 1]},
        {"map": [{"var": "outcomes"}, {"cat": [{"var": "current"}, "!"]}]},
    ):
        assert check_condition(recruiting_catalogue, condition) == {}, condition
    errors = check_condition(recruiting_catalogue, {"some": [{"var": "outcomez"}, {"var": ""}]})
    assert list(errors) == ["/some/0"]


def test_number_field_compared_with_a_word_is_reported_at_the_word(recruiting_catalogue: Catalogue) -> None:
    errors = check_condition(recruiting_catalogue, {"==": [{"var": "account.traits.seats"}, "many"]})
    assert list(errors) == ["/==/1"]
    assert "is a number" in errors["/==/1"]
    errors = check_condition(recruiting_catalogue, {"<": [1, {"var": "events.job_posted.count_30d"}, "lots"]})
    assert list(errors) == ["/</2"]
    assert check_condition(recruiting_catalogue, {"==": [{"var": "account.traits.seats"}, "10"]}) == {}
    assert check_condition(recruiting_catalogue, {"!==": [{"var": "answers.outcomes.nps"}, None]}) == {}


def test_list_field_on_the_needle_side_of_in_is_reported(recruiting_catalogue: Catalogue) -> None:
    errors = check_condition(recruiting_catalogue, {"in": [{"var": "outcomes"}, "hire_faster"]})
    assert list(errors) == ["/in/0"]
    assert "is a list" in errors["/in/0"]
    errors = check_condition(recruiting_catalogue, {"in": ["x", {"var": "account.traits.seats"}]})
    assert list(errors) == ["/in/1"]


@pytest.mark.parametrize(
    ("condition", "pointer"),
    [
        ({">": [{"var": "outcomes"}, 1]}, "/>/0"),
        ({"<=": [1, {"var": "plan.exists"}]}, "/<=/1"),
        ({"+": [{"var": "answers.outcomes.key_results"}, 1]}, "/+/0"),
        ({"and": [{">": [{"/": [{"var": "account.traits.tags"}, 2]}, 1]}]}, "/and/0/>/0/~1/0"),
        ({">=": [{"max": [{"var": "answers.outcomes.outcomes"}, 1]}, 2]}, "/>=/0/max/0"),
    ],
)
def test_numeric_operator_on_a_list_boolean_or_object_field_is_reported(
    recruiting_catalogue: Catalogue, condition: Any, pointer: str
) -> None:
    errors = check_condition(recruiting_catalogue, condition)
    assert list(errors) == [pointer]
    resolve_pointer(condition, pointer)


@pytest.mark.parametrize(
    ("condition", "pointer", "hint"),
    [
        ({"==": [{"var": "account.lifecycle_stage"}, "renewals"]}, "/==/1", "did you mean 'renewal'?"),
        ({"in": ["hire_fastr", {"var": ["outcomes", []]}]}, "/in/0", "did you mean 'hire_faster'?"),
        ({"in": [{"var": "account.lifecycle_stage"}, ["adoption", "growth"]]}, "/in/1/1", "expected one of"),
        ({"!=": ["boss", {"var": "answers.outcomes.role"}]}, "/!=/0", "expected one of exec, leader, user"),
    ],
)
def test_literal_outside_an_enum_fields_values_is_reported(
    recruiting_catalogue: Catalogue, condition: Any, pointer: str, hint: str
) -> None:
    errors = check_condition(recruiting_catalogue, condition)
    assert list(errors) == [pointer]
    assert hint in errors[pointer]


def test_invalid_json_logic_is_reported_with_the_catalogue_errors(recruiting_catalogue: Catalogue) -> None:
    errors = check_condition(
        recruiting_catalogue,
        {"and": [{"no_such_operator": [1]}, {"var": "nope"}]},
        pointer="/rules/0/condition",
    )
    assert set(errors) == {"/rules/0/condition/and/0", "/rules/0/condition/and/1"}
    assert "no_such_operator" in errors["/rules/0/condition/and/0"]
    assert "unknown field 'nope'" in errors["/rules/0/condition/and/1"]


def test_overly_deep_condition_is_reported_at_the_root(recruiting_catalogue: Catalogue) -> None:
    deep: Any = {"var": "outcomes"}
    for _ in range(40):
        deep = {"!": [deep]}
    errors = check_condition(recruiting_catalogue, deep)
    assert "levels deep" in errors[""]
    assert (
        "levels deep"
        in check_condition(recruiting_catalogue, deep, pointer="/rules/1/condition")["/rules/1/condition"]
    )


def test_sound_condition_has_no_errors(recruiting_catalogue: Catalogue) -> None:
    condition = {
        "and": [
            {"in": ["hire_faster", {"var": ["outcomes", []]}]},
            {">=": [{"var": "events.job_posted.count_30d"}, 5]},
            {"==": [{"var": "account.lifecycle_stage"}, "adoption"]},
            {">=": [{"var": ["answers.outcomes.key_results.time_to_fill.target", 0]}, 30]},
            {"!": [{"var": "plan.exists"}]},
        ]
    }
    assert check_condition(recruiting_catalogue, condition) == {}


# The explained trace --------------------------------------------------------------------------


def test_trace_names_the_sub_condition_that_failed_and_the_values_it_read() -> None:
    condition = {
        "and": [
            {"in": ["hire_faster", {"var": ["outcomes", []]}]},
            {">=": [{"var": "events.job_posted.count_30d"}, 5]},
        ]
    }
    facts = {"outcomes": ["hire_faster"], "events": {"job_posted": {"count_30d": 2}}}
    decision = decide(
        facts, [RuleSpec("busy hirers", condition, ({"type": "tag_account", "value": "busy"},))]
    )
    assert decision.trace[0].reason == (
        'and/1: {">=": [{"var": "events.job_posted.count_30d"}, 5]} is false '
        "(events.job_posted.count_30d = 2)"
    )


def test_reasons_are_the_traces_explanation_as_values_for_the_console_to_word() -> None:
    condition = {"and": [{"in": ["hire_faster", {"var": ["outcomes", []]}]}, {"<=": [{"var": "nps"}, 6]}]}
    rules = [RuleSpec("detractor", condition, ()), RuleSpec("after", True, (), 0, False)]
    decision = decide({"outcomes": ["hire_faster"], "nps": 9}, rules)
    assert decision.reasons[0] == (Reason(("and", "1"), {"<=": [{"var": "nps"}, 6]}, False, (("nps", 9),)),)
    assert decision.trace[0].reason == 'and/1: {"<=": [{"var": "nps"}, 6]} is false (nps = 9)'
    assert decision.reasons[1] == (Reason((), True, True, ()),)


def test_trace_explains_every_failed_alternative_and_a_negation() -> None:
    either = {
        "or": [{"in": ["hire_faster", {"var": "outcomes"}]}, {">": [{"var": "account.traits.seats"}, 100]}]
    }
    negated = {"!": [{"<=": [{"var": "answers.outcomes.nps"}, 6]}]}
    facts = {"outcomes": [], "account": {"traits": {"seats": 12}}, "answers": {"outcomes": {"nps": 4}}}
    decision = decide(facts, [RuleSpec("either", either, (), 2), RuleSpec("promoter", negated, (), 1)])
    assert decision.trace[0].reason == (
        'or/0: {"in": ["hire_faster", {"var": "outcomes"}]} is false (outcomes = []); '
        'or/1: {">": [{"var": "account.traits.seats"}, 100]} is false (account.traits.seats = 12)'
    )
    assert decision.trace[1].reason == (
        '!/0: {"<=": [{"var": "answers.outcomes.nps"}, 6]} is true (answers.outcomes.nps = 4)'
    )


def test_trace_explains_a_match_and_keeps_other_reasons() -> None:
    rules = [
        RuleSpec(
            "plan",
            {"if": [{"var": "plan.exists"}, False, True]},
            ({"type": "enroll", "campaign": "c"},),
            3,
            True,
        ),
        RuleSpec("after", True, (), 1),
    ]
    decision = decide({"plan": {"exists": False}}, rules)
    assert decision.trace[0] == (
        "plan",
        True,
        'if/0: {"var": "plan.exists"} is false (plan.exists = false)',
    )
    assert decision.trace[1].reason == "skipped: 'plan' stops processing"
    assert decision.trace_rows[0] == ("plan", True, "condition is true")
