"""Programmatic Alembic: `northstar db upgrade`, the demo and the tests all use this."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Alembic logs its set-up at INFO; a command that only reads the revision has nothing to say."""
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        alembic_log.setLevel(level)


@functools.cache
def heads() -> tuple[str, ...]:
    with _quiet():
        return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def head_revision() -> str:
    found = heads()
    return found[0] if len(found) == 1 else ",".join(found)


def current_revision(connection: Connection) -> str | None:
    with _quiet():
        return MigrationContext.configure(connection).get_current_revision()


def revision_of(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()
