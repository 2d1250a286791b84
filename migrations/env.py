"""Alembic environment: the metadata of every package, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

import campaigns.builder  # noqa: F401
import campaigns.digests  # noqa: F401
import campaigns.models  # noqa: F401  (register tables on Base.metadata)
import campaigns.privacy  # noqa: F401
import campaigns.reports  # noqa: F401  (report and dashboard indexes)
import content.models  # noqa: F401
import engine.apitokens  # noqa: F401
import engine.audit  # noqa: F401
import engine.events.models  # noqa: F401
import engine.library  # noqa: F401
import engine.notes  # noqa: F401
import engine.plans.models  # noqa: F401
import engine.privacy  # noqa: F401
import engine.reports.models  # noqa: F401  (report and dashboard indexes)
import engine.rules.models  # noqa: F401
import engine.users  # noqa: F401
import engine.workspaces  # noqa: F401
import surveys.models  # noqa: F401
import surveys.reports  # noqa: F401  (survey_reaches, survey_choices, plan_page_views)
from engine.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    connectable = make_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
