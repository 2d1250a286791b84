"""The bulk tick (campaigns.bulk) against the per-enrolment tick on one varied scenario: the same
ledger rows (status, reason, send window, trace), the same enrolment states and histories, the
same tick results and delivery batches — caps across campaigns and chunks, holdouts, suppressions,
time zones, waits, branches, events, exits. Plus the bulk tick's own guarantees: a ledger row that
already exists is never written or enqueued twice, and a second tick skips rows the first holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step
from campaigns.scheduler import run_tick
from campaigns.steps import TickResult
from engine.accounts import Account, Contact, ContactRole
from engine.events.service import EventIn, ingest_events
from engine.plans.models import Milestone, MilestoneStatus
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from engine.reports.summaries import rebuild_summaries, stale_count
from tests.factories import make_account
from tests.test_reports_summaries import summary_rows

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday, 15:00 UTC
CAPS = Caps(account_per_week=3, contact_per_week=2)
ROLES = (ContactRole.CHAMPION, ContactRole.EXEC_SPONSOR, ContactRole.POWER_USER, ContactRole.OTHER)
ZONES = ("UTC", "America/New_York", "Asia/Tokyo", "Europe/Berlin", "Not/AZone")
CAMPAIGNS: list[dict[str, Any]] = [
    {
        "key": "diff_flow",
        "holdout_percent": 30,
        "send_window": {"start_hour": 9, "end_hour": 17, "weekdays_only": True},
        "steps": [
            {"key": "hello", "kind": "email", "template": "next_step", "to": ["champion", "power_user"]},
            {"key": "card", "kind": "in_app", "template": "plan_ready_card", "to": ["champion"]},
            {
                "key": "size",
                "kind": "branch",
                "condition": {">=": [{"var": "account.traits.seats"}, 50]},
                "else": "posted",
            },
            {"key": "big", "kind": "email", "template": "next_step", "to": ["exec_sponsor"]},
            {"key": "pause", "kind": "wait", "days": 2},
            {
                "key": "posted",
                "kind": "wait_until",
                "event": "job_posted",
                "timeout_days": 3,
                "on_timeout": "late",
            },
            {"key": "yay", "kind": "email", "template": "next_step", "to": ["champion"]},
            {"key": "stop", "kind": "exit"},
            {"key": "late", "kind": "email", "template": "next_step"},
        ],
    },
    {
        "key": "diff_reviews",
        "caps": False,
        "category": "plan_reviews",
        "exit_when": {"condition": {">=": [{"var": "plan.milestones_achieved"}, 1]}},
        "steps": [
            {"key": "remind", "kind": "email", "template": "review_reminder"},
            {"key": "week", "kind": "wait", "days": 7},
            {"key": "again", "kind": "email", "template": "review_reminder", "to": ["champion"]},
        ],
    },
    {
        "key": "diff_kr",
        "steps": [
            {
                "key": "goal",
                "kind": "wait_until",
                "kr": "careers_site_traffic",
                "reaches": 1,
                "timeout_days": 9,
            },
            {"key": "soon", "kind": "wait_until", "milestone": "first_job_posted", "days_before_due": 20},
            {"key": "nudge", "kind": "in_app", "template": "plan_ready_card", "to": ["champion", "other"]},
        ],
    },
]
# (moment of the tick, accounts that post a job an hour before it)
TICKS: list[tuple[dt.datetime, tuple[int, ...]]] = [
    (NOW, ()),
    (NOW + dt.timedelta(hours=2), (1, 4)),
    (NOW + dt.timedelta(hours=14), ()),  # 05:00 UTC: outside most send windows, deferred
    (NOW + dt.timedelta(days=1, hours=1), (7,)),
    (NOW + dt.timedelta(days=3), (2, 9)),
    (NOW + dt.timedelta(days=5, hours=19), ()),  # a Saturday somewhere: weekdays only
    (NOW + dt.timedelta(days=8), (11,)),
    (NOW + dt.timedelta(days=16), ()),
]


def build_scenario(db: Session) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    for campaign in CAMPAIGNS:
        document["campaigns"].append({"name": campaign["key"].title(), **campaign})
    import_playbook(db, yaml.safe_dump(document))
    template = get_template(db, "hire_faster_plan")
    for i in range(24):
        contacts = tuple((f"c{j}@a{i}.example", ROLES[(i + j) % len(ROLES)]) for j in range(1 + i % 4))
        account = make_account(
            db, f"a{i}", segment=("smb", "enterprise")[i % 2], contacts=contacts, seats=10 * i
        )
        account.timezone = ZONES[i % len(ZONES)]
        account.holdout_group = i == 5
        for j, contact in enumerate(account.contacts):
            contact.timezone = ZONES[(i + j + 1) % len(ZONES)] if j % 2 else None
            contact.unsubscribed_at = (
                NOW - dt.timedelta(days=1) if (i, j) in ((3, 0), (6, 1), (13, 0)) else None
            )
            contact.bounced_at = NOW - dt.timedelta(days=2) if (i, j) == (9, 1) else None
            contact.spam_reported_at = NOW - dt.timedelta(days=3) if (i, j) == (10, 0) else None
            contact.unsubscribed_categories = ["plan_reviews"] if (i + j) % 5 == 0 else []
        if i % 6 != 5:  # some accounts have no plan: facts and plan states without one
            create_plan(db, account, template, [], now=NOW)
        db.flush()
        if i % 3 == 0:  # a milestone already achieved: the nurture waits end, the exit condition holds
            plan_milestone(db, account, "first_job_posted").status = MilestoneStatus.ACHIEVED
        keys = ["diff_flow", "nurture", "diff_reviews"] + (["diff_kr"] if i % 2 else [])
        for key in keys:
            enroll_account(db, account.id, key, now=NOW - dt.timedelta(minutes=i), reason=f"test {key}")
    db.flush()


def plan_milestone(db: Session, account: Account, key: str) -> Milestone:
    return db.scalars(
        select(Milestone).where(Milestone.plan.has(account_id=account.id), Milestone.key == key)
    ).one()


def run_scenario(db: Session, *, bulk: bool) -> dict[str, Any]:
    """Every tick of TICKS on one path inside a savepoint; what it wrote, then rolled back."""
    savepoint = db.begin_nested()
    results = []
    for when, posters in TICKS:
        events = [
            EventIn(
                account=f"a{i}",
                name="job_posted",
                idempotency_key=f"{when}-{i}",
                occurred_at=when - dt.timedelta(hours=1),
            )
            for i in posters
        ]
        if events:
            ingest_events(db, events, now=when - dt.timedelta(hours=1))
        result = run_tick(db, now=when, caps=CAPS, bulk=bulk, chunk=7)
        db.flush()
        results.append(summary(db, result))
    found = {"ticks": results, "messages": messages(db), "enrollments": enrollments(db)}
    savepoint.rollback()
    db.expire_all()
    return found


def names(db: Session) -> dict[str, dict[int, str]]:
    return {
        "contact": {cid: email for cid, email in db.execute(select(Contact.id, Contact.email))},
        "step": {
            sid: f"{key}.v{version}"
            for sid, key, version in db.execute(select(Step.id, Step.key, Step.version))
        },
        "enrollment": {
            eid: f"{external_id}/{campaign}"
            for eid, external_id, campaign in db.execute(
                select(Enrollment.id, Account.external_id, Campaign.key).join(Account).join(Campaign)
            )
        },
    }


def message_key(named: dict[str, dict[int, str]], enrollment_id: int, step_id: int, contact_id: int) -> str:
    return f"{named['enrollment'][enrollment_id]}:{named['step'][step_id]}:{named['contact'][contact_id]}"


def summary(db: Session, result: TickResult) -> dict[str, Any]:
    named = names(db)
    where = {m.id: (m.enrollment_id, m.step_id, m.contact_id) for m in db.scalars(select(Message))}
    counts = {k: v for k, v in vars(result).items() if k != "batches"}
    return {**counts, "batches": [[message_key(named, *where[i]) for i in batch] for batch in result.batches]}


def messages(db: Session) -> dict[str, tuple[Any, ...]]:
    named = names(db)
    rows = db.scalars(select(Message)).all()
    found = {
        message_key(named, m.enrollment_id, m.step_id, m.contact_id): (
            m.channel,
            m.status.value,
            m.reason,
            m.template_key,
            m.created_at,
            m.updated_at,
            m.not_before,
            m.trace,
            m.dedupe_key.count("."),  # the run (entry) part of the dedupe key
        )
        for m in rows
    }
    assert len(found) == len(rows)
    return found


def enrollments(db: Session) -> dict[str, tuple[Any, ...]]:
    named = names(db)
    return {
        named["enrollment"][e.id]: (
            e.state.value,
            e.current_step,
            e.campaign_version,
            e.entry,
            e.held_out,
            e.step_started_at,
            e.next_run_at,
            e.finished_at,
            e.exited_reason,
            e.history,
        )
        for e in db.scalars(select(Enrollment))
    }


def test_the_bulk_tick_writes_what_the_per_enrolment_tick_writes(db: Session) -> None:
    build_scenario(db)
    each = run_scenario(db, bulk=False)
    bulk = run_scenario(db, bulk=True)
    assert bulk["messages"] == each["messages"]
    assert bulk["enrollments"] == each["enrollments"]
    assert bulk["ticks"] == each["ticks"]
    # The scenario exercises what it claims to, so the comparison above means something.
    statuses = [row[1] for row in each["messages"].values()]
    reasons = {row[2] for row in each["messages"].values()}
    assert {"queued", "suppressed"} <= set(statuses)
    assert sum(tick["messages_deferred"] for tick in each["ticks"]) > 0  # released by a later tick
    assert any("released_at" in row[7] for row in each["messages"].values())
    for reason in ("unsubscribed", "bounced", "spam report", "holdout", "unsubscribed from plan_reviews"):
        assert reason in reasons, reason
    assert any(r and r.startswith("frequency cap: 3 nudges") for r in reasons)
    assert any(r and r.startswith("frequency cap: 2 messages") for r in reasons)
    states = {row[0] for row in each["enrollments"].values()}
    assert {"completed", "exited"} <= states
    assert 0 < each["ticks"][2]["enrollments"] < each["ticks"][0]["enrollments"]  # the rest were waiting
    events = {h["event"] for row in each["enrollments"].values() for h in row[-1]}
    assert {"branch", "condition_met", "timed_out", "exited", "completed"} <= events
    assert sum(tick["messages_released"] for tick in each["ticks"]) > 0
    assert all(tick["messages_existing"] == 0 for tick in each["ticks"])


def test_a_ledger_row_that_exists_is_not_written_or_enqueued_again(db: Session) -> None:
    import_playbook(db, resolve_playbook("recruiting")[1])
    account = make_account(db, "acme")
    enrollment, _ = enroll_account(db, account.id, "nurture", now=NOW, reason="test")
    first = run_tick(db, now=NOW, caps=Caps(0, 0))
    assert first.messages_queued == 2 and len(first.batches) == 1
    # As if the ledger rows were written but the enrolment had not moved on (an operator's reset).
    db.execute(
        update(Enrollment)
        .where(Enrollment.id == enrollment.id)
        .values(state=EnrollmentState.ACTIVE, current_step=0, next_run_at=NOW)
    )
    again = run_tick(db, now=NOW, caps=Caps(0, 0))
    assert again.messages_existing == 3  # 2 emails and the in-app card
    assert again.messages_queued == 0 and again.batches == []
    assert (
        db.scalar(select(Message.id).where(Message.status == MessageStatus.QUEUED).limit(1))
        in first.batches[0]
    )
    assert len(db.scalars(select(Message)).all()) == 3


@pytest.mark.usefixtures("app")
def test_a_second_tick_skips_the_enrolments_the_first_holds(pg_engine: Engine) -> None:
    with Session(pg_engine) as setup, setup.begin():
        import_playbook(setup, resolve_playbook("recruiting")[1])
        for i in range(6):
            account = make_account(setup, f"acct{i}", contacts=((f"c@{i}.example", ContactRole.CHAMPION),))
            enroll_account(setup, account.id, "nurture", now=NOW, reason="test")
    with Session(pg_engine) as first, Session(pg_engine) as second:
        ran = run_tick(first, now=NOW, limit=4, caps=Caps(0, 0))  # holds 4 rows until it commits
        other = run_tick(second, now=NOW, caps=Caps(0, 0))
        assert (ran.enrollments, other.enrollments) == (4, 2)
        second.commit()
        first.commit()
    with Session(pg_engine) as check:
        keys = check.scalars(select(Message.dedupe_key)).all()
        assert len(keys) == len(set(keys)) == 12  # 6 welcome emails and 6 in-app cards, once each


def test_the_bulk_tick_wakes_the_reports_refresh(
    pg_engine: Engine, redis_conn: Redis, run_worker: Callable[[], bool]
) -> None:
    """Its ledger rows go in through the driver, which no ORM listener sees: the tick itself queues
    the summary refresh, and the worker leaves no stale key behind."""
    with Session(pg_engine) as setup, setup.begin():
        import_playbook(setup, resolve_playbook("recruiting")[1])
        for i in range(3):
            account = make_account(setup, f"acct{i}", contacts=((f"c@{i}.example", ContactRole.CHAMPION),))
            enroll_account(setup, account.id, "nurture", now=NOW, reason="test")
    run_worker()
    reports = Queue("reports", connection=redis_conn)
    assert reports.count == 0
    with Session(pg_engine) as tick, tick.begin():
        assert run_tick(tick, now=NOW, caps=Caps(0, 0), bulk=True).enrollments == 3
    assert reports.count == 1
    run_worker()
    with Session(pg_engine) as check:
        assert stale_count(check) == 0
        refreshed = summary_rows(check)
        assert refreshed["report_enrollment_channel_facts"]  # the tick's email and in-app rows
        rebuild_summaries(check)
        assert summary_rows(check) == refreshed
        check.rollback()
