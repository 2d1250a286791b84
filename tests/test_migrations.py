"""Alembic owns the schema: one head; upgrade head and downgrade base both work on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from engine.db import Base
from migrations.runner import downgrade, heads, upgrade
from tests.conftest import TEST_DATABASE_URL


def test_there_is_exactly_one_head() -> None:
    assert len(heads()) == 1


@pytest.fixture
def scratch_database() -> Iterator[str]:
    url = make_url(TEST_DATABASE_URL)
    name = f"{url.database}_migrations"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_upgrade_head_then_downgrade_base_on_postgres(scratch_database: str) -> None:
    upgrade(scratch_database)
    engine = create_engine(scratch_database)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    downgrade(scratch_database)
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    engine.dispose()


def test_models_and_migrations_agree(scratch_database: str) -> None:
    """Autogenerate against the migrated schema finds nothing to add: no model change lacks a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import web.wiring  # noqa: F401  (imports every model)

    upgrade(scratch_database)
    engine = create_engine(scratch_database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    assert diff == []
