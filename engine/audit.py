"""The admin audit log: who (a console user or an API token) changed which rule, template, campaign,
plan, survey, user or setting, when, with the before/after of the columns that changed.

Nobody calls this to log: the console and the API set the request's actor (`acting_as`), each
package registers the models it wants audited (`register`, from its `wiring.py`), and a flush
listener records every insert, update and delete of a registered model made while an actor is
set. Writes without an actor (the scheduler, workers, the CLI) are not people's actions and are
not logged.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, String, event, insert, inspect, select
from sqlalchemy.orm import Mapped, Session, UOWTransaction, mapped_column
from sqlalchemy.orm.base import NO_VALUE

from engine.db import Base, utcnow

MAX_TEXT = 500  # longer strings are cut in the log: it shows what changed, it is not a backup
MAX_JSON = 4000
DEFAULT_IGNORED = frozenset({"updated_at"})
LABEL_ATTRIBUTES = ("name", "title", "key", "email", "goal", "subject")


@dataclass(frozen=True)
class Actor:
    """Who is acting: a console user's email, or an API token's name."""

    name: str
    kind: str  # "console" or "api"


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        Index("ix_audit_log_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(320))
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(8))  # insert, update, delete
    object_type: Mapped[str] = mapped_column(String(80))
    object_id: Mapped[str] = mapped_column(String(80))
    label: Mapped[str] = mapped_column(String(300), default="")
    # {column: [before, after]}; before is null on insert, after is null on delete.
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)


@dataclass(frozen=True)
class Audited:
    object_type: str
    ignore: frozenset[str]
    redact: frozenset[str]
    label: Callable[[Any], str] | None
    title: str  # what people call the kind of object: "Rule set" for RuleSet


_registry: dict[type, Audited] = {}
_actor: ContextVar[Actor | None] = ContextVar("northstar_audit_actor", default=None)


def register(
    model: type,
    *,
    object_type: str | None = None,
    ignore: Iterable[str] = (),
    redact: Iterable[str] = (),
    label: Callable[[Any], str] | None = None,
    title: str | None = None,
) -> None:
    """Log people's changes to `model`. `ignore`: columns whose changes are noise (counters,
    timestamps); `redact`: columns logged only as "changed" (password hashes, secrets); `title`:
    what people call it (default: the object type in words, "Rule set" for RuleSet)."""
    _columns_of.pop(model, None)
    kind = object_type or model.__name__
    _registry[model] = Audited(
        kind,
        DEFAULT_IGNORED | frozenset(ignore),
        frozenset(redact),
        label,
        title or in_words(kind),
    )


def type_titles() -> dict[str, str]:
    """Each audited object type (what entries store and the log filters on) → what people call it,
    in the order people read them (by title)."""
    titles = {a.object_type: a.title for a in _registry.values()}
    return dict(sorted(titles.items(), key=lambda item: (item[1].lower(), item[0])))


def type_title(object_type: str) -> str:
    """What people call an object type, registered or not ("Contact" for privacy requests)."""
    return next((a.title for a in _registry.values() if a.object_type == object_type), in_words(object_type))


def in_words(object_type: str) -> str:
    """A class name as words: CampaignDraft → "Campaign draft"; an acronym stays upper case."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", object_type)
    if not words:
        return object_type
    rest = [w if w.isupper() and len(w) > 1 else w.lower() for w in words[1:]]
    return " ".join([words[0], *rest])


def current_actor() -> Actor | None:
    return _actor.get()


def set_actor(actor: Actor | None) -> Token[Actor | None]:
    return _actor.set(actor)


def reset_actor(token: Token[Actor | None]) -> None:
    _actor.reset(token)


@contextmanager
def acting_as(name: str, kind: str) -> Iterator[Actor]:
    """Changes flushed inside the block are logged as `name`'s."""
    actor = Actor(name, kind)
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


def _plain(value: Any) -> Any:
    """A JSON-ready, compact version of a column value."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f"… ({len(value):,} characters)"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict | list | tuple):
        # JSON columns hold JSON already: measure it, keep it unless it is too big to be useful.
        size = len(json.dumps(value, default=str))
        return value if size <= MAX_JSON else f"(JSON, {size:,} characters)"
    return str(value)[:MAX_TEXT]


_columns_of: dict[type, tuple[str, ...]] = {}


def _columns(obj: Any, mapper: Any, audited: Audited) -> tuple[str, ...]:
    """The column attributes worth logging, in table order (not the ignored ones, not the key)."""
    found = _columns_of.get(type(obj))
    if found is None:
        keys = {column.key for column in mapper.primary_key}
        found = tuple(a.key for a in mapper.column_attrs if a.key not in audited.ignore and a.key not in keys)
        _columns_of[type(obj)] = found
    return found


def _changes(obj: Any, action: str, audited: Audited) -> dict[str, list[Any]]:
    state = inspect(obj)
    columns = _columns(obj, state.mapper, audited)
    found: dict[str, list[Any]] = {}
    values = state.dict
    if action == "update":
        # committed_state: the value each modified attribute had before this flush (cheaper than
        # asking every column for its history).
        pairs = [
            (key, None if old is NO_VALUE else old, values.get(key))
            for key, old in state.committed_state.items()
            if key in columns
        ]
    else:
        pairs = [
            (key, None, value) if action == "insert" else (key, value, None)
            for key in columns
            if (value := values.get(key)) is not None and value != [] and value != {}
        ]
    for key, before, after in pairs:
        if action == "update" and before == after:
            continue
        if key in audited.redact:
            found[key] = [None if before is None else "(hidden)", None if after is None else "(hidden)"]
        else:
            found[key] = [_plain(before), _plain(after)]
    return found


def _label(obj: Any, audited: Audited) -> str:
    if audited.label is not None:
        return audited.label(obj)[:300]
    values = inspect(obj).dict
    for name in LABEL_ATTRIBUTES:
        value = values.get(name)
        if isinstance(value, str) and value:
            return value[:300]
    return ""


def _identity(obj: Any) -> str:
    # Not state.identity: a row inserted by this flush has its key only after the flush ends.
    identity = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join("" if part is None else str(part) for part in identity)[:80]


@event.listens_for(Session, "after_flush")
def _record(session: Session, _context: UOWTransaction) -> None:
    # after_flush, not before_flush: inserted rows have their ids now, while the session still
    # shows the flush's new/dirty/deleted objects and each attribute's history.
    actor = _actor.get()
    if actor is None or not _registry:
        return
    rows: list[dict[str, Any]] = []
    at = utcnow()
    batches: Sequence[tuple[str, Iterable[Any]]] = (
        ("insert", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    )
    for action, objects in batches:
        for obj in objects:
            audited = _registry.get(type(obj))
            if audited is None:
                continue
            changes = _changes(obj, action, audited)
            if action == "update" and not changes:
                continue
            rows.append(
                {
                    "at": at,
                    "actor": actor.name[:320],
                    "actor_kind": actor.kind,
                    "action": action,
                    "object_type": audited.object_type,
                    "object_id": _identity(obj),
                    "label": _label(obj, audited),
                    "changes": changes,
                }
            )
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


def record(
    session: Session,
    action: str,
    object_type: str,
    object_id: str,
    *,
    label: str = "",
    details: dict[str, Any],
) -> None:
    """Log an action that is not a row change (an export, an erasure) as the current actor's."""
    actor = _actor.get()
    if actor is None:
        return
    session.add(
        AuditEntry(
            at=utcnow(),
            actor=actor.name[:320],
            actor_kind=actor.kind,
            action=action[:8],
            object_type=object_type,
            object_id=object_id[:80],
            label=label[:300],
            changes={key: [None, _plain(value)] for key, value in details.items()},
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    before_id: int | None = None  # paging: entries older than this one


def audit_entries(session: Session, where: AuditFilter, *, limit: int = 100) -> list[AuditEntry]:
    """The newest entries matching `where`, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if where.actor:
        query = query.where(AuditEntry.actor == where.actor)
    if where.object_type:
        query = query.where(AuditEntry.object_type == where.object_type)
    if where.object_id:
        query = query.where(AuditEntry.object_id == where.object_id)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    if where.before_id is not None:
        query = query.where(AuditEntry.id < where.before_id)
    return list(session.scalars(query))


def audit_actors(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))
