"""surveys: completed responses whose rules run in a background job

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Set when a completed response is stored and its rules (plan, enrolments) are left to the
    # `rules` job (the widget and API path); cleared, in the job's transaction, once applied. The
    # partial index holds only the few rows waiting, so the job's scan stays small (ADR 0009).
    op.add_column("responses", sa.Column("rules_queued_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_responses_rules_queued",
        "responses",
        ["id"],
        postgresql_where=sa.text("rules_queued_at IS NOT NULL"),
        sqlite_where=sa.text("rules_queued_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_responses_rules_queued", table_name="responses")
    op.drop_column("responses", "rules_queued_at")
