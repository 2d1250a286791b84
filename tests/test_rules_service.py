"""Rule sets as ops work on them: draft → validate → simulate → publish → rollback, static findings,
and the new actions applied idempotently — on the real database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import Enrollment, EnrollmentState
from engine.automation import rerun_rules
from engine.errors import Conflict
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook, resolve_playbook
from engine.rules import RuleSpec
from engine.rules import service as rules
from engine.rules.analysis import analyse
from engine.rules.models import RuleSetStatus, published_ruleset
from surveys.service import ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
RECRUITING = resolve_playbook("recruiting")[1]


def rule(
    name: str, condition: Any, *actions: dict[str, Any], priority: int = 100, stop: bool = False
) -> dict:
    return {
        "name": name,
        "description": "",
        "priority": priority,
        "condition": condition,
        "actions": list(actions) or [{"type": "tag_account", "value": "x"}],
        "stop": stop,
    }


@pytest.fixture
def playbook(db: Session) -> Session:
    import_playbook(db, RECRUITING)
    db.flush()
    return db


def answer(db: Session, external_id: str, outcomes: list[str], nps: int = 9) -> None:
    answers = outcomes_answers(NOW.date()) | {"outcomes": outcomes, "nps": nps}
    if "keep_people" in outcomes:
        answers["objectives"], answers["key_results"] = ["new_hire_onboarding"], {}
    payload = ResponseIn(client_response_id=f"response-{external_id}", account=external_id, answers=answers)
    submit_response(db, "outcomes", payload, now=NOW)


def test_a_draft_starts_as_a_copy_of_the_published_rules_and_only_drafts_change(playbook: Session) -> None:
    live = published_ruleset(playbook)
    assert live is not None
    draft = rules.start_draft(playbook, user="ops@example.com")
    assert draft.status is RuleSetStatus.DRAFT and draft.based_on_version == live.version
    assert [r.name for r in draft.rules] == [r.name for r in live.rules]
    assert rules.start_draft(playbook) is draft  # one draft at a time
    with pytest.raises(Conflict):
        rules.save_rule(playbook, live, rule("new", True))


def test_saving_a_bad_rule_names_every_error_by_json_pointer(playbook: Session) -> None:
    draft = rules.start_draft(playbook)
    bad = rule(
        "bad",
        {"and": [{"==": [{"var": "account.segment"}, "smb"]}, {"bogus": [1]}]},
        {"type": "create_plan", "template": "no_such_template"},
        {"type": "enroll", "campaign": "ghost"},
        {"type": "fly"},
    )
    with pytest.raises(rules.RuleInvalid) as caught:
        rules.save_rule(playbook, draft, bad)
    errors = caught.value.errors
    assert "/actions/0/template" in errors and "no_such_template" in errors["/actions/0/template"]
    assert "/actions/1/campaign" in errors
    assert "/actions/2/type" in errors
    assert any(p.startswith("/condition") for p in errors)
    with pytest.raises(rules.RuleInvalid) as caught:
        rules.save_rule(playbook, draft, rule(draft.rules[0].name, True))
    assert "/name" in caught.value.errors


def test_publish_is_atomic_and_rollback_publishes_a_copy(playbook: Session) -> None:
    v1 = published_ruleset(playbook)
    assert v1 is not None
    draft = rules.start_draft(playbook, user="ops@example.com")
    rules.save_rule(playbook, draft, rule("Everyone → tag", True, priority=999))
    published = rules.publish(playbook, draft, user="lead@example.com", note="tag everyone")
    assert published.status is RuleSetStatus.PUBLISHED and published.published_by == "lead@example.com"
    assert playbook.get(type(v1), v1.id).status is RuleSetStatus.ARCHIVED  # type: ignore[union-attr]
    assert published_ruleset(playbook) is published
    back = rules.rollback(playbook, v1.version, user="lead@example.com")
    assert back.version == published.version + 1 and back.based_on_version == v1.version
    assert [r.name for r in back.rules] == [r.name for r in v1.rules]
    assert [s.status for s in rules.history(playbook)][:3] == [
        RuleSetStatus.PUBLISHED,
        RuleSetStatus.ARCHIVED,
        RuleSetStatus.ARCHIVED,
    ]
    with pytest.raises(Conflict):
        rules.rollback(playbook, back.version)


def test_an_invalid_draft_cannot_be_published(playbook: Session) -> None:
    draft = rules.start_draft(playbook)
    draft.rules[0].condition = {"==": [{"var": "no.such.field"}, 1]}
    playbook.flush()
    with pytest.raises(rules.RuleInvalid) as caught:
        rules.publish(playbook, draft)
    assert any(p.startswith("/rules/0/condition") for p in caught.value.errors)
    assert playbook.get(type(draft), draft.id).status is RuleSetStatus.DRAFT  # type: ignore[union-attr]


def test_simulate_diffs_the_draft_against_the_published_rules(playbook: Session) -> None:
    for i in range(6):
        make_account(playbook, f"acct-{i}", segment="smb" if i % 2 else "mid")
        answer(playbook, f"acct-{i}", ["hire_faster"] if i < 3 else ["keep_people"])
    draft = rules.start_draft(playbook)
    # Drop the field-managers rule: its accounts fall back to the hire-faster plan.
    field_rule = next(r for r in draft.rules if "field" in r.name.lower())
    rules.delete_rule(playbook, draft, field_rule.id)
    rules.save_rule(
        playbook,
        draft,
        rule(
            "SMB → tag",
            {"==": [{"var": "account.segment"}, "smb"]},
            {"type": "tag_account", "value": "smb"},
            priority=500,
        ),
    )
    result = rules.simulate(playbook, draft, now=NOW, sample=None)
    assert result.accounts_evaluated == 6 and result.against_version == published_ruleset(playbook).version  # type: ignore[union-attr]
    by_effect = {e.effect: e for e in result.effects}
    assert by_effect["create_plan:field_hiring_plan"].lost == 3
    assert by_effect["create_plan:hire_faster_plan"].gained == 3
    assert by_effect["tag_account:smb"].gained == 3
    assert result.accounts_changed == 4  # smb: 1, 3, 5; field plan: 3, 4, 5
    changed = {c.external_id: c for c in result.changes}
    assert "create_plan:field_hiring_plan" in changed["acct-4"].lost
    assert result.to_dict()["effects"]


def test_test_account_returns_facts_and_both_traces(playbook: Session) -> None:
    make_account(playbook, "acme", segment="smb", seats=40)
    answer(playbook, "acme", ["hire_faster"], nps=4)
    draft = rules.start_draft(playbook)
    result = rules.test_account(playbook, draft, "acme", now=NOW)
    assert result.facts["account"]["traits"]["seats"] == 40
    assert result.facts["outcomes"] == ["hire_faster"]
    assert result.facts["plan"]["exists"] is True
    assert result.facts["answers"]["outcomes"]["nps"] == 4
    assert result.published is not None
    assert [t.rule for t in result.decision.trace] == [t.rule for t in result.published.trace]
    assert result.decision.trace[0].matched  # the detractor rule


def test_new_actions_apply_once_and_rerunning_changes_nothing(playbook: Session) -> None:
    make_account(playbook, "acme")
    answer(playbook, "acme", ["hire_faster"])
    draft = rules.start_draft(playbook)
    rules.save_rule(
        playbook,
        draft,
        rule(
            "Everyone with a plan",
            {"var": "plan.exists"},
            {"type": "add_objective", "key": "time_to_fill", "target": 20, "due_in_days": 60},
            {"type": "add_milestone", "key": "kickoff", "title": "Kick-off call held", "due_in_days": 7},
            {"type": "assign_content", "tag": "onboarding"},
            {"type": "exit", "campaign": "nurture"},
            priority=1000,
        ),
    )
    rules.publish(playbook, draft)
    account = make_account(playbook, "acme")
    for _ in range(2):
        rerun_rules(playbook, account, now=NOW)
    plan = playbook.scalar(select(SuccessPlan).where(SuccessPlan.account_id == account.id))
    assert plan is not None
    assert [kr.objective_key for kr in plan.key_results].count("time_to_fill") == 1
    assert [m.key for m in plan.milestones].count("kickoff") <= 1
    assert account.traits["content_tags"] == ["onboarding"]
    enrollment = playbook.scalar(select(Enrollment).where(Enrollment.account_id == account.id))
    assert enrollment is not None and enrollment.state is EnrollmentState.EXITED
    assert sum(1 for r in plan.revisions if "time_to_fill" in str(r.change)) == 1


def spec(name: str, condition: Any, template: str | None = None, priority: int = 100, stop: bool = False):
    actions = (
        ({"type": "create_plan", "template": template},)
        if template
        else ({"type": "tag_account", "value": "t"},)
    )
    return RuleSpec(name, condition, actions, priority, stop)


def test_analysis_finds_contradictions_unreachable_rules_and_plan_conflicts() -> None:
    seats = {"var": "account.traits.seats"}
    findings = analyse(
        [
            spec("contradiction", {"and": [{">": [seats, 50]}, {"<": [seats, 10]}]}),
            spec(
                "two segments",
                {
                    "and": [
                        {"==": [{"var": "account.segment"}, "smb"]},
                        {"==": [{"var": "account.segment"}, "mid"]},
                    ]
                },
            ),
            spec("big", {">=": [seats, 100]}, "plan_a", priority=50),
            spec("huge", {">": [seats, 500]}, "plan_b", priority=40),
            spec("small", {"<": [seats, 10]}, "plan_c", priority=30),
            spec("catch all", True, "plan_a", priority=20, stop=True),
            spec("after catch all", {"var": "outcomes"}, priority=10),
        ]
    )
    kinds = {(f.kind, f.rules) for f in findings}
    assert ("never_matches", ("contradiction",)) in kinds
    assert ("never_matches", ("two segments",)) in kinds
    assert ("conflict", ("big", "huge")) in kinds  # seats > 500 satisfies both
    assert ("conflict", ("big", "small")) not in kinds  # disjoint ranges
    assert ("unreachable", ("after catch all",)) in kinds
    message = next(f.message for f in findings if f.rules == ("contradiction",))
    assert "account.traits.seats" in message


def test_the_bundled_playbook_has_no_warnings_but_reports_its_priority_resolved_overlaps(
    playbook: Session,
) -> None:
    live = published_ruleset(playbook)
    assert live is not None
    report = rules.validate_ruleset(playbook, live)
    assert report.ok
    assert not [f for f in report.findings if f.severity == "warning"]
    assert any(f.kind == "conflict" and f.severity == "info" for f in report.findings)
