"""campaign versions, enrolment entries and holdouts, message guards/trace/inbox, webhook events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "campaign_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("published_at", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_versions_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_versions")),
        sa.UniqueConstraint("campaign_id", "version", name=op.f("uq_campaign_versions_campaign_id_version")),
    )
    with op.batch_alter_table("campaign_steps") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint("uq_campaign_steps_campaign_id_position", type_="unique")
        batch.create_unique_constraint(
            op.f("uq_campaign_steps_campaign_id_version_position"), ["campaign_id", "version", "position"]
        )
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("campaign_version", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("entry", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("held_out", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("not_before", WHEN, nullable=True))
        batch.add_column(sa.Column("trace", JSON, server_default="{}", nullable=False))
        for name in ("delivered_at", "opened_at", "clicked_at", "seen_at", "dismissed_at"):
            batch.add_column(sa.Column(name, WHEN, nullable=True))
    op.create_index(
        "ix_messages_deferred",
        "messages",
        ["not_before"],
        unique=False,
        postgresql_where=sa.text("status = 'deferred'"),
    )
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("spam_reported_at", WHEN, nullable=True))
        batch.add_column(sa.Column("unsubscribed_categories", JSON, server_default="[]", nullable=False))
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_event_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("occurred_at", WHEN, nullable=True),
        sa.Column("received_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_webhook_events_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("provider_event_id", name=op.f("uq_webhook_events_provider_event_id")),
    )
    op.create_index(op.f("ix_webhook_events_message_id"), "webhook_events", ["message_id"], unique=False)
    # Every existing campaign gets its version row (settings default: no trigger, never re-enter).
    op.execute(
        "INSERT INTO campaign_versions (campaign_id, version, settings, note, created_at, published_at) "
        "SELECT id, version, '{}', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM campaigns"
    )
    op.execute(
        "UPDATE campaign_steps SET version = "
        "(SELECT version FROM campaigns WHERE campaigns.id = campaign_steps.campaign_id)"
    )
    op.execute(
        "UPDATE enrollments SET campaign_version = "
        "(SELECT version FROM campaigns WHERE campaigns.id = enrollments.campaign_id)"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_events_message_id"), table_name="webhook_events")
    op.drop_table("webhook_events")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("unsubscribed_categories")
        batch.drop_column("spam_reported_at")
    op.drop_index("ix_messages_deferred", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for name in (
            "dismissed_at",
            "seen_at",
            "clicked_at",
            "opened_at",
            "delivered_at",
            "trace",
            "not_before",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("held_out")
        batch.drop_column("entry")
        batch.drop_column("campaign_version")
    op.execute(
        "DELETE FROM campaign_steps WHERE version <> "
        "(SELECT version FROM campaigns WHERE campaigns.id = campaign_steps.campaign_id)"
    )
    with op.batch_alter_table("campaign_steps") as batch:
        batch.drop_constraint("uq_campaign_steps_campaign_id_version_position", type_="unique")
        batch.create_unique_constraint("uq_campaign_steps_campaign_id_position", ["campaign_id", "position"])
        batch.drop_column("version")
    op.drop_table("campaign_versions")
