"""content library: item bodies, locales, template locales, link clicks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("content_items") as batch:
        batch.add_column(sa.Column("body_html", sa.Text(), server_default="", nullable=False))
        batch.drop_constraint("uq_content_items_key", type_="unique")
        batch.create_unique_constraint(op.f("uq_content_items_key_locale"), ["key", "locale"])
    with op.batch_alter_table("message_templates") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=16), server_default="en", nullable=False))
        batch.drop_constraint("uq_message_templates_key", type_="unique")
        batch.create_unique_constraint(op.f("uq_message_templates_key_locale"), ["key", "locale"])
    op.create_table(
        "content_sends",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("content_item_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("sent_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_content_sends_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["content_item_id"],
            ["content_items.id"],
            name=op.f("fk_content_sends_content_item_id_content_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_content_sends_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "content_item_id", name=op.f("pk_content_sends")),
    )
    op.create_index(op.f("ix_content_sends_contact_id"), "content_sends", ["contact_id"], unique=False)
    op.create_table(
        "content_clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_item_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("clicked_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["content_item_id"],
            ["content_items.id"],
            name=op.f("fk_content_clicks_content_item_id_content_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_content_clicks_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_content_clicks_contact_id_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_clicks")),
    )
    for column in ("content_item_id", "message_id", "contact_id"):
        op.create_index(op.f(f"ix_content_clicks_{column}"), "content_clicks", [column], unique=False)


def downgrade() -> None:
    for column in ("content_item_id", "message_id", "contact_id"):
        op.drop_index(op.f(f"ix_content_clicks_{column}"), table_name="content_clicks")
    op.drop_table("content_clicks")
    op.drop_index(op.f("ix_content_sends_contact_id"), table_name="content_sends")
    op.drop_table("content_sends")
    # Keys were unique before locales: keep the default-locale rows (translations are dropped).
    op.execute("DELETE FROM message_templates WHERE locale <> 'en'")
    op.execute("DELETE FROM content_items WHERE locale <> 'en'")
    with op.batch_alter_table("message_templates") as batch:
        batch.drop_constraint("uq_message_templates_key_locale", type_="unique")
        batch.create_unique_constraint("uq_message_templates_key", ["key"])
        batch.drop_column("locale")
    with op.batch_alter_table("content_items") as batch:
        batch.drop_constraint("uq_content_items_key_locale", type_="unique")
        batch.create_unique_constraint("uq_content_items_key", ["key"])
        batch.drop_column("body_html")
