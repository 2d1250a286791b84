"""The fast milestone refresh (compiled criteria, plain rows, Core writes) against the slow one it
replaced: the same statuses, times, revisions and signals, on randomized plans and events.

The reference below is the refresh as it was before (engine/plans/progress.py at 4388d92): every
open or missed milestone of every active plan of the accounts, in order, criteria answered by the
JSON Logic engine over `{"events": {name: {"count": n}}}` counted here in Python from the events
since the plan started, `criteria_progress` for progress, and the same revisions and signals."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import signals
from engine.accounts import Account, ContactRole
from engine.events.models import Event
from engine.events.service import EventIn, ingest_events
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.plans.progress import (
    BEHIND_MARGIN,
    _holds,
    compile_criteria,
    criteria_progress,
    refresh_plans,
)
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from engine.rules.logic import holds
from tests.factories import make_account

BASE = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
NAMES = ["job_posted", "application_received", "candidate_screened", "offer_accepted", "manager_onboarded"]
S = MilestoneStatus


# -- compiled criteria vs the JSON Logic engine --------------------------------------------------

PATHS = st.sampled_from(
    [
        "events.job_posted.count",
        "events.offer_accepted.count",
        "events.job_posted",
        "events.job_posted.count.x",
        "events..count",
        "facts.job_posted.count",
        "events",
    ]
)
NUMBERS = st.one_of(
    st.integers(-2, 6),
    st.floats(-1, 6, allow_nan=False),
    st.booleans(),
    st.just("3"),
    st.none(),
)
VAR = st.one_of(
    PATHS.map(lambda p: {"var": p}),
    PATHS.map(lambda p: {"var": [p, 2]}),
)
THRESHOLD = st.builds(
    lambda op, var, n: {op: [var, n]}, st.sampled_from([">=", ">", "<", "=="]), VAR, NUMBERS
)
CRITERIA = st.one_of(
    THRESHOLD,
    st.lists(THRESHOLD, min_size=0, max_size=3).map(lambda parts: {"and": parts}),
    st.lists(THRESHOLD, min_size=1, max_size=2).map(lambda parts: {"or": parts}),
    st.sampled_from([None, {}, [], 0, True, {">=": [{"var": "events.job_posted.count"}]}]),
)
TALLIES = st.dictionaries(st.sampled_from(["job_posted", "offer_accepted", "other"]), st.integers(0, 7))


@settings(max_examples=400, deadline=None)
@given(CRITERIA, TALLIES)
def test_compiled_criteria_answer_as_the_engine_does(criteria: Any, tallies: dict[str, int]) -> None:
    facts = {"events": {name: {"count": n} for name, n in tallies.items()}}
    compiled = compile_criteria(json.dumps(criteria))
    if not criteria:
        assert compiled is None
        return
    assert compiled is not None
    assert compiled.holds(tallies) == _holds(criteria, facts)
    assert compiled.progress(tallies) == criteria_progress(criteria, facts)
    if compiled.names is not None:  # what it reads is all that matters: other counts change nothing
        assert compiled.names <= {"job_posted", "offer_accepted"}
        narrowed = {name: n for name, n in tallies.items() if name in compiled.names}
        assert compiled.holds(narrowed) == compiled.holds(tallies)
        assert compiled.progress(narrowed) == compiled.progress(tallies)


@pytest.mark.parametrize(
    ("criteria", "names"),
    [
        ({">=": [{"var": "events.job_posted.count"}, 1]}, {"job_posted"}),
        (
            {"and": [{">": [{"var": "events.a.count"}, 1]}, {">=": [{"var": "events.b.count"}, 2.5]}]},
            {"a", "b"},
        ),
        ({"==": [{"var": "events.job_posted.count"}, 1]}, None),  # the engine's: it may read anything
        ({">=": [{"var": "events.job_posted.count"}, True]}, None),
    ],
)
def test_compiled_criteria_know_the_names_they_read(criteria: Any, names: set[str] | None) -> None:
    compiled = compile_criteria(json.dumps(criteria))
    assert compiled is not None and compiled.names == (None if names is None else frozenset(names))
    assert holds(criteria, {"events": {n: {"count": 9} for n in names or ()}}) == compiled.holds(
        dict.fromkeys(names or (), 9)
    )


# -- the reference refresh ---------------------------------------------------------------------


@dataclass
class Ref:
    """A milestone as the reference sees it."""

    id: int
    plan_id: int
    account_id: int
    key: str
    title: str
    after: str | None
    due_date: dt.date
    criteria: Any
    status: MilestoneStatus
    achieved_at: dt.datetime | None


@dataclass
class Expected:
    milestones: dict[int, tuple[MilestoneStatus, dt.datetime | None]]
    revisions: list[tuple[int, str, str, str, dict[str, Any]]]
    achieved: list[tuple[int, str, int, int]]
    batch: list[list[int]]
    slipped: list[tuple[int, str, str, int, int]]


def reference_refresh(
    db: Session, account_ids: list[int] | None, *, now: dt.datetime, channel: str
) -> Expected:
    db.expire_all()
    plans = db.scalars(
        select(SuccessPlan).where(SuccessPlan.status == PlanStatus.ACTIVE).order_by(SuccessPlan.id)
    ).all()
    if account_ids is not None:
        plans = [p for p in plans if p.account_id in account_ids]
    events = db.execute(select(Event.account_id, Event.name, Event.occurred_at)).all()
    state = {
        m.id: (m.status, m.achieved_at) for m in db.scalars(select(Milestone)).all()
    }  # every milestone, so untouched ones are checked too
    found = Expected(state, [], [], [], [])
    for plan in plans:
        counts: dict[str, int] = {}
        for account_id, name, occurred_at in events:
            if account_id == plan.account_id and occurred_at >= plan.started_at:
                counts[name] = counts.get(name, 0) + 1
        facts = {"events": {name: {"count": n} for name, n in counts.items()}}
        rows = sorted(plan.milestones, key=lambda m: (m.position, m.id))
        milestones = [
            Ref(
                m.id,
                plan.id,
                plan.account_id,
                m.key,
                m.title,
                m.after,
                m.due_date,
                m.criteria,
                m.status,
                m.achieved_at,
            )
            for m in rows
        ]
        for m in [m for m in milestones if m.status in (S.PENDING, S.ON_TRACK, S.BEHIND, S.MISSED)]:
            old = m.status
            if m.criteria and _engine_holds(m.criteria, facts):
                m.status, m.achieved_at = S.ACHIEVED, now
                found.revisions.append(
                    (
                        plan.id,
                        "events",
                        channel,
                        f"Milestone achieved: {m.title}",
                        {"milestone": m.key, "status": "achieved"},
                    )
                )
                found.achieved.append((m.id, m.key, plan.id, plan.account_id))
            elif old is not S.MISSED:
                m.status = reference_status(m, milestones, plan.started_at, facts, now.date())
                if m.status in (S.BEHIND, S.MISSED) and m.status is not old:
                    summary = f"Milestone {m.status.value.replace('_', ' ')}: {m.title}"
                    change = {"milestone": m.key, "status": m.status.value, "was": old.value}
                    found.revisions.append((plan.id, "northstar", channel, summary, change))
                    found.slipped.append((m.id, m.key, m.status.value, plan.id, plan.account_id))
            found.milestones[m.id] = (m.status, m.achieved_at)
    if found.achieved:
        found.batch.append(sorted({a[3] for a in found.achieved}))
    return found


def _engine_holds(criteria: Any, facts: dict[str, Any]) -> bool:
    try:
        return holds(criteria, facts)
    except Exception:  # noqa: BLE001 - the old refresh read a criterion that fails as "not achieved"
        return False


def reference_status(
    m: Ref, milestones: list[Ref], started_at: dt.datetime, facts: dict[str, Any], today: dt.date
) -> MilestoneStatus:
    if today > m.due_date:
        return S.MISSED
    start = started_at.date()
    if m.after:
        previous = next((p for p in milestones if p.key == m.after), None)
        if previous is not None:
            start = previous.achieved_at.date() if previous.achieved_at else previous.due_date
    start = min(start, m.due_date)
    if today < start:
        return S.PENDING
    span = max((m.due_date - start).days, 1)
    used = (today - start).days / span
    progress = criteria_progress(m.criteria, facts) if m.criteria else None
    if progress is not None:
        return S.BEHIND if progress + BEHIND_MARGIN < used else S.ON_TRACK
    return S.BEHIND if (m.due_date - today).days < max(3, span / 5) else S.ON_TRACK


# -- randomized plans and events ---------------------------------------------------------------

CRITERIA_POOL: list[Any] = [
    {">=": [{"var": "events.job_posted.count"}, 1]},
    {">=": [{"var": "events.job_posted.count"}, 3]},
    {">": [{"var": "events.application_received.count"}, 4]},
    {">=": [{"var": "events.candidate_screened.count"}, 2.5]},
    {">=": [{"var": "events.offer_accepted.count"}, 0]},
    {
        "and": [
            {">=": [{"var": "events.job_posted.count"}, 2]},
            {">=": [{"var": "events.application_received.count"}, 3]},
        ]
    },
    {"==": [{"var": "events.job_posted.count"}, 2]},  # not a threshold: the engine answers
    {"<": [{"var": "events.manager_onboarded.count"}, 1]},
    {">=": [{"var": ["events.offer_accepted.count", 0]}, 1]},
    {">=": [{"var": "events.job_posted"}, 1]},
    None,
    {},
]


@dataclass
class Signals:
    achieved: list[tuple[int, str, int, int]]
    batch: list[list[int]]
    slipped: list[tuple[int, str, str, int, int]]


@pytest.fixture
def sent() -> Iterator[Signals]:
    found = Signals([], [], [])

    def on_achieved(_sender: object, **kw: Any) -> None:
        assert kw["batched"] is True
        found.achieved.append((kw["milestone_id"], kw["milestone_key"], kw["plan_id"], kw["account_id"]))

    def on_batch(_sender: object, **kw: Any) -> None:
        found.batch.append(list(kw["account_ids"]))

    def on_slipped(_sender: object, **kw: Any) -> None:
        found.slipped.append(
            (kw["milestone_id"], kw["milestone_key"], kw["status"], kw["plan_id"], kw["account_id"])
        )

    signals.milestone_achieved.connect(on_achieved)
    signals.milestones_achieved_batch.connect(on_batch)
    signals.milestone_slipped.connect(on_slipped)
    yield found
    signals.milestone_achieved.disconnect(on_achieved)
    signals.milestones_achieved_batch.disconnect(on_batch)
    signals.milestone_slipped.disconnect(on_slipped)


def build(db: Session, rng: random.Random, n_plans: int) -> list[Account]:
    """Accounts with plans whose milestones have random statuses, due dates, dependencies, times
    and criteria (a cancelled plan, an account without a plan), and random events."""
    template = get_template(db, "hire_faster_plan")
    accounts = []
    for i in range(n_plans + 1):
        account = make_account(db, f"fp-{i}", contacts=((f"c@fp-{i}.example", ContactRole.CHAMPION),))
        accounts.append(account)
        if i == n_plans:
            break  # the last account has no plan
        started = BASE - dt.timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 23))
        plan = create_plan(db, account, template, [], now=started)
        if rng.random() < 0.1:
            plan.status = PlanStatus.CANCELLED
        keys = [m.key for m in plan.milestones]
        for position, m in enumerate(plan.milestones):
            m.due_date = started.date() + dt.timedelta(days=rng.randint(-3, 45))
            m.after = rng.choice([None, None, *keys[:position], "no-such-milestone"])
            m.criteria = rng.choice(CRITERIA_POOL)
            m.status = rng.choices(list(S), weights=[4, 4, 2, 1, 1])[0]
            achieved = rng.random() < (0.9 if m.status is S.ACHIEVED else 0.1)
            m.achieved_at = started + dt.timedelta(days=rng.randint(0, 20)) if achieved else None
    db.flush()
    events = [
        Event(
            account_id=rng.choice(accounts).id,
            name=rng.choice(NAMES),
            occurred_at=BASE - dt.timedelta(days=rng.randint(0, 35), hours=rng.randint(0, 23)),
            idempotency_key=f"seed-{k}",
        )
        for k in range(n_plans * 4)
    ]
    db.add_all(events)
    db.flush()
    return accounts


def revisions_after(db: Session, last_id: int) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    rows = db.execute(
        select(
            PlanRevision.plan_id,
            PlanRevision.actor,
            PlanRevision.channel,
            PlanRevision.summary,
            PlanRevision.change,
        )
        .where(PlanRevision.id > last_id)
        .order_by(PlanRevision.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


def state(db: Session) -> dict[int, tuple[MilestoneStatus, dt.datetime | None]]:
    db.expire_all()
    return {m.id: (m.status, m.achieved_at) for m in db.scalars(select(Milestone))}


def assert_same(db: Session, expected: Expected, sent: Signals, last_revision: int) -> None:
    assert state(db) == expected.milestones
    assert revisions_after(db, last_revision) == expected.revisions
    assert sent.achieved == expected.achieved
    assert sent.batch == expected.batch
    assert sent.slipped == expected.slipped


@pytest.mark.parametrize("seed", range(5))
def test_ingest_and_refresh_move_milestones_as_the_slow_refresh_did(
    db: Session, sent: Signals, seed: int
) -> None:
    import_playbook(db, resolve_playbook("recruiting")[1])
    rng = random.Random(seed)
    accounts = build(db, rng, n_plans=14)
    for round_ in range(4):
        now = BASE + dt.timedelta(days=rng.randint(0, 50), hours=rng.randint(0, 23))
        # An ingest batch over some accounts, with duplicates: only accounts with new events move.
        batch = [
            EventIn(
                account=rng.choice(accounts).external_id,
                name=rng.choice(NAMES),
                idempotency_key=f"r{rng.randint(0, round_)}-{rng.randint(0, 40)}",  # replays too
                occurred_at=now - dt.timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23)),
            )
            for _ in range(rng.randint(1, 40))
        ]
        new_keys = {e.idempotency_key for e in batch} - set(db.scalars(select(Event.idempotency_key)))
        # The reference sees the events the ingest will store (the first of each new key).
        firsts: dict[str, EventIn] = {}
        for e in batch:
            firsts.setdefault(e.idempotency_key, e)
        by_external = {a.external_id: a.id for a in accounts}
        touched = sorted({by_external[e.account] for k, e in firsts.items() if k in new_keys})
        nested = db.begin_nested()
        db.add_all(
            Event(
                account_id=by_external[e.account], name=e.name, occurred_at=e.occurred_at, idempotency_key=k
            )
            for k, e in firsts.items()
            if k in new_keys
        )
        db.flush()
        expected = reference_refresh(db, touched, now=now, channel="events")
        nested.rollback()
        last = db.scalar(select(PlanRevision.id).order_by(PlanRevision.id.desc()).limit(1)) or 0
        clear(sent)

        result = ingest_events(db, batch, now=now)

        assert result.accepted == len(new_keys)
        assert result.milestones_achieved == [a[0] for a in expected.achieved]
        assert_same(db, expected, sent, last)

        # The hourly refresh of every active plan, a few hours later.
        later = now + dt.timedelta(hours=rng.randint(1, 30))
        expected = reference_refresh(db, None, now=later, channel="schedule")
        last = db.scalar(select(PlanRevision.id).order_by(PlanRevision.id.desc()).limit(1)) or 0
        clear(sent)

        refresh = refresh_plans(db, None, now=later, channel="schedule")

        assert [c.milestone_id for c in refresh.achieved] == [a[0] for a in expected.achieved]
        assert [c.milestone_id for c in refresh.slipped] == [s[0] for s in expected.slipped]
        assert_same(db, expected, sent, last)


def clear(sent: Signals) -> None:
    sent.achieved.clear()
    sent.batch.clear()
    sent.slipped.clear()


def test_objects_in_the_session_see_the_refresh(db: Session) -> None:
    """The refresh writes with Core statements: milestones the session holds take the new status
    (nothing left to flush back), and a loaded history reloads with the new revisions."""
    import_playbook(db, resolve_playbook("recruiting")[1])
    account = make_account(db, "acme")
    plan = create_plan(db, account, get_template(db, "hire_faster_plan"), [], now=BASE)
    first = plan.milestones[0]
    history = len(plan.revisions)
    db.add(Event(account_id=account.id, name="job_posted", occurred_at=BASE, idempotency_key="k-1"))

    refresh_plans(db, [account.id], now=BASE + dt.timedelta(days=1))

    assert first.status is S.ACHIEVED and first.achieved_at == BASE + dt.timedelta(days=1)
    assert not db.dirty
    assert len(plan.revisions) == history + 1
    assert plan.revisions[-1].summary == f"Milestone achieved: {first.title}"
    db.expire_all()
    assert db.get_one(Milestone, first.id).status is S.ACHIEVED
