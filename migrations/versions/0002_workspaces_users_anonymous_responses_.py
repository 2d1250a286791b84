"""workspaces, users, anonymous responses, survey dismissals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:05:59.492621
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum("admin", "editor", "viewer", name="role", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("jwt_secret", sa.String(length=200), nullable=False),
        sa.Column("previous_jwt_secret", sa.String(length=200), nullable=True),
        sa.Column("previous_secret_valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "allowed_origins",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("key", name=op.f("uq_workspaces_key")),
    )
    op.create_table(
        "survey_dismissals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_survey_dismissals_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_dismissals_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_dismissals")),
        sa.UniqueConstraint(
            "survey_id", "contact_id", name=op.f("uq_survey_dismissals_survey_id_contact_id")
        ),
    )
    # batch_alter_table: a plain ALTER on PostgreSQL, a table copy on the demo's SQLite
    with op.batch_alter_table("responses") as batch:
        batch.add_column(sa.Column("respondent_email", sa.String(length=320), nullable=True))
        batch.alter_column("account_id", existing_type=sa.INTEGER(), nullable=True)
        batch.create_index(op.f("ix_responses_contact_id"), ["contact_id"], unique=False)
    with op.batch_alter_table("surveys") as batch:
        batch.add_column(sa.Column("redisplay_days", sa.Integer(), nullable=False, server_default="30"))


def downgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.drop_column("redisplay_days")
    # Anonymous responses have no account and cannot survive the old schema.
    op.execute("DELETE FROM responses WHERE account_id IS NULL")
    with op.batch_alter_table("responses") as batch:
        batch.drop_index(op.f("ix_responses_contact_id"))
        batch.alter_column("account_id", existing_type=sa.INTEGER(), nullable=False)
        batch.drop_column("respondent_email")
    op.drop_table("survey_dismissals")
    op.drop_table("workspaces")
    op.drop_table("users")
