"""plans: an index of the customer changes whose owner has not been told yet

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 14:00:00

The scheduler's sweep (campaigns.notify.sweep_unnotified) re-queues the owner's notification for a
customer change whose job was lost (Redis gone at the commit, a flushed queue). The partial index
holds only the revisions still waiting, so the sweep every 30 s reads a few rows, not the history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNNOTIFIED = "channel = 'shared' AND notified_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_plan_revisions_unnotified",
        "plan_revisions",
        ["created_at"],
        postgresql_where=sa.text(UNNOTIFIED),
        sqlite_where=sa.text(UNNOTIFIED),
    )


def downgrade() -> None:
    op.drop_index("ix_plan_revisions_unnotified", table_name="plan_revisions")
