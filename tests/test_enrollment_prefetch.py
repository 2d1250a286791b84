"""The `rules` job reads its batch's enrolments in one statement (campaigns.enrollment.
prefetch_enrollments, sent `decisions_starting`); enrolling and exiting then answer from what was
read, exactly as they do when they ask the database, and forget it when it may be stale."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account, exit_account, prefetch_enrollments
from campaigns.models import Enrollment, EnrollmentState
from engine.playbook import import_playbook, resolve_playbook
from tests.factories import make_account

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)


@pytest.fixture
def selects(pg_engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT") and "FROM enrollments" in statement:
            seen.append(statement)

    event.listen(pg_engine, "before_cursor_execute", record)
    yield seen
    event.remove(pg_engine, "before_cursor_execute", record)


@pytest.fixture
def accounts(db: Session) -> tuple[int, int]:
    import_playbook(db, resolve_playbook("recruiting")[1])
    enrolled, new = (make_account(db, name, contacts=()) for name in ("enrolled", "new"))
    db.flush()
    enroll_account(db, enrolled.id, "nurture", now=NOW, reason="earlier")
    db.commit()  # a new transaction for the batch, as the job has
    return enrolled.id, new.id


def enrolments(db: Session, account_id: int) -> int:
    return int(db.scalar(select(func.count()).where(Enrollment.account_id == account_id)) or 0)


def test_after_the_prefetch_enrolling_asks_nothing_and_stays_idempotent(
    db: Session, accounts: tuple[int, int], selects: list[str]
) -> None:
    enrolled, new = accounts
    prefetch_enrollments(db, [enrolled, new])
    assert len(selects) == 1

    existing, created = enroll_account(db, enrolled, "nurture", now=NOW, reason="rule")
    assert not created and existing.id is not None
    first, created = enroll_account(db, new, "nurture", now=NOW, reason="rule")
    assert created
    again, created = enroll_account(db, new, "nurture", now=NOW, reason="rule")
    assert not created and again is first
    assert exit_account(db, new, "nurture", now=NOW, reason="rule") is first
    assert first.state == EnrollmentState.EXITED
    assert len(selects) == 1
    db.flush()
    assert enrolments(db, new) == 1


def test_an_account_outside_the_prefetch_is_still_asked_for(
    db: Session, accounts: tuple[int, int], selects: list[str]
) -> None:
    enrolled, new = accounts
    prefetch_enrollments(db, [new])
    _, created = enroll_account(db, enrolled, "nurture", now=NOW, reason="rule")
    assert not created
    assert len(selects) == 2


def test_a_bulk_statement_or_the_transactions_end_forgets_what_was_read(
    db: Session, accounts: tuple[int, int], selects: list[str]
) -> None:
    enrolled, new = accounts
    prefetch_enrollments(db, [enrolled, new])
    db.execute(update(Enrollment).where(Enrollment.account_id == enrolled).values(current_step=0))
    enroll_account(db, enrolled, "nurture", now=NOW, reason="rule")
    assert len(selects) == 2  # asked again

    prefetch_enrollments(db, [enrolled, new])
    db.commit()
    enroll_account(db, new, "nurture", now=NOW, reason="rule")
    assert len(selects) == 4
    assert enrolments(db, new) == 1
