"""Campaigns v2 on the real database: versions, branches, every wait_until kind with its timeout
branch, exit criteria, re-entry, holdouts, frequency caps, send windows across time zones and DST,
plan-signal triggers, the audit trail on each message, and flows refused at save."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps, held_out, window_opens
from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus
from campaigns.scheduler import run_tick
from campaigns.triggers import fire_time_triggers
from engine.accounts import Account, ContactRole
from engine.events.service import EventIn, ingest_events
from engine.plans.models import MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.progress import refresh_plans
from engine.plans.service import create_plan, get_template
from engine.plans.updates import update_key_result
from engine.playbook import PlaybookInvalid, import_playbook, resolve_playbook
from tests.factories import make_account

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday, 15:00 UTC
RECRUITING = resolve_playbook("recruiting")[1]
NO_CAPS = Caps(0, 0)


def add_campaign(db: Session, **campaign: Any) -> None:
    document = yaml.safe_load(RECRUITING)
    campaign.setdefault("name", campaign["key"].title())
    document["campaigns"].append(campaign)
    import_playbook(db, yaml.safe_dump(document))


@pytest.fixture
def playbook(db: Session) -> Session:
    import_playbook(db, RECRUITING)
    return db


def account_with_plan(db: Session, external_id: str = "acme", **traits: Any) -> Account:
    account = make_account(
        db,
        external_id,
        contacts=(
            (f"champ@{external_id}.example", ContactRole.CHAMPION),
            (f"boss@{external_id}.example", ContactRole.EXEC_SPONSOR),
            (f"user@{external_id}.example", ContactRole.POWER_USER),
        ),
        **traits,
    )
    create_plan(db, account, get_template(db, "hire_faster_plan"), [], now=NOW)
    return account


def email(key: str, to: str = "champion") -> dict[str, Any]:
    return {"key": key, "kind": "email", "template": "next_step", "to": [to]}


def sent_steps(db: Session, account: Account) -> list[str]:
    rows = db.execute(
        select(Message.trace, Message.status)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(Enrollment.account_id == account.id)
        .order_by(Message.id)
    )
    return [f"{trace['step']}:{status.value}" for trace, status in rows]


def tick(db: Session, when: dt.datetime, caps: Caps = NO_CAPS) -> None:
    run_tick(db, now=when, caps=caps)
    db.flush()


def enrollment_of(db: Session, account: Account, key: str) -> Enrollment:
    return db.scalars(
        select(Enrollment).join(Campaign).where(Enrollment.account_id == account.id, Campaign.key == key)
    ).one()


def test_a_branch_follows_the_facts(playbook: Session) -> None:
    add_campaign(
        playbook,
        key="branchy",
        steps=[
            {
                "key": "big",
                "kind": "branch",
                "condition": {">=": [{"var": "account.traits.seats"}, 50]},
                "else": "small",
            },
            email("for-big"),
            {"key": "stop", "kind": "exit"},
            email("small"),
        ],
    )
    big, small = account_with_plan(playbook, "big", seats=80), account_with_plan(playbook, "small", seats=5)
    for account in (big, small):
        enroll_account(playbook, account.id, "branchy", now=NOW, reason="test")
    tick(playbook, NOW)
    assert sent_steps(playbook, big) == ["for-big:queued"]
    assert sent_steps(playbook, small) == ["small:queued"]
    assert enrollment_of(playbook, big, "branchy").state is EnrollmentState.EXITED
    assert enrollment_of(playbook, small, "branchy").state is EnrollmentState.COMPLETED
    branch = next(h for h in enrollment_of(playbook, big, "branchy").history if h["event"] == "branch")
    assert branch["matched"] is True


def test_wait_until_kinds_and_the_timeout_branch(playbook: Session) -> None:
    add_campaign(
        playbook,
        key="waits",
        steps=[
            {
                "key": "posted",
                "kind": "wait_until",
                "event": "job_posted",
                "count": 2,
                "timeout_days": 5,
                "on_timeout": "nudge",
            },
            email("celebrate"),
            {"key": "end", "kind": "exit"},
            email("nudge"),
        ],
    )
    fast, slow = account_with_plan(playbook, "fast"), account_with_plan(playbook, "slow")
    for account in (fast, slow):
        enroll_account(playbook, account.id, "waits", now=NOW, reason="test")
    tick(playbook, NOW)
    assert enrollment_of(playbook, fast, "waits").state is EnrollmentState.WAITING
    events = [
        EventIn(
            account="fast",
            name="job_posted",
            idempotency_key=f"e{i}",
            occurred_at=NOW + dt.timedelta(hours=1),
        )
        for i in range(2)
    ]
    ingest_events(playbook, events, now=NOW + dt.timedelta(hours=1))
    tick(playbook, NOW + dt.timedelta(hours=2))  # events are polled hourly by waiting enrolments
    assert sent_steps(playbook, fast) == ["celebrate:queued"]
    assert sent_steps(playbook, slow) == []
    tick(playbook, NOW + dt.timedelta(days=5, minutes=1))
    assert sent_steps(playbook, slow) == ["nudge:queued"]
    assert any(h["event"] == "timed_out" for h in enrollment_of(playbook, slow, "waits").history)


def test_wait_until_days_before_a_milestone_and_a_kr_reaching_its_target(playbook: Session) -> None:
    add_campaign(
        playbook,
        key="before_due",
        steps=[
            {"key": "soon", "kind": "wait_until", "milestone": "first_job_posted", "days_before_due": 3},
            email("reminder"),
        ],
    )
    add_campaign(
        playbook,
        key="kr_goal",
        steps=[
            {
                "key": "goal",
                "kind": "wait_until",
                "kr": "careers_site_traffic",
                "reaches": "target",
                "timeout_days": 60,
            },
            email("congrats"),
        ],
    )
    account = account_with_plan(playbook)
    plan = playbook.scalars(select(SuccessPlan).where(SuccessPlan.account_id == account.id)).one()
    due = next(m for m in plan.milestones if m.key == "first_job_posted").due_date
    for key in ("before_due", "kr_goal"):
        enroll_account(playbook, account.id, key, now=NOW, reason="test")
    tick(playbook, NOW)
    assert sent_steps(playbook, account) == []
    three_days_before = dt.datetime.combine(due - dt.timedelta(days=3), dt.time(), tzinfo=dt.UTC)
    tick(playbook, three_days_before + dt.timedelta(minutes=1))
    assert "reminder:queued" in sent_steps(playbook, account)
    kr = next(k for k in plan.key_results if k.objective_key == "careers_site_traffic")
    moment = three_days_before + dt.timedelta(hours=1)
    update_key_result(playbook, plan, kr.id, current=kr.target, actor="sofia", channel="shared", now=moment)
    tick(playbook, moment)
    assert "congrats:queued" in sent_steps(playbook, account)


def test_exit_criteria_stop_the_campaign(playbook: Session) -> None:
    add_campaign(
        playbook,
        key="smb_only",
        exit_when={"segments": ["smb"], "condition": {">=": [{"var": "plan.milestones_achieved"}, 1]}},
        steps=[{"key": "pause", "kind": "wait", "days": 1}, email("later")],
    )
    moved, done = account_with_plan(playbook, "moved"), account_with_plan(playbook, "done")
    for account in (moved, done):
        account.segment = "smb"
        enroll_account(playbook, account.id, "smb_only", now=NOW, reason="test")
    tick(playbook, NOW)
    moved.segment = "enterprise"
    plan = playbook.scalars(select(SuccessPlan).where(SuccessPlan.account_id == done.id)).one()
    plan.milestones[0].status = MilestoneStatus.ACHIEVED
    playbook.flush()
    tick(playbook, NOW + dt.timedelta(days=2))
    assert sent_steps(playbook, moved) == [] and sent_steps(playbook, done) == []
    assert "segment" in (enrollment_of(playbook, moved, "smb_only").exited_reason or "")
    assert "exit condition" in (enrollment_of(playbook, done, "smb_only").exited_reason or "")
    plan.status = PlanStatus.COMPLETED


def test_versions_keep_running_enrolments_on_their_steps(playbook: Session) -> None:
    add_campaign(playbook, key="versioned", steps=[{"key": "pause", "kind": "wait", "days": 1}, email("v1")])
    early = account_with_plan(playbook, "early")
    enroll_account(playbook, early.id, "versioned", now=NOW, reason="test")
    tick(playbook, NOW)
    add_campaign(playbook, key="versioned", steps=[{"key": "pause", "kind": "wait", "days": 1}, email("v2")])
    late = account_with_plan(playbook, "late")
    enroll_account(playbook, late.id, "versioned", now=NOW, reason="test")
    tick(playbook, NOW + dt.timedelta(days=2))
    assert sent_steps(playbook, early) == ["v1:queued"]
    assert sent_steps(playbook, late) == ["v2:queued"]
    campaign = playbook.scalars(select(Campaign).where(Campaign.key == "versioned")).one()
    assert campaign.version == 2 and [v.version for v in campaign.versions] == [1, 2]


def test_reentry_after_n_days_and_never_by_default(playbook: Session) -> None:
    add_campaign(playbook, key="again", reentry_days=10, steps=[email("hello")])
    account = account_with_plan(playbook)
    enroll_account(playbook, account.id, "again", now=NOW, reason="test")
    tick(playbook, NOW)
    _, again = enroll_account(playbook, account.id, "again", now=NOW + dt.timedelta(days=3), reason="test")
    assert not again
    _, again = enroll_account(playbook, account.id, "again", now=NOW + dt.timedelta(days=11), reason="test")
    assert again
    tick(playbook, NOW + dt.timedelta(days=11))
    assert sent_steps(playbook, account) == ["hello:queued", "hello:queued"]  # one per entry, never twice
    assert enrollment_of(playbook, account, "again").entry == 2
    enroll_account(playbook, account.id, "nurture", now=NOW, reason="test")
    tick(playbook, NOW)
    nurture = enrollment_of(playbook, account, "nurture")
    nurture.state, nurture.finished_at = EnrollmentState.COMPLETED, NOW
    _, again = enroll_account(playbook, account.id, "nurture", now=NOW + dt.timedelta(days=400), reason="x")
    assert not again


def test_holdout_is_stable_and_held_out_accounts_are_never_messaged(playbook: Session) -> None:
    shares = [held_out(i, "nurture", 20) for i in range(5000)]
    assert 0.17 < sum(shares) / len(shares) < 0.23
    assert shares == [held_out(i, "nurture", 20) for i in range(5000)]
    add_campaign(playbook, key="held", holdout_percent=50, steps=[email("hi")])
    accounts = [account_with_plan(playbook, f"acct-{i}") for i in range(12)]
    for account in accounts:
        enroll_account(playbook, account.id, "held", now=NOW, reason="test")
    tick(playbook, NOW)
    for account in accounts:
        enrollment = enrollment_of(playbook, account, "held")
        assert enrollment.held_out == held_out(account.id, "held", 50)
        expected = "hi:suppressed" if enrollment.held_out else "hi:queued"
        assert sent_steps(playbook, account) == [expected]
    assert {enrollment_of(playbook, a, "held").held_out for a in accounts} == {True, False}


def test_frequency_caps_per_account_and_contact(playbook: Session) -> None:
    for key in ("one", "two", "three"):
        add_campaign(playbook, key=key, steps=[email(f"{key}-mail")])
    add_campaign(playbook, key="urgent", caps=False, steps=[email("urgent-mail")])
    account = account_with_plan(playbook)
    for key in ("one", "two", "three", "urgent"):
        enroll_account(playbook, account.id, key, now=NOW, reason="test")
    tick(playbook, NOW, caps=Caps(account_per_week=2, contact_per_week=5))
    statuses = sorted(sent_steps(playbook, account))
    assert statuses.count("urgent-mail:queued") == 1
    assert sum(s.endswith(":queued") for s in statuses) == 3  # two capped campaigns + the uncapped one
    capped = playbook.scalars(select(Message).where(Message.status == MessageStatus.SUPPRESSED)).one()
    assert capped.reason == "frequency cap: 2 nudges per account per week"
    assert ["account cap", "frequency cap: 2 nudges per account per week"] in capped.trace["guards"]


def test_send_window_defers_in_the_contacts_time_zone_across_dst() -> None:
    from zoneinfo import ZoneInfo

    window = {"start_hour": 8, "end_hour": 18}
    berlin = ZoneInfo("Europe/Berlin")
    # 06:30 in Berlin on the Sunday DST ends (2026-10-25): opens at 08:00 CET = 07:00 UTC.
    early = dt.datetime(2026, 10, 25, 5, 30, tzinfo=dt.UTC)
    assert window_opens(window, berlin, early) == dt.datetime(2026, 10, 25, 7, tzinfo=dt.UTC)
    # The day before (CEST, UTC+2) 08:00 local is 06:00 UTC.
    assert window_opens(window, berlin, early - dt.timedelta(days=1)) == dt.datetime(
        2026, 10, 24, 6, tzinfo=dt.UTC
    )
    assert window_opens(window, berlin, dt.datetime(2026, 10, 26, 10, tzinfo=dt.UTC)) is None
    friday_night = dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.UTC)  # 18:30 in New York
    monday = window_opens({**window, "weekdays_only": True}, ZoneInfo("America/New_York"), friday_night)
    assert monday == dt.datetime(2026, 11, 30, 13, tzinfo=dt.UTC)  # 08:00 EST


def test_deferred_messages_are_released_when_the_window_opens(playbook: Session) -> None:
    add_campaign(playbook, key="daytime", send_window={"start_hour": 9, "end_hour": 17}, steps=[email("day")])
    account = account_with_plan(playbook)
    champion = next(c for c in account.contacts if c.role is ContactRole.CHAMPION)
    champion.timezone = "Asia/Tokyo"  # 15:00 UTC is midnight in Tokyo
    enroll_account(playbook, account.id, "daytime", now=NOW, reason="test")
    result = run_tick(playbook, now=NOW, caps=NO_CAPS)
    message = playbook.scalars(select(Message)).one()
    assert message.status is MessageStatus.DEFERRED and result.messages_deferred == 1
    assert message.not_before == dt.datetime(2026, 12, 1, 0, tzinfo=dt.UTC)  # 09:00 in Tokyo
    assert run_tick(playbook, now=NOW + dt.timedelta(hours=8), caps=NO_CAPS).messages_released == 0
    released = run_tick(playbook, now=NOW + dt.timedelta(hours=9), caps=NO_CAPS)
    assert released.messages_released == 1 and released.batches == [[message.id]]
    assert message.status is MessageStatus.QUEUED


def test_plan_signals_and_time_triggers_enrol(playbook: Session) -> None:
    account = account_with_plan(playbook)
    plan = playbook.scalars(select(SuccessPlan).where(SuccessPlan.account_id == account.id)).one()
    # The bundled milestone_slipped campaign starts when a milestone goes behind.
    refresh_plans(playbook, [account.id], now=NOW + dt.timedelta(days=13, hours=20))
    assert (
        enrollment_of(playbook, account, "milestone_slipped")
        .history[0]["reason"]
        .startswith("trigger milestone_slipped")
    )
    # The review reminder starts a week before the review, once per review cycle.
    assert fire_time_triggers(playbook, now=NOW) == 0
    week_before = dt.datetime.combine(plan.review_date - dt.timedelta(days=6), dt.time(9), tzinfo=dt.UTC)
    assert fire_time_triggers(playbook, now=week_before) == 1
    assert fire_time_triggers(playbook, now=week_before + dt.timedelta(hours=1)) == 0
    tick(playbook, week_before)
    reminder = enrollment_of(playbook, account, "review_reminder")
    assert reminder.state is EnrollmentState.COMPLETED
    assert sorted(sent_steps(playbook, account)).count("remind:queued") == 2  # champion and sponsor


def test_every_message_says_why(playbook: Session) -> None:
    account = account_with_plan(playbook)
    champion = next(c for c in account.contacts if c.role is ContactRole.CHAMPION)
    champion.unsubscribed_categories = ["nurture"]
    enroll_account(playbook, account.id, "nurture", now=NOW, reason="rule 'Hire faster'")
    tick(playbook, NOW)
    by_contact = {m.contact_id: m for m in playbook.scalars(select(Message))}
    skipped = by_contact[champion.id]
    assert skipped.status is MessageStatus.SUPPRESSED and skipped.reason == "unsubscribed from nurture"
    sent = next(m for m in by_contact.values() if m.status is MessageStatus.QUEUED)
    assert sent.trace["enrolled"] == "rule 'Hire faster'" and sent.trace["step"] == "welcome"
    assert [g[0] for g in sent.trace["guards"]] == [
        "suppression",
        "holdout",
        "account cap",
        "contact cap",
        "send window",
    ]
    assert all(result == "pass" for _, result in sent.trace["guards"])


@pytest.mark.parametrize(
    ("steps", "where", "message"),
    [
        (
            [email("a"), {"key": "b", "kind": "branch", "condition": True, "then": "a"}],
            "steps[1].then",
            "goes back",
        ),
        (
            [{"key": "b", "kind": "branch", "condition": True, "else": "nowhere"}, email("a")],
            "steps[0].else",
            "no step",
        ),
        ([email("a"), {"key": "x", "kind": "exit"}, email("orphan")], "steps[2].kind", "never be reached"),
        ([{"key": "w", "kind": "wait", "days": -1}], "steps[0].days", ""),
        ([{"key": "w", "kind": "wait_until", "event": "job_posted"}], "steps[0].timeout_days", "required"),
        ([{"key": "w", "kind": "wait_until", "kr": "x", "timeout_days": 3}], "steps[0].reaches", ""),
        ([email("a"), email("a")], "steps[1].key", "two steps"),
        ([{"key": "m", "kind": "email", "template": "ghost"}], "steps[0].template", "unknown template"),
    ],
)
def test_bad_flows_are_refused_at_save(
    playbook: Session, steps: list[dict[str, Any]], where: str, message: str
) -> None:
    with pytest.raises(PlaybookInvalid) as caught, playbook.begin_nested():
        add_campaign(playbook, key="bad", steps=steps)
    errors = caught.value.errors
    key = next((k for k in errors if k.endswith(where)), None)
    assert key is not None, errors
    assert message in errors[key]
