"""reports: per-plan and per-enrolment summary rows maintained by reports-queue jobs

Summary tables the segment reports read (report_plan_facts, report_kr_facts,
report_enrollment_facts, report_response_facts) and report_dirty, the keys whose rows are stale.
On PostgreSQL, triggers on the source tables mark those keys in the writing transaction itself
(engine/reports/summaries.py drains them); the tables start empty: `northstar reports rebuild`
fills them once.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
PICKS = sa.JSON().with_variant(postgresql.ARRAY(sa.String(length=80)), "postgresql")

# Statement-level triggers (one INSERT into report_dirty per statement, from the transition
# table): (table, kind of key, column holding the key, events).
STATEMENT_TRIGGERS = (
    ("success_plans", "plan", "id", ("INSERT", "DELETE")),
    ("milestones", "plan", "plan_id", ("INSERT", "UPDATE", "DELETE")),
    ("key_results", "plan", "plan_id", ("INSERT", "UPDATE", "DELETE")),
    ("plan_revisions", "plan", "plan_id", ("INSERT", "UPDATE", "DELETE")),
    # A view on a day already counted only adds to `views` (ON CONFLICT DO UPDATE): no UPDATE trigger.
    ("plan_page_views", "plan", "plan_id", ("INSERT", "DELETE")),
    ("enrollments", "enrollment", "id", ("INSERT", "DELETE")),
    ("messages", "enrollment", "enrollment_id", ("INSERT", "UPDATE", "DELETE")),
    ("responses", "response", "id", ("INSERT", "DELETE")),
    ("survey_choices", "response", "response_id", ("INSERT", "UPDATE", "DELETE")),
)
# Row-level UPDATE triggers where most updates touch nothing a summary reads (the tick moves
# enrolments along, plans get edited): the WHEN clause filters without calling the function.
ROW_TRIGGERS = (
    ("accounts", "account", ("segment", "lifecycle_stage", "traits", "holdout_group")),
    ("success_plans", "plan", ("account_id", "started_at", "created_at")),
    ("enrollments", "enrollment", ("account_id", "campaign_id", "enrolled_at", "held_out")),
    ("responses", "response", ("account_id", "status", "completed_at")),
)

MARK_STATEMENT = """
CREATE FUNCTION report_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- DO UPDATE (not NOTHING) takes the row lock, so a refresh that runs before this transaction
    -- commits skips the key (SKIP LOCKED) instead of deleting it and missing this change.
    EXECUTE format(
        'INSERT INTO report_dirty (kind, id) SELECT DISTINCT %L, %I FROM changed WHERE %I IS NOT NULL '
        'ORDER BY 2 ON CONFLICT (kind, id) DO UPDATE SET marked_at = now()',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[1]);
    RETURN NULL;
END $$
"""

MARK_ROW = """
CREATE FUNCTION report_mark_row_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_dirty (kind, id) VALUES (TG_ARGV[0], NEW.id)
    ON CONFLICT (kind, id) DO UPDATE SET marked_at = now();
    RETURN NULL;
END $$
"""


def _snapshot() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("segment", sa.String(length=80), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("traits", JSON, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "report_dirty",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("marked_at", WHEN, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id", name=op.f("pk_report_dirty")),
    )
    op.create_table(
        "report_plan_facts",
        sa.Column("plan_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        *_snapshot(),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("milestones", "achieved", "on_track", "pending", "behind", "missed")
        ),
        sa.Column("first_achieved_at", WHEN, nullable=True),
        sa.Column("first_opened_on", sa.Date(), nullable=True),
        sa.Column("first_update_at", WHEN, nullable=True),
        sa.Column("first_review_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_report_plan_facts")),
    )
    op.create_index("ix_report_plan_facts_started_at", "report_plan_facts", ["started_at"])
    op.create_index("ix_report_plan_facts_account_id", "report_plan_facts", ["account_id"])
    op.create_table(
        "report_kr_facts",
        sa.Column("key_result_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("objective_key", sa.String(length=80), nullable=False),
        sa.Column("baseline", sa.Numeric(), nullable=False),
        sa.Column("target", sa.Numeric(), nullable=False),
        *_snapshot(),
        sa.PrimaryKeyConstraint("key_result_id", name=op.f("pk_report_kr_facts")),
    )
    op.create_index("ix_report_kr_facts_started_at", "report_kr_facts", ["started_at"])
    op.create_index("ix_report_kr_facts_plan_id", "report_kr_facts", ["plan_id"])
    op.create_table(
        "report_enrollment_facts",
        sa.Column("enrollment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("enrolled_at", WHEN, nullable=False),
        *_snapshot(),
        *(
            sa.Column(name, sa.Boolean(), nullable=False)
            for name in ("held_out", "sent", "delivered", "opened", "clicked")
        ),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("capped", sa.Integer(), nullable=False),
        sa.Column("milestone_at", WHEN, nullable=True),
        sa.Column("kr_attained", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id", name=op.f("pk_report_enrollment_facts")),
    )
    op.create_index("ix_report_enrollment_facts_enrolled_at", "report_enrollment_facts", ["enrolled_at"])
    op.create_index("ix_report_enrollment_facts_account_id", "report_enrollment_facts", ["account_id"])
    op.create_table(
        "report_response_facts",
        sa.Column("response_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("completed_at", WHEN, nullable=True),
        sa.Column("chosen_at", WHEN, nullable=True),
        *_snapshot(),
        sa.Column("sole", sa.Boolean(), nullable=False),
        sa.Column("outcomes", PICKS, nullable=False),
        sa.Column("objectives", PICKS, nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_report_response_facts")),
    )
    op.create_index("ix_report_response_facts_completed_at", "report_response_facts", ["completed_at"])
    op.create_index("ix_report_response_facts_chosen_at", "report_response_facts", ["chosen_at"])
    op.create_index("ix_report_response_facts_account_id", "report_response_facts", ["account_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(MARK_STATEMENT)
    op.execute(MARK_ROW)
    for table, kind, column, events in STATEMENT_TRIGGERS:
        for event in events:
            rows = "OLD" if event == "DELETE" else "NEW"
            op.execute(
                f"CREATE TRIGGER report_stale_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT "
                f"EXECUTE FUNCTION report_mark_stale('{kind}', '{column}')"
            )
    for table, kind, columns in ROW_TRIGGERS:
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        op.execute(
            f"CREATE TRIGGER report_stale_row_update AFTER UPDATE OF {', '.join(columns)} ON {table} "
            f"FOR EACH ROW WHEN ({changed}) EXECUTE FUNCTION report_mark_row_stale('{kind}')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _kind, _column, events in STATEMENT_TRIGGERS:
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS report_stale_{event.lower()} ON {table}")
        for table, _kind, _columns in ROW_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS report_stale_row_update ON {table}")
        op.execute("DROP FUNCTION IF EXISTS report_mark_stale()")
        op.execute("DROP FUNCTION IF EXISTS report_mark_row_stale()")
    for table in ("report_response_facts", "report_enrollment_facts", "report_kr_facts", "report_plan_facts"):
        op.drop_table(table)
    op.drop_table("report_dirty")
