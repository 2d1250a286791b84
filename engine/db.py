"""Database wiring: the declarative Base, portable column types, engines and sessions."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    DateTime,
    Engine,
    Integer,
    MetaData,
    any_,
    bindparam,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from engine.config import Settings

# PostgreSQL's `integer`, the type of every id column: a larger number names no row, and compared
# with one the query fails ("integer out of range") rather than finding nothing.
MAX_ID = 2**31 - 1

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON on the demo's SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is dt.UTC:
            return value  # the common case; astimezone costs ~10 µs, and a tick binds 100k of them
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dt.datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
    }


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def id_in(session: Session, column: InstrumentedAttribute[int], ids: Collection[int]) -> ColumnElement[bool]:
    """`column IN ids` for any number of ids: one array parameter on PostgreSQL (an IN list carries
    one bind parameter per id, and a statement may carry at most 65,535), a plain IN elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    return column.in_(list(ids))


_DEFERRED_FLUSH = "northstar.deferred_flush"


@contextmanager
def deferred_flushes(session: Session) -> Iterator[None]:
    """Write what the block adds in one flush at its end, not one per object graph: a batch of
    plans becomes one INSERT per table (an `executemany` once `assign_ids` has set the keys,
    else a multi-row INSERT … RETURNING). Inside, `flush()` does nothing and queries do
    not autoflush, so a query sees none of the block's pending rows; the caller flushes first
    where it needs them (surveys.rules_queue flushes before an account's second decision)."""
    if session.info.get(_DEFERRED_FLUSH):
        yield
        return
    session.info[_DEFERRED_FLUSH] = True
    try:
        with session.no_autoflush:
            yield
    finally:
        session.info.pop(_DEFERRED_FLUSH, None)
    session.flush()


def assign_ids(session: Session) -> int:
    """Give the session's pending rows their integer primary keys from their tables' sequences
    (PostgreSQL), one statement per table; returns how many. A flush of rows whose keys are known
    writes each table with one `executemany` (psycopg's pipeline, one short statement prepared
    once) instead of a multi-row `INSERT … RETURNING`, whose thousands of placeholders psycopg
    parses in Python at several µs each. Rows whose key is already set are left alone."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    pending: dict[tuple[str, str], list[tuple[Any, str]]] = defaultdict(list)
    for instance in session.new:
        mapper = inspect(instance).mapper
        if len(mapper.primary_key) != 1:
            continue
        column = mapper.primary_key[0]
        if not isinstance(column.type, Integer) or column.table.name is None:
            continue
        key = mapper.get_property_by_column(column).key
        if getattr(instance, key) is None:
            pending[(column.table.name, column.name)].append((instance, key))
    connection = session.connection()
    for (table, column_name), rows in pending.items():
        ids = connection.execute(_NEXT_IDS, {"table": table, "column": column_name, "n": len(rows)})
        for (instance, key), (new_id,) in zip(rows, ids, strict=True):
            setattr(instance, key, new_id)
    return sum(len(rows) for rows in pending.values())


_NEXT_IDS = text("SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :n)")


def flush(session: Session) -> None:
    """`session.flush()`, except inside `deferred_flushes`."""
    if not session.info.get(_DEFERRED_FLUSH):
        session.flush()


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

        return engine
    engine = create_engine(database_url, **kwargs)
    if not kwargs.get("pool_pre_ping") and not isinstance(engine.pool, NullPool):
        _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_S = 5.0
_IDLE_SINCE = "northstar.idle_since"


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping`, but only for a connection that sat in the pool over `PING_AFTER_IDLE_S`:
    a server restart or an idle timeout is caught before the request uses the connection (the
    pool then opens a new one), while a busy web worker does not pay a round trip per request
    for it. A failed ping means the server went away, so, as with `pool_pre_ping`, every pooled
    connection older than that moment is replaced too (`InvalidatePoolError`). A connection that
    dies within the window fails its statement; the pool then drops every connection it holds, and
    the web answers 503 with Retry-After (web/problems.py)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # just opened, or just used
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError(f"idle connection failed its ping: {exc}") from exc
        if not alive:
            raise InvalidatePoolError("idle connection failed its ping")


class Database:
    """One engine and its session factory; owned by the app or the worker process."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self.sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self.sessionmaker() as session, session.begin():
            yield session


_current: Database | None = None


def configure(database: Database) -> Database:
    """Make `database` the one jobs use in this process (set by create_app and the CLI)."""
    global _current
    _current = database
    return database


def current() -> Database:
    """The process's Database, built from the environment if nothing configured one."""
    if _current is None:
        from engine.config import settings_from_env

        return configure(Database(settings_from_env()))
    return _current
