"""Alembic owns the schema: one head; upgrade head and downgrade base both work on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, inspect

from engine.db import Base
from migrations.runner import downgrade, heads, upgrade
from tests.scratch_databases import empty_database


def test_there_is_exactly_one_head() -> None:
    assert len(heads()) == 1


@pytest.fixture
def scratch_database() -> Iterator[str]:
    with empty_database("migrations") as url:
        yield url


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
