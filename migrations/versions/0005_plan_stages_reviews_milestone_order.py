"""plan template stages, review cadence, milestone dependencies, owner notifications

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-29 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan_templates") as batch:
        batch.add_column(sa.Column("stage", sa.String(length=40), nullable=True))
    with op.batch_alter_table("success_plans") as batch:
        batch.add_column(sa.Column("review_every_days", sa.Integer(), server_default="90", nullable=False))
        batch.add_column(sa.Column("last_reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("stage", sa.String(length=40), nullable=True))
    with op.batch_alter_table("milestones") as batch:
        batch.add_column(sa.Column("after", sa.String(length=80), nullable=True))
    with op.batch_alter_table("plan_revisions") as batch:
        batch.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan_revisions") as batch:
        batch.drop_column("notified_at")
    with op.batch_alter_table("milestones") as batch:
        batch.drop_column("after")
    with op.batch_alter_table("success_plans") as batch:
        batch.drop_column("stage")
        batch.drop_column("last_reviewed_at")
        batch.drop_column("review_every_days")
    with op.batch_alter_table("plan_templates") as batch:
        batch.drop_column("stage")
