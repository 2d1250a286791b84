"""Published survey versions as plain values, cached per process by what the database stores.

A published version never changes (editing a survey publishes a new version with a new id), so a
version read once can be served from memory for as long as the process lives: no TTL and no
invalidation message between gunicorn workers is needed. The key is the database, the version's id
*and* its `published_at` stamp, so a database that was reset (tests truncate with RESTART IDENTITY,
a restore) and reuses the id for another definition is read afresh. Republishing a survey makes a
new version; the lookup that picks "the latest published version" runs every time, so the new one
is used at once in every worker.

The values are shared between requests: treat `definition` and `questions` as read-only.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from surveys.models import SurveyVersion

MAX_ENTRIES = 1024


@dataclass(frozen=True)
class VersionSpec:
    """A survey version: what validation and the rules' facts read of it."""

    id: int
    survey_id: int
    version: int
    published_at: dt.datetime | None
    definition: Mapping[str, Any]
    questions: list[dict[str, Any]]


VersionKey = tuple[str, int, dt.datetime]
_versions: dict[VersionKey, VersionSpec] = {}
_lock = threading.Lock()


def _database(session: Session) -> str:
    return str(session.get_bind().engine.url)


def version_specs(session: Session, stamps: Mapping[int, dt.datetime]) -> dict[int, VersionSpec]:
    """Version id → spec for published versions whose `published_at` the caller read with the id
    (one query for the ones this process has not seen yet, none when all are cached)."""
    database = _database(session)
    found: dict[int, VersionSpec] = {}
    missing: list[int] = []
    with _lock:
        for version_id, published_at in stamps.items():
            hit = _versions.get((database, version_id, published_at))
            if hit is None:
                missing.append(version_id)
            else:
                found[version_id] = hit
    if missing:
        loaded = _load(session, missing)
        with _lock:
            if len(_versions) + len(loaded) > MAX_ENTRIES:
                _versions.clear()
            for spec in loaded:
                if spec.published_at is not None:  # always: _load reads published versions only
                    _versions[(database, spec.id, spec.published_at)] = spec
        # What the caller read and what was loaded belong together only if the stamps agree.
        found.update({s.id: s for s in loaded if stamps.get(s.id) == s.published_at})
    return found


def version_spec(session: Session, version_id: int, published_at: dt.datetime) -> VersionSpec | None:
    return version_specs(session, {version_id: published_at}).get(version_id)


def spec_of(session: Session, version: SurveyVersion) -> VersionSpec:
    """The spec of a version the session already holds: cached if published (immutable), else
    built from the row every time (a draft can still change)."""
    spec = version_spec(session, version.id, version.published_at) if version.published_at else None
    if spec is None:
        return _spec(version.id, version.survey_id, version.version, version.published_at, version.definition)
    return spec


def _load(session: Session, version_ids: Iterable[int]) -> list[VersionSpec]:
    rows = session.execute(
        select(
            SurveyVersion.id,
            SurveyVersion.survey_id,
            SurveyVersion.version,
            SurveyVersion.published_at,
            SurveyVersion.definition,
        ).where(SurveyVersion.id.in_(list(version_ids)), SurveyVersion.published_at.is_not(None))
    )
    return [_spec(*row) for row in rows]


def _spec(
    version_id: int, survey_id: int, number: int, published_at: dt.datetime | None, definition: Any
) -> VersionSpec:
    definition = dict(definition or {})
    return VersionSpec(
        version_id, survey_id, number, published_at, definition, list(definition.get("questions", []))
    )


def clear() -> None:
    """Forget every cached version (tests; a process never needs it for correctness)."""
    with _lock:
        _versions.clear()


def cached_count() -> int:
    with _lock:
        return len(_versions)
