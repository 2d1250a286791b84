"""rule set authorship and lineage, declared account traits

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 11:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trait_definitions",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "string", "number", "boolean", "list", "date", name="traittype", native_enum=False, length=24
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_trait_definitions")),
    )
    with op.batch_alter_table("rulesets") as batch:
        batch.add_column(sa.Column("note", sa.Text(), server_default="", nullable=False))
        batch.add_column(sa.Column("created_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("published_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("based_on_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rulesets") as batch:
        batch.drop_column("based_on_version")
        batch.drop_column("published_by")
        batch.drop_column("created_by")
        batch.drop_column("note")
    op.drop_table("trait_definitions")
