"""Summary-backed reports equal the raw-row reports, on randomized data and after every kind of change.

The summary rows (report_*_facts) are refreshed from the keys the PostgreSQL triggers mark stale;
`run_report(..., raw=True)` reads the source rows, the reference.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Message, MessageStatus
from engine.accounts import Account
from engine.db import Database
from engine.plans.models import KeyResult, Milestone, MilestoneStatus
from engine.reports import REPORT_NAMES, parse_filters, report_to_dict, run_report, summaries
from engine.reports.summaries import rebuild_summaries, refresh_stale, refresh_summaries_job, stale_count
from tests.reports_random import (
    SEGMENTS,
    RandomWorld,
    add_adoption,
    add_enrollment,
    add_plan,
    add_reach,
    add_response,
    build_random_world,
)

TODAY = dt.date(2026, 7, 10)
HALF_YEAR = {"from": "2026-01-01", "to": "2026-06-30"}
VARIANTS: tuple[dict[str, str], ...] = (
    HALF_YEAR,
    {"from": "2026-03-01", "to": "2026-04-15"},
    {},  # the default: the last 90 days
    {**HALF_YEAR, "group_by": "segment"},
    {**HALF_YEAR, "group_by": "stage"},
    {**HALF_YEAR, "group_by": "trait.industry"},
    {**HALF_YEAR, "segment": "smb"},
    {**HALF_YEAR, "trait.industry": "retail", "stage": "adoption"},
    {**HALF_YEAR, "campaign": "onboard"},
    {**HALF_YEAR, "campaign": "nudge", "group_by": "segment"},
)
SUMMARY_TABLES = (
    "report_plan_facts",
    "report_kr_facts",
    "report_enrollment_facts",
    "report_enrollment_channel_facts",
    "report_response_facts",
    "report_reach_facts",
)


def variants(name: str) -> list[dict[str, str]]:
    found = list(VARIANTS)
    if name in ("survey-funnel", "campaign-funnel"):
        found.append({**HALF_YEAR, "group_by": "channel"})
    return found


def as_dict(session: Session, name: str, params: dict[str, str], *, raw: bool) -> dict[str, Any]:
    result = report_to_dict(run_report(session, name, parse_filters(params, today=TODAY), raw=raw))
    result.pop("generated_at")
    return result


def differences(session: Session) -> list[str]:
    """Every report x variant whose summary-backed result differs from the raw one."""
    found = []
    for name in REPORT_NAMES:
        for params in variants(name):
            if as_dict(session, name, params, raw=True) != as_dict(session, name, params, raw=False):
                found.append(f"{name} {params}")
    return found


def refresh_all(session: Session) -> int:
    total = 0
    while done := refresh_stale(session, batch=50):  # small batches: several rounds
        total += done
    return total


def summary_rows(session: Session) -> dict[str, list[Any]]:
    return {t: sorted(session.execute(text(f"SELECT * FROM {t}")).all(), key=str) for t in SUMMARY_TABLES}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_summary_reports_equal_raw_reports_on_random_data(db: Session, seed: int) -> None:
    build_random_world(db, seed)
    assert stale_count(db) > 0  # the triggers marked the new rows
    assert refresh_all(db) > 0
    assert stale_count(db) == 0
    assert differences(db) == []


def test_incremental_refresh_equals_a_full_rebuild(db: Session) -> None:
    build_random_world(db, 4)
    refresh_all(db)
    incremental = summary_rows(db)
    assert all(incremental.values())
    rebuild_summaries(db)
    assert summary_rows(db) == incremental


def _change_everything(db: Session, world: RandomWorld, rng: random.Random) -> None:
    """A new plan, a milestone achieved, a message opened, a segment changed, a KR met, a response
    completed, a survey shown, page views and revisions, an enrolment begun, a global holdout joined."""
    planless = next(a for a in world.accounts if all(p.account_id != a.id for p in world.plans))
    world.plans.append(add_plan(db, rng, planless))
    pending = db.scalars(select(Milestone).where(Milestone.status != MilestoneStatus.ACHIEVED)).first()
    assert pending is not None
    pending.status, pending.achieved_at = MilestoneStatus.ACHIEVED, dt.datetime(2026, 6, 20, tzinfo=dt.UTC)
    message = db.scalars(select(Message).where(Message.status == MessageStatus.DELIVERED)).first()
    assert message is not None
    message.status, message.opened_at = MessageStatus.OPENED, dt.datetime(2026, 6, 21, tzinfo=dt.UTC)
    moved = world.accounts[0]
    moved.segment = "enterprise" if moved.segment != "enterprise" else "smb"
    world.accounts[1].traits = {"industry": "retail"}
    world.accounts[2].holdout_group = not world.accounts[2].holdout_group
    kr = db.scalars(select(KeyResult).where(KeyResult.current < KeyResult.target)).first()
    assert kr is not None
    kr.current = kr.target
    add_response(db, rng, world, world.accounts[3])
    add_reach(db, rng, world, world.accounts[4])
    for plan in world.plans[:3]:
        add_adoption(db, rng, plan)
    campaign = db.scalars(select(Campaign).where(Campaign.key == "onboard")).one()
    enrolled = {e.account_id for e in world.enrollments if e.campaign_id == campaign.id}
    newcomer = next(a for a in world.accounts if a.id not in enrolled)
    add_enrollment(db, rng, world, newcomer, campaign)
    db.flush()


def test_incremental_maintenance_keeps_summaries_equal_after_changes(db: Session) -> None:
    world = build_random_world(db, 5)
    refresh_all(db)
    assert differences(db) == []
    _change_everything(db, world, random.Random(5))
    assert stale_count(db) > 0
    assert differences(db) != []  # stale summaries show: the comparison can tell
    refresh_all(db)
    assert differences(db) == []
    incremental = summary_rows(db)
    rebuild_summaries(db)
    assert summary_rows(db) == incremental


def test_deleting_source_rows_removes_their_summary_rows(db: Session) -> None:
    world = build_random_world(db, 6)
    refresh_all(db)
    gone = world.accounts[0]
    db.delete(gone)
    db.flush()
    refresh_all(db)
    for table in SUMMARY_TABLES:
        if table == "report_enrollment_channel_facts":  # keyed by enrolment only: no row may outlive it
            orphans = (
                f"SELECT count(*) FROM {table} f"
                " WHERE NOT EXISTS (SELECT 1 FROM enrollments e WHERE e.id = f.enrollment_id)"
            )
            assert db.scalar(text(orphans)) == 0
            continue
        assert db.scalar(text(f"SELECT count(*) FROM {table} WHERE account_id = :a"), {"a": gone.id}) == 0
    assert differences(db) == []


def test_refreshing_twice_changes_nothing(db: Session) -> None:
    build_random_world(db, 7)
    refresh_all(db)
    before = summary_rows(db)
    db.execute(text("INSERT INTO report_dirty (kind, id) SELECT 'account', id FROM accounts"))
    refresh_all(db)
    assert summary_rows(db) == before


def test_two_refresh_jobs_at_once_share_the_work(database: Database) -> None:
    with database.transaction() as session:
        build_random_world(session, 9, accounts=30)
        session.execute(text("INSERT INTO report_dirty (kind, id) SELECT 'account', id FROM accounts"))
    failures: list[Exception] = []

    def work() -> None:
        try:
            refresh_summaries_job(batch=7)  # plans and their accounts land in different batches
        except Exception as exc:  # asserted below, in the test's own thread
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert failures == []
    with database.transaction() as session:
        assert stale_count(session) == 0
        assert differences(session) == []


def test_a_commit_queues_the_refresh_job_and_the_worker_applies_it(
    database: Database, redis_conn: Redis, run_worker: Callable[[], bool]
) -> None:
    with database.transaction() as session:
        world = build_random_world(session, 8, accounts=15)
        account_id = world.accounts[0].id
    reports = Queue("reports", connection=redis_conn)
    assert reports.count >= 1
    run_worker()
    with database.transaction() as session:
        assert stale_count(session) == 0
        assert differences(session) == []
    with database.transaction() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.segment = "strategic"
    assert reports.count == 1  # one wake-up per transaction
    run_worker()
    with database.transaction() as session:
        assert stale_count(session) == 0
        assert differences(session) == []
        segments = session.scalars(
            text("SELECT segment FROM report_enrollment_facts WHERE account_id = :a"), {"a": account_id}
        ).all()
        assert segments and set(segments) == {"strategic"}


def test_a_burst_of_commits_queues_one_refresh_job(
    database: Database, redis_conn: Redis, run_worker: Callable[[], bool]
) -> None:
    """The refresh reads its keys from report_dirty, so one waiting job serves every commit before it
    starts (engine.queue's coalescing); a commit after it started queues the next one."""
    with database.transaction() as session:
        world = build_random_world(session, 9, accounts=6)
        ids = [a.id for a in world.accounts]
    reports = Queue("reports", connection=redis_conn)
    for n, account_id in enumerate(ids):
        with database.transaction() as session:
            account = session.get(Account, account_id)
            assert account is not None
            account.segment = SEGMENTS[n % len(SEGMENTS)]
    assert reports.count == 1
    run_worker()
    with database.transaction() as session:
        assert stale_count(session) == 0
        assert differences(session) == []
        account = session.get(Account, ids[0])
        assert account is not None
        account.segment = SEGMENTS[-1] if account.segment != SEGMENTS[-1] else SEGMENTS[0]
    assert reports.count == 1
    run_worker()
    with database.session() as session:
        assert stale_count(session) == 0
        assert differences(session) == []


def test_a_job_that_leaves_a_backlog_queues_the_next_one(
    database: Database, redis_conn: Redis, run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    with database.transaction() as session:
        build_random_world(session, 10, accounts=4)
    redis_conn.flushdb()  # the commit's own job: this test runs the refresh itself
    monkeypatch.setattr(summaries, "MAX_BATCHES_PER_JOB", 1)
    assert refresh_summaries_job(batch=1) == 1
    assert Queue("reports", connection=redis_conn).count == 1
    monkeypatch.undo()
    run_worker()
    with database.session() as session:
        assert stale_count(session) == 0
