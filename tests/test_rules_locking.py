"""Two rules decisions for one account at the same moment (a hosted-page answer while the `rules`
job applies a widget answer, two colleagues answering at once): the second waits for the first
and keeps its plan (engine.automation.lock_accounts). Without the lock both saw no plan, and the
second failed on the one-plan-per-account constraint: an error page for the colleague, a
"rules failed" note from the job."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import func, select

from engine.accounts import ContactRole
from engine.db import Database, utcnow
from engine.notes import AccountNote
from engine.plans.models import PlanStatus, SuccessPlan
from surveys.rules_queue import apply_queued_rules_job
from surveys.service import ContactRef, ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers


def answer(database: Database, email: str, *, defer: bool = False) -> None:
    payload = ResponseIn(
        client_response_id=str(uuid.uuid4()),
        account="acme",
        answers=outcomes_answers(),
        contact=ContactRef(email=email),
    )
    with database.transaction() as session:
        submit_response(session, "outcomes", payload, now=utcnow(), defer_rules=defer)


def active_plans(database: Database) -> int:
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(SuccessPlan).where(SuccessPlan.status == PlanStatus.ACTIVE)
            )
            or 0
        )


def test_a_second_decision_waits_for_the_first_and_keeps_its_plan(
    database: Database, recruiting: dict[str, int]
) -> None:
    with database.transaction() as session:
        contacts = (("sofia@acme.example", ContactRole.CHAMPION), ("ida@acme.example", ContactRole.OTHER))
        make_account(session, "acme", contacts=contacts)
    payload = ResponseIn(
        client_response_id=str(uuid.uuid4()), account="acme", answers=outcomes_answers(), contact=None
    )
    second_done = threading.Event()
    errors: list[BaseException] = []

    def colleague() -> None:
        try:
            answer(database, "ida@acme.example")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            second_done.set()

    with database.transaction() as session:
        result = submit_response(session, "outcomes", payload, now=utcnow())
        assert result.created  # this transaction made the plan and holds the account's lock
        thread = threading.Thread(target=colleague)
        thread.start()
        # Without the lock the colleague's decision sees no plan (ours is not committed), makes one
        # and fails on the constraint; with it, it waits for our commit and then sees ours.
        assert not second_done.wait(1.0), errors
    thread.join(timeout=30)
    assert second_done.is_set() and not errors, errors
    assert active_plans(database) == 1


def test_the_job_and_a_request_on_one_account_make_one_plan(
    database: Database, recruiting: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with database.transaction() as session:
        make_account(session, "acme")
    answer(database, "sofia@acme.example", defer=True)  # waits for the job
    done = threading.Event()

    def job() -> None:
        apply_queued_rules_job()
        done.set()

    with database.transaction() as session:
        payload = ResponseIn(
            client_response_id=str(uuid.uuid4()),
            account="acme",
            answers=outcomes_answers(),
            contact=ContactRef(email="johnny@acme.example"),
        )
        submit_response(session, "outcomes", payload, now=utcnow())  # inline: the plan, and the lock
        runner = threading.Thread(target=job)
        runner.start()
        time.sleep(0.5)
        assert not done.is_set()  # the job waits on the account
    runner.join(timeout=30)
    assert done.is_set()
    assert active_plans(database) == 1
    # The job waited for the account instead of failing its batch on the constraint and redoing it.
    assert not [r for r in caplog.records if "batch of queued rules failed" in r.getMessage()]
    with database.session() as session:
        assert session.scalars(select(AccountNote)).all() == []
