"""campaign builder: drafts and edit version checks

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("document", JSON, nullable=False),
        sa.Column("based_on_version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_drafts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_drafts")),
        sa.UniqueConstraint("campaign_id", name=op.f("uq_campaign_drafts_campaign_id")),
        sa.UniqueConstraint("key", name=op.f("uq_campaign_drafts_key")),
    )


def downgrade() -> None:
    op.drop_table("campaign_drafts")
