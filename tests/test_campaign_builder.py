"""The campaign builder's domain on the real database: a new campaign as a draft, saving with a
version check (a stale save is refused, never overwrites), validation keyed by step and field,
publishing as a new version while running enrolments keep theirs, pause/resume, entry rules and
the live counts per step."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import builder
from campaigns.enrollment import enroll_account
from campaigns.models import Campaign, CampaignVersion, Enrollment, EnrollmentState
from campaigns.scheduler import run_tick
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.playbook import import_playbook, resolve_playbook
from tests.factories import make_account

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)
USER = "erin@northstar.example"


@pytest.fixture
def playbook(db: Session) -> Session:
    import_playbook(db, resolve_playbook("recruiting")[1])
    return db


def onboarding(**changes: Any) -> dict[str, Any]:
    """An email, a wait for the first job posted (a week at most, else a reminder), an exit."""
    document: dict[str, Any] = {
        "name": "Onboarding nudge",
        "steps": [
            {"key": "hello", "kind": "email", "template": "welcome_plan", "to": ["champion"]},
            {
                "key": "first_job",
                "kind": "wait_until",
                "milestone": "first_job_posted",
                "timeout_days": 7,
                "on_timeout": "remind",
            },
            {"key": "done", "kind": "exit"},
            {"key": "remind", "kind": "email", "template": "next_step"},
        ],
        "reentry_days": 30,
        "send_window": {"start_hour": 9, "end_hour": 17, "weekdays_only": True},
        "holdout_percent": 10,
    }
    document.update(changes)
    return document


def created(db: Session, key: str = "onboarding") -> builder.DraftView:
    return builder.create_campaign(db, key, "Onboarding nudge", user=USER, now=NOW)


def test_a_new_campaign_is_a_draft_that_publishes_as_version_1(playbook: Session) -> None:
    draft = created(playbook)
    assert draft.has_draft and draft.campaign is None and draft.etag == "0.1"
    assert playbook.scalar(select(Campaign).where(Campaign.key == "onboarding")) is None

    saved = builder.save_draft(playbook, "onboarding", onboarding(), expected="0.1", user=USER, now=NOW)
    assert saved.etag == "0.2"
    assert [s["key"] for s in saved.document["steps"]] == ["hello", "first_job", "done", "remind"]

    version = builder.publish_draft(
        playbook, "onboarding", expected="0.2", note="first cut", user=USER, now=NOW
    )
    campaign = playbook.scalar(select(Campaign).where(Campaign.key == "onboarding"))
    assert campaign is not None and campaign.version == version.version == 1
    assert [(s.key, s.kind.value) for s in campaign.steps] == [
        ("hello", "email"),
        ("first_job", "wait_until"),
        ("done", "exit"),
        ("remind", "email"),
    ]
    assert version.settings["send_window"] == {"start_hour": 9, "end_hour": 17, "weekdays_only": True}
    assert version.settings["holdout_percent"] == 10 and version.settings["reentry_days"] == 30
    assert version.note == f"first cut ({USER})" and version.published_at == NOW
    after = builder.get_draft(playbook, "onboarding")
    assert not after.has_draft and after.etag == "1.0"  # the builder now starts from version 1


def test_a_stale_save_is_refused_and_overwrites_nothing(playbook: Session) -> None:
    created(playbook)
    builder.save_draft(
        playbook, "onboarding", onboarding(name="Theirs"), expected="0.1", user="olga", now=NOW
    )
    with pytest.raises(builder.StaleDraft) as refused:
        builder.save_draft(
            playbook, "onboarding", onboarding(name="Mine"), expected="0.1", user=USER, now=NOW
        )
    assert isinstance(refused.value, Conflict) and refused.value.status == 409
    assert "someone else saved this draft (olga)" in refused.value.detail
    assert refused.value.extra["etag"] == "0.2"
    assert builder.get_draft(playbook, "onboarding").document["name"] == "Theirs"
    with pytest.raises(builder.StaleDraft):
        builder.publish_draft(playbook, "onboarding", expected="0.1", note="", user=USER, now=NOW)


def test_a_draft_of_an_older_version_cannot_be_published_over_a_newer_one(playbook: Session) -> None:
    nurture = builder.get_draft(playbook, "nurture")
    assert nurture.etag == "1.0" and not nurture.has_draft
    document = dict(nurture.document, name="Nurture, reworded")
    builder.save_draft(playbook, "nurture", document, expected="1.0", user=USER, now=NOW)
    campaign = playbook.scalar(select(Campaign).where(Campaign.key == "nurture"))
    assert campaign is not None
    campaign.version = 2  # a playbook import published version 2 meanwhile
    with pytest.raises(builder.StaleDraft, match="version 2 was published after this draft"):
        builder.publish_draft(playbook, "nurture", expected=None, note="", user=USER, now=NOW)


def test_validation_names_the_step_and_field(playbook: Session) -> None:
    created(playbook)
    steps = onboarding()["steps"]
    steps[0] = {"key": "hello", "kind": "email", "template": "no_such_template", "content": ["nope"]}
    steps[1] = {"key": "first_job", "kind": "wait_until", "milestone": "first_jobb", "timeout_days": 7}
    steps.insert(
        2,
        {"key": "back", "kind": "branch", "condition": {"==": [{"var": "plan.statuss"}, 1]}, "else": "hello"},
    )
    steps.append({"kind": "wait", "days": "soon"})
    with pytest.raises(ValidationFailed) as failed:
        builder.save_draft(
            playbook, "onboarding", onboarding(steps=steps), expected="0.1", user=USER, now=NOW
        )
    errors = failed.value.errors
    assert errors["steps.0.template"] == "unknown template 'no_such_template'"
    assert errors["steps.0.content"] == "unknown content item 'nope'"
    assert errors["steps.1.milestone"] == "no plan template has a milestone 'first_jobb'"
    assert "goes back to 'hello'" in errors["steps.2.else"]
    assert errors["steps.2.condition/==/0"] == "unknown field 'plan.statuss'; did you mean 'plan.status'?"
    assert errors["steps.5.days"] == "Not a valid number."
    assert builder.get_draft(playbook, "onboarding").document["steps"] == []  # nothing was stored


def test_unreachable_steps_missing_content_and_wrong_template_kinds(playbook: Session) -> None:
    document = onboarding(
        steps=[
            {"key": "card", "kind": "in_app", "template": "welcome_plan"},
            {"key": "stop", "kind": "exit"},
            {"key": "never", "kind": "wait", "days": 2},
            {"key": "until", "kind": "wait_until", "event": "job_posted"},
            {"key": "which", "kind": "branch"},
        ],
        exit_when={"condition": {"in": ["x", {"var": "account.traits.nope"}]}},
        trigger={"signal": "milestone_achieved", "milestone": "moon_landing"},
        holdout_percent=80,
    )
    _, errors = builder.validate_document(playbook, document, key="nurture")
    assert "email template" in errors["steps.0.template"]
    assert "can never be reached" in errors["steps.2.kind"]
    assert "required for a wait_until step" in errors["steps.3.timeout_days"]
    assert errors["steps.4.condition"] == "required for a branch step"
    assert "exit_when.condition/in/1" in errors
    assert errors["trigger.milestone"] == "no plan template has a milestone 'moon_landing'"
    assert "holdout_percent" in errors


def test_bad_step_keys_and_missing_templates_say_what_is_needed(playbook: Session) -> None:
    document = onboarding(
        steps=[
            {"key": "Say Hello!", "kind": "wait", "days": 1},
            {"key": "hello", "kind": "email"},
            {"key": "card", "kind": "in_app"},
            {"key": "done", "kind": "exit"},
        ]
    )
    _, errors = builder.validate_document(playbook, document, key="nurture")
    assert errors["steps.0.key"] == (
        "use lower-case letters, digits, '-' and '_', starting with a letter (at most 80 characters)"
    )
    assert errors["steps.1.template"] == "required for an email step"
    assert errors["steps.2.template"] == "required for an in-app step"
    assert not any("expected pattern" in message for message in errors.values())


def test_steps_without_a_key_are_named_and_bad_shapes_are_errors_not_crashes(playbook: Session) -> None:
    normalized, errors = builder.validate_document(
        playbook, onboarding(steps=[{"kind": "wait", "days": 1}, {"kind": "exit"}]), key="nurture"
    )
    assert errors == {} and [s["key"] for s in normalized["steps"]] == ["wait_1", "exit_2"]
    for bad in (None, [], "x", {"steps": "x"}, {"name": "n", "steps": [1, None, {"kind": "teleport"}]}):
        assert builder.validate_document(playbook, bad, key="nurture")[1]
    _, errors = builder.validate_document(playbook, onboarding(key="other"), key="nurture")
    assert errors == {"key": "the key is 'nurture': a campaign's key never changes"}


def test_publishing_a_new_version_leaves_running_enrolments_on_theirs(playbook: Session) -> None:
    account = make_account(playbook, "acme")
    enrollment, _ = enroll_account(playbook, account.id, "milestone_slipped", now=NOW, reason="test")
    draft = builder.get_draft(playbook, "milestone_slipped")
    steps = draft.document["steps"]
    document = dict(
        draft.document, steps=[*steps[:-1], {"key": "pause", "kind": "wait", "days": 1}, steps[-1]]
    )
    builder.save_draft(playbook, "milestone_slipped", document, expected=draft.etag, user=USER, now=NOW)
    version = builder.publish_draft(playbook, "milestone_slipped", expected=None, note="", user=USER, now=NOW)
    assert version.version == 2 and enrollment.campaign_version == 1
    stats = builder.campaign_stats(playbook, version.campaign)
    assert [(v.version, v.current, v.running) for v in stats] == [(2, True, 0), (1, False, 1)]
    assert stats[1].steps[0].by_state == {"active": 1}


def test_create_refuses_bad_and_taken_keys(playbook: Session) -> None:
    with pytest.raises(ValidationFailed) as failed:
        builder.create_campaign(playbook, "Bad Key", "", user=USER, now=NOW)
    assert set(failed.value.errors) == {"key", "name"}
    with pytest.raises(ValidationFailed, match="already exists"):
        builder.create_campaign(playbook, "nurture", "Again", user=USER, now=NOW)
    with pytest.raises(NotFound):
        builder.get_draft(playbook, "nope")


def test_pause_resume_discard_and_nothing_to_publish(playbook: Session) -> None:
    assert builder.set_paused(playbook, "nurture", True).paused
    assert not builder.set_paused(playbook, "nurture", False).paused
    with pytest.raises(Conflict, match="no draft to publish"):
        builder.publish_draft(playbook, "nurture", expected=None, note="", user=USER, now=NOW)
    created(playbook)
    with pytest.raises(Conflict, match="not published yet"):
        builder.require_campaign(playbook, "onboarding")
    assert builder.discard_draft(playbook, "onboarding") and not builder.discard_draft(playbook, "onboarding")
    with pytest.raises(NotFound):
        builder.get_draft(playbook, "onboarding")


def test_live_counts_per_step_and_state_and_the_rules_that_enrol(playbook: Session) -> None:
    for external_id in ("acme", "globex", "initech"):
        account = make_account(playbook, external_id, contacts=())
        enroll_account(playbook, account.id, "milestone_slipped", now=NOW, reason="test")
    run_tick(playbook, now=NOW)
    campaign = playbook.scalar(select(Campaign).where(Campaign.key == "milestone_slipped"))
    assert campaign is not None
    [current] = builder.campaign_stats(playbook, campaign)
    assert current.current and sum(s.here for s in current.steps) + current.by_state.get("exited", 0) == 3
    states = playbook.execute(select(Enrollment.current_step, Enrollment.state)).all()
    for position, state in states:
        assert current.steps[position].by_state.get(EnrollmentState(state).value, 0) >= 1
    summaries = {s.key: s for s in builder.campaign_summaries(playbook)}
    assert sum(summaries["milestone_slipped"].counts.values()) == 3
    assert summaries["nurture"].status == "live"
    assert [r.name for r in builder.entry_rules(playbook, "nurture")] == [
        "Hire faster or hire better → hire-faster plan",
        "Field managers or retention → field-managers hiring plan",
        "Anyone who answered → hire-faster plan",
    ] or len(builder.entry_rules(playbook, "nurture")) == 3
    assert builder.stats_document(playbook, campaign)["versions"][0]["version"] == 1
    assert (
        playbook.scalar(select(CampaignVersion.version).where(CampaignVersion.campaign_id == campaign.id))
        == 1
    )


def test_an_unchanged_save_starts_no_draft_and_a_rename_makes_no_new_version(playbook: Session) -> None:
    nurture = builder.get_draft(playbook, "nurture")
    same = builder.save_draft(playbook, "nurture", nurture.document, expected="1.0", user=USER, now=NOW)
    assert not same.has_draft and same.etag == "1.0"
    renamed = builder.save_draft(
        playbook,
        "nurture",
        dict(nurture.document, name="Nurture (renamed)"),
        expected="1.0",
        user=USER,
        now=NOW,
    )
    assert renamed.has_draft
    version = builder.publish_draft(playbook, "nurture", expected=renamed.etag, note="", user=USER, now=NOW)
    campaign = version.campaign
    assert version.version == campaign.version == 1 and campaign.name == "Nurture (renamed)"
    assert not builder.get_draft(playbook, "nurture").has_draft
