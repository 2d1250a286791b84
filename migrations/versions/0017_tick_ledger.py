"""scheduler tick: ledger write path (indexes, columns) for the bulk tick — no schema change

The slot was kept for dropping indexes on `messages` that the bulk tick's INSERT maintains. None
was dropped: `ix_messages_status` costs the tick no measurable time (within the noise of a
200,000-row insert), and `ix_messages_contact_id` / `ix_messages_enrollment_id` serve the
`ON DELETE CASCADE` of contacts and enrolments, the in-app inbox and the cap ledger
(docs/scheduler.md, "What a tick costs"). The revision stays, empty, so the chain is unchanged.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 17:30:00
"""

from collections.abc import Sequence

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change (see the module docstring)."""


def downgrade() -> None:
    """Nothing to undo."""
