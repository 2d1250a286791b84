"""reports: the statement-level stale-marking trigger runs static SQL

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 02:00:00

`report_mark_stale` (0016) built its INSERT with `EXECUTE format(...)`, so PostgreSQL parsed and
planned it on every firing: about 50 µs per statement on the tables it watches, against 5 µs for
the INSERT it follows. The same INSERTs as static statements, one per key column, are planned
once per session and table: about 25 µs (measured with 5,000 one-row INSERTs). It matters where
rows go in one at a time: the `rules` job's `executemany` fires it for every plan, key result,
milestone, revision and enrolment (ADR 0011), and every survey submission fires it once.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The key columns 0016's triggers pass (TG_ARGV[1]), each with its own static INSERT; any other
# column still works, through EXECUTE.
KEY_COLUMNS = ("id", "plan_id", "enrollment_id", "response_id")
MARK = (
    "INSERT INTO report_dirty (kind, id) SELECT DISTINCT TG_ARGV[0], {c} FROM changed\n"
    "        WHERE {c} IS NOT NULL ORDER BY 2 ON CONFLICT (kind, id) DO UPDATE SET marked_at = now();"
)
BRANCHES = "\n    ELS".join(f"IF TG_ARGV[1] = '{c}' THEN\n        {MARK.format(c=c)}" for c in KEY_COLUMNS)
STATIC = f"""
CREATE OR REPLACE FUNCTION report_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- DO UPDATE (not NOTHING) takes the row lock, so a refresh that runs before this transaction
    -- commits skips the key (SKIP LOCKED) instead of deleting it and missing this change.
    -- Static statements (planned once per session and table), not EXECUTE (planned every time).
    {BRANCHES}
    ELSE
        EXECUTE format(
            'INSERT INTO report_dirty (kind, id) SELECT DISTINCT %L, %I FROM changed WHERE %I IS NOT NULL '
            'ORDER BY 2 ON CONFLICT (kind, id) DO UPDATE SET marked_at = now()',
            TG_ARGV[0], TG_ARGV[1], TG_ARGV[1]);
    END IF;
    RETURN NULL;
END $$
"""

# The downgrade puts back 0016's function as it was (migrations are history: not shared code).
DYNAMIC = """
CREATE OR REPLACE FUNCTION report_mark_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO report_dirty (kind, id) SELECT DISTINCT %L, %I FROM changed WHERE %I IS NOT NULL '
        'ORDER BY 2 ON CONFLICT (kind, id) DO UPDATE SET marked_at = now()',
        TG_ARGV[0], TG_ARGV[1], TG_ARGV[1]);
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(STATIC)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DYNAMIC)
