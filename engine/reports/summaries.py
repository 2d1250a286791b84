"""Summary rows the reports read instead of raw rows: which keys are stale, and the job that refreshes them.

PostgreSQL triggers (migration 0016) write the key of every changed row that a summary depends on
into `report_dirty` (kind, id) in the changing transaction itself, so no write path (ORM, bulk
UPDATE, raw SQL) can be missed and a lost job loses nothing. After a commit that wrote a watched
table, `refresh_summaries_job` is enqueued on the `reports` queue; it takes a batch of stale keys
(`FOR UPDATE SKIP LOCKED`: it never waits for a writer still holding a key), recomputes exactly
those summary rows from the source tables and deletes the keys, all in one transaction; batches
run one at a time (an advisory lock), so running the job twice, or two at once, is harmless.
`northstar reports rebuild` recomputes everything.

Packages register their summaries here (engine owns the framework; docs/adr/0002): a refresher
(stale keys -> rows rewritten), a full rebuild, and the tables whose writes should wake the job.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    String,
    any_,
    delete,
    event,
    func,
    literal,
    text,
)
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, UOWTransaction, mapped_column

from engine import db, queue
from engine.db import Base
from engine.errors import ConfigurationError

log = logging.getLogger(__name__)

BATCH_SIZE = 5000
# Refreshes run one at a time (a transaction-scoped advisory lock): two batches holding a plan and
# its account would otherwise rewrite the same summary rows at once (a duplicate key or deadlock).
REFRESH_LOCK = 7_310_016
REFRESH_JOB = "reports-refresh"  # the coalescing name: one refresh job waits at a time
MAX_BATCHES_PER_JOB = 200  # a backlog larger than 1M keys is left to the next job (or a rebuild)
_WAKE_KEY = "northstar.report_summaries_wake"


class ReportDirty(Base):
    """A key (an account, plan, enrolment or response id) whose summary rows are stale."""

    __tablename__ = "report_dirty"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    marked_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


@dataclass(frozen=True)
class StaleKeys:
    """One batch of stale keys by kind, plus every account they touch (a plan's owner included)."""

    by_kind: dict[str, frozenset[int]]
    accounts: frozenset[int]

    def ids(self, kind: str) -> list[int]:
        return sorted(self.by_kind.get(kind, frozenset()))


Refresher = Callable[[Session, StaleKeys], int]
Rebuilder = Callable[[Session], int]
AccountsOf = Callable[[Session, list[int]], Iterable[int]]


@dataclass(frozen=True)
class Summary:
    name: str
    refresh: Refresher
    rebuild: Rebuilder
    watches: tuple[str, ...]


@dataclass
class _Registry:
    summaries: dict[str, Summary] = field(default_factory=dict)
    # kind -> how to find the accounts a stale key of that kind belongs to (a plan's account, say),
    # so summaries keyed by account-related rows (enrolments) refresh too.
    owners: dict[str, AccountsOf] = field(default_factory=dict)
    watched: frozenset[str] = frozenset()  # every summary's source tables (checked on each flush)


_registry = _Registry()


def register_summary(
    name: str, refresh: Refresher, rebuild: Rebuilder, *, watches: tuple[str, ...] = ()
) -> None:
    """Add (or replace: wiring twice is harmless) one summary; `watches` are the source tables."""
    _registry.summaries[name] = Summary(name, refresh, rebuild, watches)
    _registry.watched = frozenset(t for s in _registry.summaries.values() for t in s.watches)


def register_owner(kind: str, accounts_of: AccountsOf) -> None:
    _registry.owners[kind] = accounts_of


def summaries() -> list[Summary]:
    return [_registry.summaries[name] for name in sorted(_registry.summaries)]


def watched_tables() -> frozenset[str]:
    return _registry.watched


def any_of(column: Any, ids: list[int]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`: one array parameter however many keys a batch holds."""
    condition: ColumnElement[bool] = column == any_(literal(ids, ARRAY(Integer)))
    return condition


def uses_summaries(session: Session) -> bool:
    """Summaries are kept on PostgreSQL only (triggers); the demo's SQLite reads raw rows."""
    return session.get_bind().dialect.name == "postgresql"


# --- draining stale keys --------------------------------------------------------------------------

_TAKE_BATCH = text(
    """
    DELETE FROM report_dirty d
    USING (SELECT kind, id FROM report_dirty LIMIT :batch FOR UPDATE SKIP LOCKED) taken
    WHERE d.kind = taken.kind AND d.id = taken.id
    RETURNING d.kind, d.id
    """
)


def refresh_stale(session: Session, *, batch: int = BATCH_SIZE) -> int:
    """Take up to `batch` stale keys and rewrite their summary rows; returns how many keys were taken."""
    if uses_summaries(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": REFRESH_LOCK})
        # A refresh is index probes for a few thousand keys: JIT compiling would cost more (base.py).
        session.execute(text("SET LOCAL jit = off"))
    taken: dict[str, set[int]] = {}
    for kind, key in session.execute(_TAKE_BATCH, {"batch": batch}):
        taken.setdefault(str(kind), set()).add(int(key))
    if not taken:
        return 0
    accounts = set(taken.get("account", set()))
    for kind, accounts_of in _registry.owners.items():
        if taken.get(kind):
            accounts.update(accounts_of(session, sorted(taken[kind])))
    keys = StaleKeys({k: frozenset(v) for k, v in taken.items()}, frozenset(accounts))
    for summary in summaries():
        summary.refresh(session, keys)
    return sum(len(v) for v in taken.values())


def refresh_summaries_job(batch: int = BATCH_SIZE, backlog: bool = False) -> int:
    """RQ entry point (queue `reports`): refresh every stale key, one batch per transaction.

    Takes no arguments because the keys are already in `report_dirty`, written by the same
    transactions that changed the rows; two of these running at once split the work. Coalesced
    (engine.queue): one waits at a time, and it frees its name as it starts (after the linger,
    unless it is the `backlog` left by the one before).
    """
    try:
        runner: queue.JobRunner | None = queue.current()
    except ConfigurationError:
        runner = None  # run by hand (northstar reports refresh): no job runner, nothing to release
    if runner is not None:
        # before the first batch: later commits queue a new job
        runner.release_coalesced(REFRESH_JOB, linger=not backlog)
    total = done = 0
    for _ in range(MAX_BATCHES_PER_JOB):
        with db.current().transaction() as session:
            done = refresh_stale(session, batch=batch)
        total += done
        if done == 0:
            break
    if done and runner is not None and runner.redis is not None:  # a backlog left: the next job takes it
        runner.enqueue_many(
            [queue.PendingJob("reports", refresh_summaries_job, (batch, True), None, REFRESH_JOB)]
        )
    return total


def stale_count(session: Session) -> int:
    return int(session.scalar(text("SELECT count(*) FROM report_dirty")) or 0)


def rebuild_summaries(session: Session) -> dict[str, int]:
    """Recompute every summary from the source tables (after a restore or a bulk load)."""
    if uses_summaries(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": REFRESH_LOCK})
    session.execute(delete(ReportDirty))
    return {summary.name: summary.rebuild(session) for summary in summaries()}


# --- waking the job after a commit that wrote a watched table -------------------------------------


def wake_refresh(session: Session) -> None:
    """Queue the refresh job for when `session` commits (once per transaction). The listeners below
    call it for ORM writes; a path writing watched tables through the driver (the bulk tick) calls it
    itself, or its stale keys would wait for the next ORM write."""
    if session.info.get(_WAKE_KEY) or not uses_summaries(session):
        return
    try:
        runner = queue.current()
    except ConfigurationError:
        return  # no job runner in this process (a script): the keys wait for the next job or rebuild
    if runner.refuse_reason:
        return
    session.info[_WAKE_KEY] = True
    queue.enqueue_after_commit(session, "reports", refresh_summaries_job, coalesce=REFRESH_JOB)


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    watched = watched_tables()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if getattr(type(obj), "__tablename__", None) in watched:
            wake_refresh(session)
            return


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table: Any = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in watched_tables():
        wake_refresh(state.session)


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_WAKE_KEY, None)


def connect() -> None:
    """Listen to every Session (idempotent): a commit writing a watched table wakes the job."""
    for name, listener in (
        ("after_flush", _after_flush),
        ("do_orm_execute", _on_execute),
        ("after_commit", _forget),
        ("after_rollback", _forget),
    ):
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)
