"""reports: per-plan and per-enrolment summary rows maintained by reports-queue jobs

Summary tables the segment reports read (report_plan_facts, report_kr_facts,
report_enrollment_facts, report_enrollment_channel_facts, report_response_facts,
report_reach_facts) and report_dirty, the keys whose rows are stale.
On PostgreSQL the tables are filled from the existing rows, then triggers on the source tables
mark stale keys in the writing transaction itself (engine/reports/summaries.py drains them).

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
    ("survey_reaches", "reach", "id", ("INSERT", "DELETE")),
)
# Row-level UPDATE triggers where most updates touch nothing a summary reads (the tick moves
# enrolments along, plans get edited): the WHEN clause filters without calling the function.
ROW_TRIGGERS = (
    ("accounts", "account", ("segment", "lifecycle_stage", "traits", "holdout_group")),
    ("success_plans", "plan", ("account_id", "started_at", "created_at")),
    ("enrollments", "enrollment", ("account_id", "campaign_id", "enrolled_at", "held_out")),
    ("responses", "response", ("account_id", "status", "completed_at", "created_at", "channel")),
    # Showing a survey again only moves last_at and times.
    ("survey_reaches", "reach", ("account_id", "channel", "first_at")),
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

# The summaries start filled: a frozen copy of the rebuild statements of this release
# (engine/reports/plan_facts.py, campaigns/report_facts.py, surveys/report_facts.py,
# surveys/funnel_report.py), so a database
# upgraded in place has exact reports at once. Later changes to a summary ship their own rebuild.
FILL = (
    """
    INSERT INTO report_plan_facts (plan_id, account_id, created_at, started_at, segment, stage, traits,
        milestones, achieved, on_track, pending, behind, missed, first_achieved_at,
        first_opened_on, first_update_at, first_review_at)
    SELECT p.id, p.account_id, p.created_at, p.started_at, a.segment, a.lifecycle_stage, a.traits,
           coalesce(m.milestones, 0), coalesce(m.achieved, 0), coalesce(m.on_track, 0),
           coalesce(m.pending, 0), coalesce(m.behind, 0), coalesce(m.missed, 0), m.first_achieved_at,
           v.first_opened_on, r.first_update_at, r.first_review_at
    FROM success_plans p
    JOIN accounts a ON a.id = p.account_id
    LEFT JOIN (
        SELECT plan_id, count(*) AS milestones,
               count(*) FILTER (WHERE status = 'achieved') AS achieved,
               count(*) FILTER (WHERE status = 'on_track') AS on_track,
               count(*) FILTER (WHERE status = 'pending') AS pending,
               count(*) FILTER (WHERE status = 'behind') AS behind,
               count(*) FILTER (WHERE status = 'missed') AS missed,
               min(achieved_at) FILTER (WHERE status = 'achieved') AS first_achieved_at
        FROM milestones GROUP BY plan_id
    ) m ON m.plan_id = p.id
    LEFT JOIN (SELECT plan_id, min(day) AS first_opened_on FROM plan_page_views GROUP BY plan_id) v
        ON v.plan_id = p.id
    LEFT JOIN (
        SELECT plan_id,
               min(created_at) FILTER (WHERE channel = 'shared') AS first_update_at,
               min(created_at) FILTER (WHERE summary LIKE 'Review confirmed%') AS first_review_at
        FROM plan_revisions
        WHERE channel = 'shared' OR summary LIKE 'Review confirmed%'
        GROUP BY plan_id
    ) r ON r.plan_id = p.id
    """,
    """
    INSERT INTO report_kr_facts (key_result_id, plan_id, account_id, started_at, objective_key, baseline,
        target, segment, stage, traits)
    SELECT k.id, k.plan_id, p.account_id, p.started_at, k.objective_key, k.baseline, k.target,
           a.segment, a.lifecycle_stage, a.traits
    FROM key_results k
    JOIN success_plans p ON p.id = k.plan_id
    JOIN accounts a ON a.id = p.account_id
    """,
    """
    INSERT INTO report_enrollment_facts (enrollment_id, account_id, campaign_id, enrolled_at, segment,
        stage, traits, held_out, sent, delivered, opened, clicked, suppressed, capped, milestone_at,
        kr_attained)
    SELECT e.id, e.account_id, e.campaign_id, e.enrolled_at, a.segment, a.lifecycle_stage, a.traits,
           e.held_out OR a.holdout_group,
           coalesce(f.sent, false), coalesce(f.delivered, false), coalesce(f.opened, false),
           coalesce(f.clicked, false), coalesce(f.suppressed, 0), coalesce(f.capped, 0),
           (SELECT min(m.achieved_at) FROM milestones m JOIN success_plans p ON p.id = m.plan_id
            WHERE p.account_id = e.account_id AND m.status = 'achieved' AND m.achieved_at >= e.enrolled_at),
           EXISTS (SELECT 1 FROM success_plans p JOIN key_results k ON k.plan_id = p.id
                   WHERE p.account_id = e.account_id
                     AND (k.target >= k.baseline AND k.current >= k.target
                          OR k.target < k.baseline AND k.current <= k.target))
    FROM enrollments e
    JOIN accounts a ON a.id = e.account_id
    LEFT JOIN (
        SELECT enrollment_id,
               coalesce(bool_or(sent_at IS NOT NULL
                                OR status IN ('sent', 'delivered', 'opened', 'clicked')), false) AS sent,
               coalesce(bool_or(delivered_at IS NOT NULL
                                OR status IN ('delivered', 'opened', 'clicked')), false) AS delivered,
               coalesce(bool_or(opened_at IS NOT NULL OR status IN ('opened', 'clicked')), false) AS opened,
               coalesce(bool_or(clicked_at IS NOT NULL OR status = 'clicked'), false) AS clicked,
               count(*) FILTER (WHERE status = 'suppressed'
                                AND (reason IN ('unsubscribed', 'bounced', 'spam report')
                                     OR reason LIKE 'unsubscribed from %')) AS suppressed,
               count(*) FILTER (WHERE status = 'suppressed' AND reason LIKE 'frequency cap%') AS capped
        FROM messages GROUP BY enrollment_id
    ) f ON f.enrollment_id = e.id
    """,
    """
    INSERT INTO report_enrollment_channel_facts (enrollment_id, channel, sent, delivered, opened, clicked,
        suppressed, capped)
    SELECT enrollment_id, channel,
           coalesce(bool_or(sent_at IS NOT NULL
                            OR status IN ('sent', 'delivered', 'opened', 'clicked')), false),
           coalesce(bool_or(delivered_at IS NOT NULL OR status IN ('delivered', 'opened', 'clicked')), false),
           coalesce(bool_or(opened_at IS NOT NULL OR status IN ('opened', 'clicked')), false),
           coalesce(bool_or(clicked_at IS NOT NULL OR status = 'clicked'), false),
           count(*) FILTER (WHERE status = 'suppressed'
                            AND (reason IN ('unsubscribed', 'bounced', 'spam report')
                                 OR reason LIKE 'unsubscribed from %')),
           count(*) FILTER (WHERE status = 'suppressed' AND reason LIKE 'frequency cap%')
    FROM messages GROUP BY enrollment_id, channel
    """,
    """
    INSERT INTO report_response_facts (response_id, account_id, created_at, channel, completed,
        completed_at, chosen_at, segment, stage, traits, sole, outcomes, objectives)
    SELECT r.id, r.account_id, r.created_at, r.channel, r.status = 'completed',
           CASE WHEN r.status = 'completed' THEN r.completed_at END, c.chosen_at,
           a.segment, a.lifecycle_stage, a.traits,
           count(*) FILTER (WHERE r.status = 'completed' OR c.response_id IS NOT NULL)
               OVER (PARTITION BY r.account_id) = 1,
           coalesce(c.outcomes, '{}'), coalesce(c.objectives, '{}')
    FROM responses r
    JOIN accounts a ON a.id = r.account_id
    LEFT JOIN (
        SELECT response_id, min(chosen_at) AS chosen_at,
               array_agg(item_key ORDER BY item_key) FILTER (WHERE kind = 'outcome') AS outcomes,
               array_agg(item_key ORDER BY item_key) FILTER (WHERE kind = 'objective') AS objectives
        FROM survey_choices GROUP BY response_id
    ) c ON c.response_id = r.id
    """,
    """
    INSERT INTO report_reach_facts (reach_id, account_id, channel, first_at, segment, stage, traits)
    SELECT r.id, r.account_id, r.channel, r.first_at, a.segment, a.lifecycle_stage, a.traits
    FROM survey_reaches r
    JOIN accounts a ON a.id = r.account_id
    """,
)


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
        "report_enrollment_channel_facts",
        sa.Column("enrollment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        *(
            sa.Column(name, sa.Boolean(), nullable=False)
            for name in ("sent", "delivered", "opened", "clicked")
        ),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("capped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("enrollment_id", "channel", name=op.f("pk_report_enrollment_channel_facts")),
    )
    op.create_table(
        "report_response_facts",
        sa.Column("response_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", WHEN, nullable=True),
        sa.Column("chosen_at", WHEN, nullable=True),
        *_snapshot(),
        sa.Column("sole", sa.Boolean(), nullable=False),
        sa.Column("outcomes", PICKS, nullable=False),
        sa.Column("objectives", PICKS, nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_report_response_facts")),
    )
    op.create_index("ix_report_response_facts_created_at", "report_response_facts", ["created_at"])
    op.create_index("ix_report_response_facts_completed_at", "report_response_facts", ["completed_at"])
    op.create_index("ix_report_response_facts_chosen_at", "report_response_facts", ["chosen_at"])
    op.create_index("ix_report_response_facts_account_id", "report_response_facts", ["account_id"])
    op.create_table(
        "report_reach_facts",
        sa.Column("reach_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("first_at", WHEN, nullable=False),
        *_snapshot(),
        sa.PrimaryKeyConstraint("reach_id", name=op.f("pk_report_reach_facts")),
    )
    op.create_index("ix_report_reach_facts_first_at", "report_reach_facts", ["first_at"])
    op.create_index("ix_report_reach_facts_account_id", "report_reach_facts", ["account_id"])
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in FILL:
        op.execute(statement)
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
    for table in (
        "report_enrollment_channel_facts",
        "report_reach_facts",
        "report_response_facts",
        "report_enrollment_facts",
        "report_kr_facts",
        "report_plan_facts",
    ):
        op.drop_table(table)
    op.drop_table("report_dirty")
