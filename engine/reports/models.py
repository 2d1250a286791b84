"""Facts recorded only for reports: a shared plan page opened (one row per plan per day)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import Account
from engine.db import Base
from engine.plans.models import Milestone, PlanRevision, SuccessPlan


class PlanPageView(Base):
    """The customer opened the shared plan page on `day` (`views` times)."""

    __tablename__ = "plan_page_views"
    __table_args__ = (Index("ix_plan_page_views_day", "day"),)

    plan_id: Mapped[int] = mapped_column(ForeignKey("success_plans.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    views: Mapped[int] = mapped_column(default=1)


# Indexes the plan reports need on engine tables (declared here, next to the reports that use them,
# and created by migration 0008): cohorts by date, achieved milestones, the customer's revisions.
REPORT_INDEXES = (
    Index("ix_accounts_holdout", Account.id, postgresql_where=text("holdout_group")),
    Index("ix_success_plans_created_at", SuccessPlan.created_at),
    Index("ix_success_plans_started_at", SuccessPlan.started_at),
    Index(
        "ix_milestones_achieved",
        Milestone.plan_id,
        Milestone.achieved_at,
        postgresql_where=text("status = 'achieved'"),
    ),
    Index(
        "ix_plan_revisions_customer",
        PlanRevision.plan_id,
        PlanRevision.created_at,
        postgresql_where=text("channel = 'shared'"),
    ),
    Index(
        "ix_plan_revisions_review",
        PlanRevision.plan_id,
        PlanRevision.created_at,
        postgresql_where=text("summary LIKE 'Review confirmed%'"),
    ),
)


def record_plan_opened(session: Session, plan_id: int, *, now: dt.datetime) -> None:
    """Count one opening of the shared plan page; concurrent openings never collide (upsert)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(PlanPageView).values(plan_id=plan_id, day=now.date(), views=1)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[PlanPageView.plan_id, PlanPageView.day],
            set_={"views": PlanPageView.views + 1},
        )
    )


# The console dashboard's date-bounded counts (web/admin/dashboard.py; created by migration 0012).
DASHBOARD_INDEXES = (
    Index(
        "ix_milestones_slipped",
        Milestone.status,
        Milestone.due_date,
        Milestone.plan_id,
        postgresql_where=text("status IN ('behind', 'missed')"),
    ),
    Index("ix_milestones_achieved_at", Milestone.achieved_at, postgresql_where=text("status = 'achieved'")),
    Index("ix_plan_revisions_created_at", PlanRevision.created_at),
)
