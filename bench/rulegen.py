"""Realistic generated rules and facts for the rules benchmark (recruiting playbook vocabulary).

Facts have the shape of `engine.rules.facts.build_facts`: answers (keyed by survey), outcomes,
objectives, account (segment, tier, stage, traits) and events (`{"<name>": {"count": n}}`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from engine.rules import RuleSpec, validate_condition

OUTCOMES = ("hire_faster", "hire_better", "manager_control", "keep_people")
OBJECTIVES = {
    "careers_site_traffic": (8000, 12000),
    "applicant_conversion": (3, 3.5),
    "time_to_fill": (42, 30),
    "prescreened_candidates": (10, 15),
    "offer_acceptance": (75, 85),
    "field_manager_onboarding": (0, 100),
    "manager_satisfaction": (50, 75),
    "regrettable_attrition": (4, 3),
    "new_hire_onboarding": (80, 90),
}
EVENTS = (
    "job_posted",
    "application_received",
    "candidate_screened",
    "interview_scheduled",
    "offer_accepted",
    "manager_onboarded",
    "new_hire_started",
)
SEGMENTS = ("starter", "growth", "enterprise")
STAGES = ("onboarding", "enablement", "adoption", "optimisation", "renewal")
REGIONS = ("emea", "amer", "apac")
TAGS = ("detractor", "champion_left", "expansion", "at_risk", "reference")
CAMPAIGNS = ("nurture", "onboarding_boost", "exec_checkin", "win_back")
TEMPLATES = ("hire_faster_plan", "field_hiring_plan")

Clause = Callable[[random.Random], Any]


def _var(path: str, default: Any = None) -> dict[str, Any]:
    return {"var": [path, default]} if default is not None else {"var": path}


CLAUSES: tuple[Clause, ...] = (
    lambda r: {"in": [r.choice(OUTCOMES), _var("outcomes", [])]},
    lambda r: {"in": [r.choice(list(OBJECTIVES)), _var("objectives", [])]},
    lambda r: {
        "and": [
            {"!==": [_var("answers.outcomes.nps"), None]},
            {"<=": [_var("answers.outcomes.nps"), r.choice((5, 6))]},
        ]
    },
    lambda r: {">=": [_var("answers.outcomes.nps", 0), r.choice((9, 10))]},
    lambda r: {"==": [_var("account.segment"), r.choice(SEGMENTS)]},
    lambda r: {">=": [_var("account.traits.seats", 0), r.choice((25, 50, 100, 150))]},
    lambda r: {"in": [_var("account.lifecycle_stage"), r.sample(STAGES, 2)]},
    lambda r: {">=": [_var(f"events.{r.choice(EVENTS)}.count", 0), r.choice((1, 5, 10, 25))]},
    lambda r: {"!": [_var(f"events.{r.choice(EVENTS)}.count")]},
    lambda r: {"==": [_var("answers.outcomes.role"), r.choice(("exec", "leader", "user"))]},
    lambda r: {"==": [_var("account.traits.region"), r.choice(REGIONS)]},
    lambda r: {"in": [r.choice(TAGS), _var("account.traits.tags", [])]},
    lambda r: _ambitious(r.choice(list(OBJECTIVES)), r.choice((1.2, 1.3, 1.5))),
    lambda r: {"some": [_var("objectives", []), {"in": [{"var": ""}, r.sample(list(OBJECTIVES), 3)]}]},
    lambda r: {"or": [{"!!": [_var("outcomes")]}, {"!!": [_var("objectives")]}]},
    lambda r: {"==": [_var("account.plan_tier"), r.choice(("team", "pro", "enterprise"))]},
)


def _ambitious(objective: str, factor: float) -> dict[str, Any]:
    """The customer's own target is at least `factor` × their baseline."""
    kr = f"answers.outcomes.key_results.{objective}"
    return {">=": [_var(f"{kr}.target", 0), {"*": [{"max": [_var(f"{kr}.baseline", 1), 1]}, factor]}]}


def _action(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(("tag_account", "enroll", "create_plan", "assign_content"))
    if kind == "tag_account":
        return {"type": kind, "value": rng.choice(TAGS)}
    if kind == "enroll":
        return {"type": kind, "campaign": rng.choice(CAMPAIGNS)}
    if kind == "create_plan":
        return {"type": kind, "template": rng.choice(TEMPLATES)}
    return {"type": kind, "content": f"item-{rng.randint(1, 40)}"}


def make_rules(n: int, seed: int = 42) -> list[RuleSpec]:
    """`n` rules of 1–4 clauses joined by and/or (sometimes one nested group or a negation);
    none stops processing, so every decision evaluates all `n` conditions (the worst case)."""
    rng = random.Random(seed)
    rules: list[RuleSpec] = []
    for i in range(n):
        clauses = [rng.choice(CLAUSES)(rng) for _ in range(rng.randint(1, 4))]
        if len(clauses) >= 3 and rng.random() < 0.4:
            clauses = [clauses[0], {"or": clauses[1:]}]
        condition: Any = clauses[0] if len(clauses) == 1 else {rng.choice(("and", "or")): clauses}
        if rng.random() < 0.1:
            condition = {"!": [condition]}
        validate_condition(condition, pointer=f"/rules/{i}/condition")
        actions = tuple(_action(rng) for _ in range(rng.randint(1, 2)))
        rules.append(RuleSpec(f"rule {i:02d}", condition, actions, priority=rng.randint(50, 300)))
    return rules


def make_facts(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [_facts(rng, i) for i in range(n)]


def _facts(rng: random.Random, i: int) -> dict[str, Any]:
    outcomes = rng.sample(OUTCOMES, rng.randint(0, 2))
    objectives = rng.sample(list(OBJECTIVES), rng.randint(0, 3))
    answers: dict[str, Any] = {
        "outcomes": outcomes,
        "objectives": objectives,
        "key_results": {
            key: {
                "baseline": OBJECTIVES[key][0],
                "target": round(OBJECTIVES[key][1] * rng.uniform(0.8, 1.6), 1),
                "due_date": f"2027-0{rng.randint(1, 9)}-15",
            }
            for key in objectives
        },
        "role": rng.choice(("exec", "leader", "user")),
        "nps": rng.choice((None, *range(11))),
    }
    if rng.random() < 0.3:
        answers["comment"] = "Hiring managers take a week to review shortlists."
    return {
        "answers": {"outcomes": answers},
        "outcomes": sorted(outcomes),
        "objectives": objectives,
        "account": {
            "external_id": f"acct-{i:06d}",
            "segment": rng.choice(SEGMENTS),
            "plan_tier": rng.choice(("team", "pro", "enterprise", None)),
            "lifecycle_stage": rng.choice(STAGES),
            "traits": {
                "seats": rng.randint(3, 400),
                "region": rng.choice(REGIONS),
                "industry": rng.choice(("retail", "hospitality", "logistics", "healthcare")),
                "tags": rng.sample(TAGS, rng.randint(0, 2)),
            },
        },
        "events": {name: {"count": rng.randint(0, 40)} for name in rng.sample(EVENTS, rng.randint(0, 6))},
    }
