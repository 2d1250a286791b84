"""account 360: notes on accounts; the console dashboard's indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The dashboard's date-bounded counts (DASHBOARD_INDEXES in campaigns/reports.py and
# engine/reports/models.py).
INDEXES = (
    ("ix_messages_suppressed_at", "messages", ["created_at"], "status = 'suppressed'"),
    (
        "ix_milestones_slipped",
        "milestones",
        ["status", "due_date", "plan_id"],
        "status IN ('behind', 'missed')",
    ),
    ("ix_milestones_achieved_at", "milestones", ["achieved_at"], "status = 'achieved'"),
    ("ix_plan_revisions_created_at", "plan_revisions", ["created_at"], None),
    ("ix_webhook_events_spam", "webhook_events", ["received_at"], "event = 'spamreport'"),
)


def upgrade() -> None:
    op.create_table(
        "account_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_notes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_notes")),
    )
    op.create_index("ix_account_notes_account_time", "account_notes", ["account_id", "created_at"])
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, postgresql_where=sa.text(where) if where else None)


def downgrade() -> None:
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_index("ix_account_notes_account_time", table_name="account_notes")
    op.drop_table("account_notes")
