"""A process-local cache of reference data: rows that change rarely (the objective library, plan
templates, campaigns, workspaces, the published ruleset), kept as plain values.

Entries expire after REFERENCE_TTL seconds, so another process's edit shows within that; a commit
in *this* process that touches a watched table clears the cache at once. The hot request paths
(a survey response runs ~25 queries without it) read these on every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

T = TypeVar("T")
REFERENCE_TTL = 5.0
_DIRTY = "northstar.refcache_dirty"

_watched: set[str] = set()
_entries: dict[tuple[str, str], tuple[float, Any]] = {}
_lock = threading.Lock()


def watch(*tables: str) -> None:
    """Tables whose changes (through the ORM) invalidate the cache on commit."""
    _watched.update(tables)


def cached(session: Session, name: str, load: Callable[[], T]) -> T:
    """The cached value of `name` for this session's database, loaded with `load` when stale."""
    if session.info.get(_DIRTY):
        # This transaction changed reference rows the cache cannot see yet: read them fresh.
        return load()
    key = (str(session.get_bind().engine.url), name)
    now = time.monotonic()
    with _lock:
        hit = _entries.get(key)
    if hit is not None and now - hit[0] < REFERENCE_TTL:
        value: T = hit[1]
        return value
    value = load()
    with _lock:
        _entries[key] = (now, value)
    return value


def clear() -> None:
    with _lock:
        _entries.clear()


@event.listens_for(Session, "after_flush")
def _note_reference_changes(session: Session, _context: UOWTransaction) -> None:
    for instance in chain(session.new, session.dirty, session.deleted):
        if getattr(instance, "__tablename__", None) in _watched:
            session.info[_DIRTY] = True
            return


@event.listens_for(Session, "after_commit")
def _invalidate(session: Session) -> None:
    if session.info.pop(_DIRTY, False):
        clear()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_DIRTY, None)
