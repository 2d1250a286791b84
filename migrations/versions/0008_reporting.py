"""reporting: summary tables and indexes for segment reports, digests

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)

INDEXES = (
    ("ix_accounts_holdout", "accounts", ["id"], "holdout_group"),
    ("ix_success_plans_created_at", "success_plans", ["created_at"], None),
    ("ix_success_plans_started_at", "success_plans", ["started_at"], None),
    ("ix_milestones_achieved", "milestones", ["plan_id", "achieved_at"], "status = 'achieved'"),
    ("ix_plan_revisions_customer", "plan_revisions", ["plan_id", "created_at"], "channel = 'shared'"),
    (
        "ix_plan_revisions_review",
        "plan_revisions",
        ["plan_id", "created_at"],
        "summary LIKE 'Review confirmed%'",
    ),
    ("ix_responses_created_at", "responses", ["created_at"], None),
    ("ix_responses_completed_at", "responses", ["completed_at"], "status = 'completed'"),
    ("ix_enrollments_enrolled_at", "enrollments", ["enrolled_at"], None),
    ("ix_messages_sent_at", "messages", ["sent_at"], "sent_at IS NOT NULL"),
)


def upgrade() -> None:
    op.create_table(
        "plan_page_views",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["success_plans.id"],
            name=op.f("fk_plan_page_views_plan_id_success_plans"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("plan_id", "day", name=op.f("pk_plan_page_views")),
    )
    op.create_index("ix_plan_page_views_day", "plan_page_views", ["day"])
    op.create_table(
        "survey_reaches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("first_at", WHEN, nullable=False),
        sa.Column("last_at", WHEN, nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["survey_id"],
            ["surveys.id"],
            name=op.f("fk_survey_reaches_survey_id_surveys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_survey_reaches_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_survey_reaches_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_reaches")),
    )
    op.create_index(
        "uq_survey_reaches_contact", "survey_reaches", ["survey_id", "contact_id", "channel"], unique=True
    )
    op.create_index("ix_survey_reaches_first_at", "survey_reaches", ["first_at"])
    op.create_index(op.f("ix_survey_reaches_account_id"), "survey_reaches", ["account_id"])
    op.create_table(
        "survey_choices",
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("item_key", sa.String(length=80), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("chosen_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_survey_choices_response_id_responses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_survey_choices_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("response_id", "kind", "item_key", name=op.f("pk_survey_choices")),
    )
    op.create_index("ix_survey_choices_chosen_at", "survey_choices", ["chosen_at", "kind"])
    op.create_index(op.f("ix_survey_choices_account_id"), "survey_choices", ["account_id"])
    for name, table, columns, where in INDEXES:
        op.create_index(name, table, columns, postgresql_where=sa.text(where) if where else None)


def downgrade() -> None:
    for name, table, _columns, _where in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_table("survey_choices")
    op.drop_table("survey_reaches")
    op.drop_table("plan_page_views")
