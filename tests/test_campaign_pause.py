"""A paused campaign enrols no one, advances no one and releases none of its deferred messages; on
resume its enrolments carry on where they were, each message sent exactly once. Both tick paths
(bulk and per-enrolment), on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns import builder
from campaigns.enrollment import PAUSED_REASON, enroll_account, wake_waiting_enrollments
from campaigns.guards import Caps
from campaigns.models import Enrollment, EnrollmentState, Message, MessageStatus
from campaigns.scheduler import run_tick
from campaigns.triggers import on_milestone_signal
from engine import refcache
from engine.playbook import import_playbook, resolve_playbook
from tests.factories import make_account
from tests.test_tick_bulk import CAPS, TICKS, build_scenario, enrollments, messages, summary

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday, 15:00 UTC
NO_CAPS = Caps(0, 0)
BOTH = pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "per-enrolment"])


def playbook(db: Session, *campaigns: dict[str, object]) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["campaigns"].extend({"name": str(c["key"]).title(), **c} for c in campaigns)
    import_playbook(db, yaml.safe_dump(document))


def pause(db: Session, key: str, paused: bool = True) -> None:
    builder.set_paused(db, key, paused)
    db.flush()
    refcache.clear()  # as another process would see it once the cache entry expires


def sent(db: Session) -> list[tuple[str, str]]:
    """(dedupe key, status) of every ledger row."""
    return sorted((k, s.value) for k, s in db.execute(select(Message.dedupe_key, Message.status)))


def state(db: Session, enrollment: Enrollment) -> tuple[object, ...]:
    db.refresh(enrollment)
    return (
        enrollment.state,
        enrollment.current_step,
        enrollment.step_started_at,
        enrollment.next_run_at,
        len(enrollment.history),
    )


@BOTH
def test_pause_then_resume_sends_each_message_exactly_once(db: Session, bulk: bool) -> None:
    playbook(db)
    account = make_account(db, "acme")
    enrollment, created = enroll_account(db, account.id, "nurture", now=NOW, reason="test")
    assert created
    pause(db, "nurture")

    held = run_tick(db, now=NOW, caps=NO_CAPS, bulk=bulk)
    assert (held.enrollments, held.steps_run, held.messages_queued, held.batches) == (0, 0, 0, [])
    assert sent(db) == []
    before = state(db, enrollment)
    assert before[0] is EnrollmentState.ACTIVE and before[1] == 0 and before[3] == NOW  # still due
    # A later tick while paused: still nothing, and the enrolment is untouched.
    assert run_tick(db, now=NOW + dt.timedelta(hours=3), caps=NO_CAPS, bulk=bulk).enrollments == 0
    assert state(db, enrollment) == before and sent(db) == []

    pause(db, "nurture", False)
    later = NOW + dt.timedelta(hours=4)
    resumed = run_tick(db, now=later, caps=NO_CAPS, bulk=bulk)
    assert resumed.enrollments == 1
    assert resumed.messages_queued == 2 and len(resumed.batches) == 1  # welcome to sofia and johnny
    first = sent(db)
    assert len(first) == 3  # the two welcome emails and the champion's in-app card
    assert len({key for key, _ in first}) == 3
    db.refresh(enrollment)
    assert enrollment.state is EnrollmentState.WAITING  # on to wait_first_job, where it left off

    again = run_tick(db, now=later + dt.timedelta(minutes=1), caps=NO_CAPS, bulk=bulk)
    assert (again.enrollments, again.messages_queued, again.messages_existing) == (0, 0, 0)
    assert sent(db) == first


@BOTH
def test_a_paused_campaign_holds_a_running_enrolment_at_its_step(db: Session, bulk: bool) -> None:
    playbook(db)
    account = make_account(db, "acme")
    enrollment, _ = enroll_account(db, account.id, "nurture", now=NOW, reason="test")
    run_tick(db, now=NOW, caps=NO_CAPS, bulk=bulk)  # welcome sent; now waiting for a job or 7 days
    welcome = sent(db)
    pause(db, "nurture")
    # The wait times out during the pause, and a plan signal wakes it: still nothing moves.
    assert wake_waiting_enrollments(db, [account.id], now=NOW + dt.timedelta(days=8)) == 1
    before = state(db, enrollment)
    held = run_tick(db, now=NOW + dt.timedelta(days=8), caps=NO_CAPS, bulk=bulk)
    assert held.enrollments == 0 and state(db, enrollment) == before and sent(db) == welcome

    pause(db, "nurture", False)
    resumed = run_tick(db, now=NOW + dt.timedelta(days=8, minutes=5), caps=NO_CAPS, bulk=bulk)
    assert resumed.enrollments == 1 and resumed.messages_queued >= 1  # next_step, once
    after = sent(db)
    assert set(welcome) < set(after) and len({k for k, _ in after}) == len(after)


@BOTH
def test_deferred_messages_of_a_paused_campaign_are_not_released(db: Session, bulk: bool) -> None:
    window = {"start_hour": 9, "end_hour": 17, "weekdays_only": True}
    steps = [{"key": "hello", "kind": "email", "template": "next_step", "to": ["champion"]}]
    playbook(db, {"key": "daytime", "send_window": window, "steps": steps})
    account = make_account(db, "acme")
    enroll_account(db, account.id, "daytime", now=NOW, reason="test")
    night = NOW + dt.timedelta(hours=5)  # 20:00 UTC: outside the window
    account.timezone = "UTC"
    db.flush()
    assert run_tick(db, now=night, caps=NO_CAPS, bulk=bulk).messages_deferred == 1
    pause(db, "daytime")
    morning = NOW + dt.timedelta(hours=19)  # Tuesday 10:00 UTC: the window is open
    held = run_tick(db, now=morning, caps=NO_CAPS, bulk=bulk)
    assert (held.messages_released, held.batches) == (0, [])
    assert [s for _, s in sent(db)] == ["deferred"]

    pause(db, "daytime", False)
    released = run_tick(db, now=morning + dt.timedelta(minutes=1), caps=NO_CAPS, bulk=bulk)
    assert released.messages_released == 1 and len(released.batches) == 1
    assert [s for _, s in sent(db)] == ["queued"]
    assert run_tick(db, now=morning + dt.timedelta(minutes=2), caps=NO_CAPS, bulk=bulk).batches == []


def test_a_paused_campaign_enrols_no_one(db: Session, caplog: pytest.LogCaptureFixture) -> None:
    slips = {"key": "slips", "trigger": {"signal": "milestone_slipped"}, "steps": steps_exit()}
    playbook(db, {"key": "again", "reentry_days": 1, "steps": steps_exit()}, slips)
    acme, initech = make_account(db, "acme"), make_account(db, "initech")
    running, _ = enroll_account(db, initech.id, "nurture", now=NOW, reason="test")
    finished, _ = enroll_account(db, initech.id, "again", now=NOW, reason="test")
    run_tick(db, now=NOW, caps=NO_CAPS)
    db.refresh(finished)
    assert finished.state is EnrollmentState.EXITED
    pause(db, "nurture")
    pause(db, "again")
    enrolments = db.scalar(select(func.count(Enrollment.id)))

    with caplog.at_level(logging.INFO, logger="campaigns.enrollment"):
        # A rule's enroll action: nothing stored, and the answer says why.
        refused, created = enroll_account(db, acme.id, "nurture", now=NOW, reason="rule 'Hire faster'")
        assert not created and refused.id is None and refused not in db
        assert refused.state is EnrollmentState.EXITED and refused.exited_reason == PAUSED_REASON
        assert refused.campaign.key == "nurture"
        # Already in it: the enrolment is unchanged.
        kept, created = enroll_account(db, initech.id, "nurture", now=NOW, reason="rule 'Hire faster'")
        assert not created and kept.id == running.id
        # Finished, and re-entry is due: no re-entry while paused.
        later = NOW + dt.timedelta(days=3)
        kept, created = enroll_account(db, initech.id, "again", now=later, reason="rule 'Again'")
        assert not created and kept.id == finished.id and kept.entry == 1
    db.flush()
    assert db.scalar(select(func.count(Enrollment.id))) == enrolments
    assert "campaign 'nurture' is paused: account" in caplog.text
    assert "rule 'Hire faster'" in caplog.text

    # Nor does a plan trigger, nor a tick.
    pause(db, "slips")
    pause(db, "milestone_slipped")  # the bundled playbook's campaign on the same signal
    assert on_milestone_signal(db, "milestone_slipped", account_id=acme.id, milestone_key="x", now=NOW) == 0
    assert db.scalar(select(func.count(Enrollment.id))) == enrolments
    assert run_tick(db, now=NOW + dt.timedelta(hours=1), caps=NO_CAPS).enrollments == 0

    pause(db, "nurture", False)
    _, created = enroll_account(db, acme.id, "nurture", now=NOW, reason="rule 'Hire faster'")
    assert created


def steps_exit() -> list[dict[str, str]]:
    return [{"key": "bye", "kind": "exit"}]


def test_the_other_campaigns_run_while_one_is_paused(db: Session) -> None:
    steps = [{"key": "tip", "kind": "in_app", "template": "plan_ready_card", "to": ["champion"]}]
    playbook(db, {"key": "tips", "steps": steps})
    account = make_account(db, "acme")
    for key in ("nurture", "tips"):
        enroll_account(db, account.id, key, now=NOW, reason="test")
    pause(db, "nurture")
    result = run_tick(db, now=NOW, caps=NO_CAPS)
    assert result.enrollments == 1 and result.messages_queued == 0
    rows = db.scalars(select(Message)).all()
    assert [(m.channel, m.status) for m in rows] == [("in_app", MessageStatus.QUEUED)]


def run_with_a_pause(db: Session, *, bulk: bool) -> dict[str, object]:
    """test_tick_bulk's ticks with `diff_flow` paused from the second tick to the fifth, rolled back."""
    savepoint = db.begin_nested()
    results = []
    for n, (when, _) in enumerate(TICKS):
        if n in (1, 5):
            pause(db, "diff_flow", n == 1)
        result = run_tick(db, now=when, caps=CAPS, bulk=bulk, chunk=7)
        db.flush()
        results.append(summary(db, result))
    found = {"ticks": results, "messages": messages(db), "enrollments": enrollments(db)}
    savepoint.rollback()
    db.expire_all()
    refcache.clear()
    return found


def test_both_tick_paths_hold_and_resume_a_paused_campaign_alike(db: Session) -> None:
    build_scenario(db)
    each = run_with_a_pause(db, bulk=False)
    bulk = run_with_a_pause(db, bulk=True)
    assert bulk["messages"] == each["messages"]
    assert bulk["enrollments"] == each["enrollments"]
    assert bulk["ticks"] == each["ticks"]
    # While paused no diff_flow message was written or released; after resume its runs went on.
    written = {key.split(":")[0]: row for key, row in each["messages"].items()}  # type: ignore[attr-defined]
    assert any(key.endswith("/diff_flow") for key in written)
    for key, row in each["messages"].items():  # type: ignore[attr-defined]
        if key.split(":")[0].endswith("/diff_flow"):
            created, released = row[4], row[7].get("released_at")
            assert not (TICKS[1][0] <= created < TICKS[5][0]), key
            assert released is None or not (TICKS[1][0].isoformat() <= released < TICKS[5][0].isoformat())
