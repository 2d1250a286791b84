"""weekly digests: the send ledger (one row per week, segment, recipient) and users' preferences

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 14:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = sa.DateTime(timezone=True)
STATUS = sa.Enum(
    "queued", "sending", "sent", "failed", "unknown", name="digeststatus", native_enum=False, length=24
)


def upgrade() -> None:
    op.create_table(
        "digest_sends",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("segment", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("sent_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_digest_sends_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_sends")),
        sa.UniqueConstraint(
            "week", "segment", "recipient", name=op.f("uq_digest_sends_week_segment_recipient")
        ),
    )
    op.create_index(op.f("ix_digest_sends_week"), "digest_sends", ["week"])
    op.create_table(
        "digest_preferences",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("segments", JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_digest_preferences_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_digest_preferences")),
    )


def downgrade() -> None:
    op.drop_table("digest_preferences")
    op.drop_index(op.f("ix_digest_sends_week"), table_name="digest_sends")
    op.drop_table("digest_sends")
