"""Rules: full JsonLogic evaluation, and a pure, ordered, explainable decide()."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules import InvalidCondition, RuleSpec, decide, evaluate, validate_condition


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        ({"var": ["account.traits.seats", 0]}, {"account": {"traits": {"seats": 12}}}, 12),
        ({"var": ["missing.path", "fallback"]}, {}, "fallback"),
        ({"missing": ["a", "b"]}, {"a": 1}, ["b"]),
        ({"missing_some": [1, ["a", "b", "c"]]}, {"a": 1}, []),
        (
            {"if": [{"<": [{"var": "x"}, 0]}, "neg", {"==": [{"var": "x"}, 0]}, "zero", "pos"]},
            {"x": 0},
            "zero",
        ),
        ({"==": [1, "1"]}, {}, True),
        ({"===": [1, "1"]}, {}, False),
        ({"<": [1, {"var": "x"}, 3]}, {"x": 2}, True),
        ({"<=": [1, {"var": "x"}, 3]}, {"x": 3}, True),
        ({"and": [True, {"!": [False]}, {"!!": [[1]]}]}, {}, True),
        ({"or": [False, 0, "x"]}, {}, "x"),
        ({"+": [1, 2, 3]}, {}, 6),
        ({"%": [7, 3]}, {}, 1),
        ({"max": [1, 9, 3]}, {}, 9),
        ({"map": [{"var": "l"}, {"*": [{"var": ""}, 2]}]}, {"l": [1, 2]}, [2, 4]),
        ({"filter": [{"var": "l"}, {">": [{"var": ""}, 1]}]}, {"l": [1, 2, 3]}, [2, 3]),
        (
            {"reduce": [{"var": "l"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]},
            {"l": [1, 2, 3]},
            6,
        ),
        ({"all": [{"var": "l"}, {">": [{"var": ""}, 0]}]}, {"l": [1, 2]}, True),
        ({"some": [{"var": "l"}, {">": [{"var": ""}, 1]}]}, {"l": [1, 2]}, True),
        ({"none": [{"var": "l"}, {">": [{"var": ""}, 5]}]}, {"l": [1, 2]}, True),
        ({"merge": [[1], [2, [3]]]}, {}, [1, 2, [3]]),
        ({"in": ["hire_faster", {"var": "outcomes"}]}, {"outcomes": ["hire_faster"]}, True),
        ({"in": ["Spring", "Springfield"]}, {}, True),
        ({"cat": ["I love ", {"var": "x"}]}, {"x": "pie"}, "I love pie"),
        ({"substr": ["jsonlogic", -5]}, {}, "logic"),
    ],
)
def test_evaluate_has_full_jsonlogic_semantics(condition: Any, data: Any, expected: Any) -> None:
    assert evaluate(condition, data) == expected


def test_invalid_condition_is_rejected_with_its_pointer() -> None:
    with pytest.raises(InvalidCondition) as caught:
        validate_condition({"and": [True, {"no_such_operator": [1]}]})
    assert any("no_such_operator" in message for message in caught.value.errors.values())


def test_overly_deep_condition_is_rejected() -> None:
    deep: Any = True
    for _ in range(40):
        deep = {"!": [deep]}
    with pytest.raises(InvalidCondition, match="levels deep"):
        validate_condition(deep)


def rule(name: str, condition: Any, priority: int = 100, stop: bool = False, **action: Any) -> RuleSpec:
    return RuleSpec(name, condition, ({"type": "create_plan", **action},), priority, stop)


def test_decide_orders_by_priority_and_stops_when_told() -> None:
    facts = {"outcomes": ["hire_faster"]}
    rules = [
        rule("fallback", True, priority=1, template="generic"),
        rule("hire faster", {"in": ["hire_faster", {"var": "outcomes"}]}, 200, stop=True, template="fast"),
        rule("never", False, priority=300, template="none"),
    ]
    decision = decide(facts, rules)
    assert [a.params["template"] for a in decision.actions] == ["fast"]
    assert [(t.rule, t.matched) for t in decision.trace] == [
        ("never", False),
        ("hire faster", True),
        ("fallback", False),
    ]
    assert "stops processing" in decision.trace[-1].reason


def test_decide_is_deterministic_for_equal_priorities() -> None:
    rules = [rule("b", True, template="b"), rule("a", True, template="a")]
    assert [a.rule for a in decide({}, rules).actions] == ["a", "b"]
    assert decide({}, rules) == decide({}, list(reversed(rules)))


def test_decide_traces_a_condition_that_fails_to_evaluate_instead_of_raising() -> None:
    decision = decide({"x": "text"}, [rule("broken", {"throw": "boom"}, template="t")])
    assert decision.actions == ()
    assert decision.trace[0].matched is False


facts_strategy = st.fixed_dictionaries(
    {
        "outcomes": st.lists(st.sampled_from(["hire_faster", "hire_better", "keep_people"]), max_size=3),
        "objectives": st.lists(st.text(max_size=12), max_size=4),
        "answers": st.dictionaries(
            st.just("outcomes"),
            st.dictionaries(
                st.sampled_from(["nps", "role"]),
                st.one_of(st.integers(-5, 15), st.text(max_size=5), st.none()),
            ),
        ),
        "account": st.fixed_dictionaries(
            {
                "segment": st.sampled_from(["starter", "growth"]),
                "traits": st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=6))),
            }
        ),
        "events": st.dictionaries(
            st.sampled_from(["job_posted", "offer_accepted"]),
            st.fixed_dictionaries({"count": st.integers(0, 50)}),
        ),
    }
)
PLAYBOOK_LIKE_RULES = [
    rule(
        "detractor",
        {
            "and": [
                {"!=": [{"var": "answers.outcomes.nps"}, None]},
                {"<=": [{"var": "answers.outcomes.nps"}, 6]},
            ]
        },
        300,
    ),
    rule("fast", {"in": ["hire_faster", {"var": ["outcomes", []]}]}, 200, template="a"),
    rule("events", {">=": [{"var": "events.job_posted.count"}, 3]}, 150, template="b"),
    rule("math", {">": [{"+": [{"var": "account.traits.seats"}, 1]}, 10]}, 120, template="c"),
    rule("fallback", {"!!": [{"var": "outcomes"}]}, 100, template="d"),
]


@settings(max_examples=300, deadline=None)
@given(facts=facts_strategy)
def test_decide_never_raises_on_any_catalogue_shaped_facts(facts: dict[str, Any]) -> None:
    decision = decide(facts, PLAYBOOK_LIKE_RULES)
    assert len(decision.trace) == len(PLAYBOOK_LIKE_RULES)
