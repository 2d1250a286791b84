"""`report_mark_stale` (migrations 0016, 0020) marks the key of every row a statement wrote, for each
key column its triggers pass, through its static statements and through the EXECUTE fallback."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session


@pytest.mark.parametrize("column", ["id", "plan_id", "enrollment_id", "response_id", "other_id"])
def test_each_key_column_marks_what_one_statement_wrote(db: Session, column: str) -> None:
    db.execute(text(f"CREATE TEMPORARY TABLE watched (pk serial PRIMARY KEY, {column} integer)"))
    db.execute(
        text(
            "CREATE TRIGGER watched_stale AFTER INSERT ON watched REFERENCING NEW TABLE AS changed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION report_mark_stale('probe', '{column}')"
        )
    )
    db.execute(text(f"INSERT INTO watched ({column}) VALUES (7), (8), (8), (NULL)"))
    db.execute(text(f"INSERT INTO watched ({column}) VALUES (9)"))
    db.execute(text(f"INSERT INTO watched ({column}) VALUES (7)"))  # already marked: marked again
    marked = db.scalars(text("SELECT id FROM report_dirty WHERE kind = 'probe' ORDER BY id")).all()
    assert marked == [7, 8, 9]
