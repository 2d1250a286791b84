"""Writing a batch in one flush (engine.db.deferred_flushes) with keys drawn up front
(engine.db.assign_ids): what the rules job uses to write a hundred plans at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.db import assign_ids, deferred_flushes, flush, utcnow
from engine.notes import AccountNote
from engine.plans.models import PlanStatus, SuccessPlan
from tests.factories import make_account


@pytest.fixture
def statements(pg_engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(pg_engine, "before_cursor_execute", record)
    yield seen
    event.remove(pg_engine, "before_cursor_execute", record)


def note(account: Account, body: str) -> AccountNote:
    return AccountNote(account_id=account.id, body=body, author="test", created_at=utcnow())


def notes(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AccountNote)) or 0)


def test_inside_the_block_nothing_is_written_and_at_its_end_everything_is(db: Session) -> None:
    account = make_account(db)
    db.flush()
    with deferred_flushes(db):
        db.add(note(account, "first"))
        flush(db)  # what domain code calls: a no-op in the block
        assert notes(db) == 0  # and queries do not autoflush
        db.add(note(account, "second"))
    assert notes(db) == 2


def test_blocks_nest_and_only_the_outer_one_flushes(db: Session) -> None:
    account = make_account(db)
    db.flush()
    with deferred_flushes(db):
        with deferred_flushes(db):
            db.add(note(account, "inner"))
        assert notes(db) == 0
    assert notes(db) == 1
    db.add(note(account, "after"))
    flush(db)  # outside a block it flushes again
    assert "northstar.deferred_flush" not in db.info


def test_the_block_is_left_clean_when_it_raises(db: Session) -> None:
    with pytest.raises(RuntimeError), deferred_flushes(db):
        raise RuntimeError("a decision failed")
    assert "northstar.deferred_flush" not in db.info
    assert db.autoflush


def test_assign_ids_draws_each_tables_keys_in_one_statement_and_the_flush_returns_nothing(
    db: Session, statements: list[str]
) -> None:
    accounts = [make_account(db, f"batch-{i}", contacts=()) for i in range(3)]
    db.flush()
    kept = note(accounts[0], "already has its key")
    kept.id = 10_000_000
    rows = [note(a, f"note {i}") for i, a in enumerate(accounts * 3)]
    plans = [
        SuccessPlan(
            account_id=a.id,
            template_key="t",
            status=PlanStatus.ACTIVE,
            goal="g",
            started_at=utcnow(),
            review_date=utcnow().date(),
        )
        for a in accounts
    ]
    db.add_all([kept, *rows, *plans])
    statements.clear()

    assert assign_ids(db) == len(rows) + len(plans)

    assert len(statements) == 2  # one per table
    assert kept.id == 10_000_000
    ids = [r.id for r in rows]
    assert None not in ids and len(set(ids)) == len(ids)
    assert all(p.id is not None for p in plans)
    statements.clear()
    db.flush()
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == 2
    assert not [s for s in inserts if "RETURNING" in s]
    stored = db.scalars(select(AccountNote.id).where(AccountNote.id.in_(ids))).all()
    assert sorted(stored) == sorted(ids)
