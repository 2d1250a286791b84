"""Widget/API responses leave their rules to the `rules` job (surveys.rules_queue, ADR 0009):
answered at once, applied once, in order, whole batches or nothing, and never stranded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from redis import Redis
from rq import Queue
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from sqlalchemy import func, select, update

from engine import queue
from engine.accounts import ContactRole
from engine.config import Settings
from engine.db import Database, utcnow
from engine.notes import AccountNote
from engine.plans.models import SuccessPlan
from surveys import rules_queue
from surveys.models import Response
from surveys.plan_link import SALT
from surveys.rules_queue import apply_queued_rules_job, queued_count, sweep_stranded
from tests.factories import make_account, response_payload

URL = "/api/v1/surveys/outcomes/responses"
ACCOUNTS = ("acme", "globex", "initech", "umbrella", "hooli")


@pytest.fixture
def client(api_client: FlaskClient) -> FlaskClient:
    return api_client


@pytest.fixture
def accounts(database: Database, recruiting: dict[str, int]) -> tuple[str, ...]:
    with database.transaction() as session:
        for name in ACCOUNTS:
            make_account(session, name, contacts=((f"sofia@{name}.example", ContactRole.CHAMPION),))
    return ACCOUNTS


def plans(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SuccessPlan)) or 0)


def submit_all(client: FlaskClient, names: tuple[str, ...]) -> list[dict[str, Any]]:
    bodies = []
    for name in names:
        response = client.post(URL, json=response_payload(name))
        assert response.status_code == 201, response.get_json()
        bodies.append(response.get_json())
    return bodies


def local(url: str) -> str:
    return url.removeprefix("http://northstar.test")


@pytest.fixture
def decided(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int | None, int]]:
    """(account id, response id) of every answer the job decides, in the order decided (from any
    thread)."""
    seen: list[tuple[int | None, int]] = []
    lock = threading.Lock()
    apply = rules_queue._apply

    def recorded(session: Any, item: Any, now: dt.datetime, facts: Any = None) -> None:
        apply(session, item, now, facts)
        with lock:
            seen.append((item.account_id, item.response_id))

    monkeypatch.setattr(rules_queue, "_apply", recorded)
    return seen


def test_the_pending_link_waits_for_the_job_then_opens_the_plan(
    client: FlaskClient, database: Database, accounts: tuple[str, ...]
) -> None:
    (body,) = submit_all(client, ("acme",))
    link = local(body["plan"]["share_url"])

    waiting = client.get(link)

    assert waiting.status_code == 200
    assert waiting.headers["Refresh"] == "2" and waiting.headers["Cache-Control"] == "no-store"
    assert "Preparing your success plan" in waiting.get_data(as_text=True)

    apply_queued_rules_job()
    ready = client.get(link)

    assert ready.status_code == 302
    assert "/p/r/" not in ready.headers["Location"]
    assert "Acme Inc" in client.get(ready.headers["Location"]).get_data(as_text=True)


def test_a_long_wait_says_so_and_checks_less_often(
    client: FlaskClient, database: Database, accounts: tuple[str, ...]
) -> None:
    (body,) = submit_all(client, ("acme",))
    with database.transaction() as session:  # no worker for five minutes
        session.execute(update(Response).values(rules_queued_at=utcnow() - dt.timedelta(minutes=5)))

    page = client.get(local(body["plan"]["share_url"]))

    assert page.status_code == 200 and page.headers["Refresh"] == "15"
    assert "taking longer than usual" in page.get_data(as_text=True)


def test_an_applied_response_without_a_plan_says_so(
    client: FlaskClient, database: Database, accounts: tuple[str, ...]
) -> None:
    (body,) = submit_all(client, ("acme",))
    with database.transaction() as session:  # as if the rules had decided on no plan
        session.execute(update(Response).values(rules_queued_at=None))

    page = client.get(local(body["plan"]["share_url"]))

    assert page.status_code == 200 and "Refresh" not in page.headers
    assert "did not call for a new success plan" in page.get_data(as_text=True)


def test_forged_and_expired_pending_links_are_friendly_404s(
    client: FlaskClient, settings: Settings, accounts: tuple[str, ...]
) -> None:
    (body,) = submit_all(client, ("acme",))
    response_id = body["id"]

    class DayOld(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 24 * 3600

    expired = URLSafeTimedSerializer(settings.secret_key, salt=SALT, signer=DayOld).dumps(response_id)
    forged = URLSafeTimedSerializer("not-our-key", salt=SALT).dumps(response_id)

    for token, says in ((expired, "expired"), (forged, "not valid"), ("x" * 500, "not valid")):
        page = client.get(f"/p/r/{token}")
        assert page.status_code == 404
        assert says in page.get_data(as_text=True)


def test_a_burst_queues_one_job_and_the_worker_applies_every_response_once(
    client: FlaskClient,
    database: Database,
    accounts: tuple[str, ...],
    redis_conn: Redis,
    run_worker: Callable[[], bool],
) -> None:
    submit_all(client, accounts)

    assert Queue("default", connection=redis_conn).count == 1  # coalesced: one job for the burst
    assert plans(database) == 0
    run_worker()

    assert plans(database) == len(accounts)
    with database.session() as session:
        assert queued_count(session) == 0
    assert apply_queued_rules_job() == 0  # nothing new: nothing applied twice
    assert plans(database) == len(accounts)


def test_answers_that_arrive_while_the_job_lingers_join_it(
    client: FlaskClient,
    database: Database,
    accounts: tuple[str, ...],
    redis_conn: Redis,
    run_worker: Callable[[], bool],
) -> None:
    """The job a commit wakes waits out its linger (engine.queue, ADR 0012) before it reads the
    queue: answers committed meanwhile queue no job of their own and are applied by that one."""
    queue.current().linger_s = 2.0
    first, *rest = accounts
    submit_all(client, (first,))
    default = Queue("default", connection=redis_conn)
    assert default.count == 1
    late: list[dict[str, Any]] = []

    def answer_while_it_lingers() -> None:
        registry = StartedJobRegistry(queue=default)
        deadline = time.monotonic() + 10
        while not registry.get_job_ids() and time.monotonic() < deadline:
            time.sleep(0.01)
        late.extend(submit_all(client, tuple(rest)))

    answering = threading.Thread(target=answer_while_it_lingers)
    answering.start()
    run_worker()  # in this thread: RQ's job timeout needs the main thread's signals
    answering.join()

    assert len(late) == len(rest)
    assert plans(database) == len(accounts)
    ran = [default.fetch_job(job_id) for job_id in FinishedJobRegistry(queue=default).get_job_ids()]
    assert [job.func_name for job in ran if job] == ["surveys.rules_queue.apply_queued_rules_job"]


def test_a_backlog_beyond_one_batch_is_drained_in_order(
    client: FlaskClient,
    database: Database,
    accounts: tuple[str, ...],
    decided: list[tuple[int | None, int]],
) -> None:
    submit_all(client, accounts)

    assert apply_queued_rules_job(limit=2) == len(accounts)  # three batches in one job

    seen = [response_id for _, response_id in decided]
    assert seen == sorted(seen) and len(seen) == len(accounts)
    assert plans(database) == len(accounts)


def test_one_failing_response_does_not_hold_back_its_batch(
    client: FlaskClient, database: Database, accounts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.wiring
    from engine.automation import run_rules

    def flaky(session: Any, account: Any, **kw: Any) -> Any:
        if account.external_id == "initech":
            raise RuntimeError("a rule action failed")
        return run_rules(session, account, **kw)

    monkeypatch.setattr(engine.wiring, "run_rules", flaky)
    submit_all(client, accounts)

    assert apply_queued_rules_job() == len(accounts)

    assert plans(database) == len(accounts) - 1
    with database.session() as session:
        assert queued_count(session) == 0  # dequeued and logged; the response itself is kept
        assert session.scalar(select(func.count()).select_from(Response)) == len(accounts)
        (note,) = session.scalars(select(AccountNote)).all()  # and CS ops see it on the account
        assert note.author == "rules job"
        assert "RuntimeError: a rule action failed" in note.body and "Re-run rules" in note.body


def test_a_row_the_database_refuses_at_the_batchs_flush_holds_back_only_its_response(
    client: FlaskClient, database: Database, accounts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch writes its rows in one flush at the end (ADR 0011), so a row the database refuses
    fails the whole batch there, not in the decision that made it; the one-at-a-time retry then
    finds that response, notes it on its account, and applies the others."""
    import engine.automation
    from engine.plans.service import create_plan

    def goal_less(session: Any, account: Any, *args: Any, **kw: Any) -> Any:
        plan = create_plan(session, account, *args, **kw)
        if account.external_id == "initech":
            plan.goal = None  # NOT NULL: refused by PostgreSQL when flushed
        return plan

    monkeypatch.setattr(engine.automation, "create_plan", goal_less)
    submit_all(client, accounts)

    assert apply_queued_rules_job() == len(accounts)

    assert plans(database) == len(accounts) - 1
    with database.session() as session:
        assert queued_count(session) == 0
        (note,) = session.scalars(select(AccountNote)).all()
        assert "IntegrityError" in note.body and "goal" in note.body


class Crash(BaseException):
    """A worker killed mid-batch (not an Exception: nothing catches it)."""


def test_a_batch_interrupted_midway_commits_nothing_and_is_applied_later(
    client: FlaskClient, database: Database, accounts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    submit_all(client, accounts)
    apply = rules_queue._apply
    calls: list[int] = []

    def dies_on_the_third(session: Any, item: Any, now: dt.datetime) -> None:
        calls.append(item.response_id)
        if len(calls) == 3:
            raise Crash
        apply(session, item, now)

    monkeypatch.setattr(rules_queue, "_apply", dies_on_the_third)
    with pytest.raises(Crash):
        apply_queued_rules_job()

    assert plans(database) == 0
    with database.session() as session:
        assert queued_count(session) == len(accounts)
    monkeypatch.setattr(rules_queue, "_apply", apply)
    assert apply_queued_rules_job() == len(accounts)
    assert plans(database) == len(accounts)


def test_two_appliers_at_once_make_each_plan_once(
    client: FlaskClient, database: Database, accounts: tuple[str, ...]
) -> None:
    submit_all(client, accounts)
    # Every account answers a second time before any job runs: two responses, one plan each.
    submit_all(client, accounts)
    done: list[int] = []
    threads = [
        threading.Thread(target=lambda: done.append(apply_queued_rules_job(limit=3))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sum(done) == 2 * len(accounts)
    assert plans(database) == len(accounts)


def test_appliers_run_side_by_side(
    client: FlaskClient, database: Database, accounts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one worker's job is mid-batch, a second worker's job applies what the first has not
    taken: plans are made by as many workers as there are, not one at a time."""
    submit_all(client, accounts)
    apply = rules_queue._apply
    mid_batch, go_on = threading.Event(), threading.Event()

    def paused(session: Any, item: Any, now: dt.datetime, facts: Any = None) -> None:
        if threading.current_thread() is ahead:
            mid_batch.set()
            go_on.wait(timeout=30)
        apply(session, item, now, facts)

    monkeypatch.setattr(rules_queue, "_apply", paused)
    done: dict[str, int] = {}
    ahead = threading.Thread(target=lambda: done.update(ahead=apply_queued_rules_job(limit=2)))
    beside = threading.Thread(target=lambda: done.update(beside=apply_queued_rules_job()))
    try:
        ahead.start()
        assert mid_batch.wait(timeout=30)
        beside.start()
        beside.join(timeout=30)
        assert done.get("beside") == len(accounts) - 2, "the second applier waited for the first"
    finally:
        go_on.set()
        ahead.join(timeout=30)
        beside.join(timeout=30)

    assert done["ahead"] == 2
    assert plans(database) == len(accounts)


def test_an_accounts_answers_are_decided_in_order_whichever_applier_takes_them(
    client: FlaskClient,
    database: Database,
    accounts: tuple[str, ...],
    redis_conn: Redis,
    decided: list[tuple[int | None, int]],
) -> None:
    """One applier takes acme's first answer; before it locks acme, another takes acme's second
    answer and locks acme first. The second leaves that answer queued (with a job to take it up)
    rather than decide it before the first."""
    first, second = (submit_all(client, ("acme",))[0]["id"] for _ in range(2))
    submit_all(client, accounts[1:])
    default = Queue("default", connection=redis_conn)
    woken = default.count  # the job the answers' commits woke (not run here)
    ahead = database.session()
    assert [item.response_id for item in rules_queue._take(ahead, 1)] == [first]
    try:
        assert apply_queued_rules_job() == len(accounts) - 1  # all but acme's two
        assert second not in [response_id for _, response_id in decided]
        with database.session() as session:
            waiting = session.scalar(select(Response.rules_queued_at).where(Response.id == second))
            assert waiting is not None
        assert default.count == woken + 1  # a job to take it up later
    finally:
        ahead.rollback()
        ahead.close()

    assert apply_queued_rules_job() == 2
    assert [response_id for _, response_id in decided[-2:]] == [first, second]
    assert plans(database) == len(accounts)


@pytest.mark.slow
def test_four_appliers_over_interleaved_answers_apply_each_once_in_order_per_account(
    client: FlaskClient,
    database: Database,
    recruiting: dict[str, int],
    decided: list[tuple[int | None, int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twelve accounts answer three times each, interleaved; four jobs of small batches apply them
    at once: every answer once, each account's in the order stored, one plan per account, and no
    batch failing (a deadlock between appliers would surface as one)."""
    names = tuple(f"firm{n:02d}" for n in range(12))
    with database.transaction() as session:
        for name in names:
            make_account(session, name, contacts=((f"sofia@{name}.example", ContactRole.CHAMPION),))
    stored = [body["id"] for _ in range(3) for body in submit_all(client, names)]

    def applier() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            apply_queued_rules_job(limit=4)
            with database.session() as session:
                if queued_count(session) == 0:
                    return

    with caplog.at_level("WARNING", logger="surveys.rules_queue"):
        threads = [threading.Thread(target=applier) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)

    assert not [r.getMessage() for r in caplog.records if r.name == "surveys.rules_queue"]
    # (Applied inside a batch that later rolled back would be counted twice: none did, above.)
    assert sorted(rid for _, rid in decided) == sorted(stored)
    by_account: dict[int | None, list[int]] = {}
    for account_id, response_id in decided:
        by_account.setdefault(account_id, []).append(response_id)
    assert len(by_account) == len(names)
    assert all(ids == sorted(ids) for ids in by_account.values()), by_account
    assert plans(database) == len(names)


def test_the_scheduler_sweep_requeues_responses_whose_job_was_lost(
    client: FlaskClient, database: Database, accounts: tuple[str, ...], redis_conn: Redis
) -> None:
    submit_all(client, ("acme",))
    redis_conn.flushdb()  # the job and its coalescing key are gone
    with database.transaction() as session:
        assert sweep_stranded(session, now=utcnow()) is False  # too fresh to call lost
        assert sweep_stranded(session, now=utcnow() + dt.timedelta(seconds=31)) is True

    assert Queue("default", connection=redis_conn).count == 1
    assert apply_queued_rules_job() == 1
    with database.transaction() as session:
        assert sweep_stranded(session, now=utcnow() + dt.timedelta(hours=1)) is False


def test_without_redis_the_request_applies_the_rules_and_answers_with_the_plan(
    pg_engine: Any, settings: Settings, accounts: tuple[str, ...], api_token: str
) -> None:
    """The demo's synchronous mode: jobs would run in-process right after commit anyway."""
    from web import create_app

    demo_settings = dataclasses.replace(settings, redis_url=None, allow_sync_jobs=True)
    demo = create_app({"SETTINGS": demo_settings, "DATABASE": Database(demo_settings, engine=pg_engine)})
    try:
        client = demo.test_client()
        response = client.post(
            URL, json=response_payload("acme"), headers={"Authorization": f"Bearer {api_token}"}
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["plan"]["status"] == "ready"
        assert "Acme Inc" in response.get_json()["plan"]["goal"]
    finally:
        queue.configure(queue.build_runner(settings))  # the suite's app runs with Redis again
