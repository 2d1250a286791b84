"""Event ingest in batches: stored once by key, milestones of every account in the batch follow,
each achieved once, counted from each plan's own start — at a fixed cost per batch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from engine import signals
from engine.accounts import Account, ContactRole
from engine.events.models import Event
from engine.events.service import EventIn, ingest_events
from engine.plans.models import PlanRevision, SuccessPlan
from engine.plans.progress import _holds, criteria_progress, refresh_plans
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from engine.rules.logic import evaluate, holds
from tests.factories import make_account

START = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
NOW = START + dt.timedelta(days=3)


@pytest.fixture
def recruiting_db(db: Session) -> Session:
    import_playbook(db, resolve_playbook("recruiting")[1])
    return db


def with_plan(db: Session, external_id: str, started: dt.datetime = START) -> SuccessPlan:
    account = make_account(
        db, external_id, contacts=((f"sofia@{external_id}.example", ContactRole.CHAMPION),)
    )
    return create_plan(db, account, get_template(db, "hire_faster_plan"), [], now=started)


def ev(account: str, name: str, key: str, when: dt.datetime = START + dt.timedelta(days=1)) -> EventIn:
    return EventIn(account=account, name=name, idempotency_key=key, occurred_at=when)


def statuses(db: Session, plan: SuccessPlan) -> dict[str, str]:
    db.expire_all()
    return {m.key: m.status.value for m in db.get_one(SuccessPlan, plan.id).milestones}


def stored(db: Session) -> dict[str, str]:
    rows = db.execute(
        select(Event.idempotency_key, Account.external_id).join(Account, Account.id == Event.account_id)
    )
    return {key: account for key, account in rows}


@pytest.fixture
def achieved_signals() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def on_achieved(_sender: object, **kwargs: Any) -> None:
        sent.append(kwargs)

    signals.milestone_achieved.connect(on_achieved)
    yield sent
    signals.milestone_achieved.disconnect(on_achieved)


def test_duplicates_within_a_batch_and_across_batches_are_stored_once(recruiting_db: Session) -> None:
    db = recruiting_db
    make_account(db, "acme")
    make_account(db, "globex")
    first = [
        ev("acme", "job_posted", "a-1"),
        ev("globex", "job_posted", "g-1"),
        ev("acme", "job_posted", "a-1"),
    ]

    result = ingest_events(db, first, now=NOW)

    assert (result.accepted, result.duplicates) == (2, 1)
    second = [
        ev("globex", "job_posted", "g-1"),
        ev("acme", "offer_accepted", "a-2"),
        ev("acme", "job_posted", "a-1"),
    ]
    result = ingest_events(db, second, now=NOW)
    assert (result.accepted, result.duplicates) == (1, 2)
    assert stored(db) == {"a-1": "acme", "g-1": "globex", "a-2": "acme"}


def test_a_repeated_key_keeps_the_first_event(recruiting_db: Session) -> None:
    db = recruiting_db
    make_account(db, "acme")
    make_account(db, "globex")
    batch = [ev("acme", "job_posted", "k-1"), ev("globex", "offer_accepted", "k-1")]

    result = ingest_events(db, batch, now=NOW)

    assert (result.accepted, result.duplicates) == (1, 1)
    assert db.execute(select(Event.name, Event.account_id)).one() == (
        "job_posted",
        db.scalar(select(Account.id).where(Account.external_id == "acme")),
    )


def test_a_batch_over_many_accounts_moves_each_accounts_milestones(
    recruiting_db: Session, achieved_signals: list[dict[str, Any]]
) -> None:
    db = recruiting_db
    acme, globex, initech = with_plan(db, "acme"), with_plan(db, "globex"), with_plan(db, "initech")
    make_account(db, "no-plan")
    batch = [
        ev("acme", "job_posted", "a-1"),
        *[ev("globex", "application_received", f"g-{i}") for i in range(24)],
        ev("initech", "manager_onboarded", "i-1"),
        ev("no-plan", "job_posted", "n-1"),
    ]

    result = ingest_events(db, batch, now=NOW)

    assert result.accepted == 27
    assert statuses(db, acme)["first_job_posted"] == "achieved"
    assert statuses(db, globex)["first_applications"] == "on_track"  # 24 of 25
    assert "achieved" not in statuses(db, initech).values()
    assert [(s["account_id"], s["milestone_key"]) for s in achieved_signals] == [
        (acme.account_id, "first_job_posted")
    ]
    # The 25th application, with a replay of the first batch: achieved now, and only this once.
    result = ingest_events(db, [ev("globex", "application_received", "g-24"), *batch[:3]], now=NOW)
    assert (result.accepted, result.duplicates, len(result.milestones_achieved)) == (1, 3, 1)
    assert statuses(db, globex)["first_applications"] == "achieved"
    assert statuses(db, acme)["first_job_posted"] == "achieved"
    assert len(achieved_signals) == 2


def test_a_milestone_is_achieved_once_however_often_its_events_repeat(
    recruiting_db: Session, achieved_signals: list[dict[str, Any]]
) -> None:
    db = recruiting_db
    plan = with_plan(db, "acme")

    for n in range(3):
        ingest_events(db, [ev("acme", "job_posted", f"a-{n}"), ev("acme", "job_posted", "a-0")], now=NOW)

    achieved = db.scalars(
        select(PlanRevision).where(
            PlanRevision.plan_id == plan.id, PlanRevision.summary.like("Milestone achieved%")
        )
    ).all()
    assert [r.change["milestone"] for r in achieved] == ["first_job_posted"]
    assert len(achieved_signals) == 1


def test_events_count_from_each_plans_own_start(recruiting_db: Session) -> None:
    db = recruiting_db
    early = with_plan(db, "acme", started=START)
    late = with_plan(db, "globex", started=START + dt.timedelta(days=2))
    between = START + dt.timedelta(days=1)
    batch = [
        ev("acme", "offer_accepted", "a-1", when=between),
        ev("globex", "offer_accepted", "g-1", when=between),
    ]

    ingest_events(db, batch, now=NOW)

    assert statuses(db, early)["first_hire"] == "achieved"
    assert statuses(db, late)["first_hire"] == "on_track"  # its only event came before it started


def test_refresh_costs_the_same_queries_for_one_plan_or_many(recruiting_db: Session) -> None:
    db = recruiting_db
    plans = [with_plan(db, f"acct-{i}") for i in range(12)]
    for i, plan in enumerate(plans):  # no criterion counts these: statuses move with the dates only
        db.add(
            Event(
                account_id=plan.account_id,
                name="manager_onboarded",
                occurred_at=NOW,
                idempotency_key=f"k-{i}",
            )
        )
    db.flush()

    def queries(account_ids: list[int]) -> int:
        count = 0

        def counted(*_: Any) -> None:
            nonlocal count
            count += 1

        connection = db.connection()
        event.listen(connection, "before_cursor_execute", counted)
        try:
            refresh_plans(db, account_ids, now=NOW)
        finally:
            event.remove(connection, "before_cursor_execute", counted)
        return count

    one = queries([plans[0].account_id])
    many = queries([p.account_id for p in plans[1:]])

    assert many == one
    assert all(set(statuses(db, plan).values()) == {"on_track"} for plan in plans)


@pytest.mark.parametrize(
    "criteria",
    [
        {">=": [{"var": "events.job_posted.count"}, 1]},
        {">": [{"var": "events.job_posted.count"}, 2]},
        {">=": [{"var": "events.job_posted.count"}, 0]},
        {">=": [{"var": "events.job_posted.count"}, 2.5]},
        {">=": [{"var": ["events.job_posted.count", 5]}, 1]},
        {">=": [{"var": "events.0"}, 1]},
        {"and": [{">=": [{"var": "events.job_posted.count"}, 1]}, {">": [{"var": "events.offer.count"}, 0]}]},
    ],
)
@pytest.mark.parametrize(
    "facts",
    [
        {},
        {"events": {}},
        {"events": {"job_posted": {}}},
        {"events": {"job_posted": {"count": 0}}},
        {"events": {"job_posted": {"count": 3}, "offer": {"count": 1}}},
        {"events": {"job_posted": {"count": True}}},
        {"events": {"job_posted": {"count": "7"}}},
        {"events": {"job_posted": 4}},
        {"events": [2, 3]},
    ],
)
def test_milestone_criteria_read_as_json_logic_reads_them(
    criteria: dict[str, Any], facts: dict[str, Any]
) -> None:
    assert _holds(criteria, facts) == holds(criteria, facts)
    op, args = next(iter(criteria.items()))
    if op in (">=", ">"):
        value = evaluate(args[0], facts)
        number = isinstance(value, int | float) and not isinstance(value, bool) and args[1] > 0
        assert criteria_progress(criteria, facts) == (max(0.0, min(1.0, value / args[1])) if number else None)
