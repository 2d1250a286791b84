"""surveys: submission path performance (indexes, columns)

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every submission reads its account's completed responses (the rules' facts): with only
    # ix_responses_completed_at to match `status = 'completed'` the planner may walk every
    # completed response and filter by account.
    op.create_index(
        "ix_responses_account_completed",
        "responses",
        ["account_id", "completed_at"],
        postgresql_where=sa.text("status = 'completed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_responses_account_completed", table_name="responses")
