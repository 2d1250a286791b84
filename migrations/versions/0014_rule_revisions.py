"""rule revisions: an edit counter per rule, so two editors cannot silently overwrite each other

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rules") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("rules") as batch:
        batch.drop_column("revision")
