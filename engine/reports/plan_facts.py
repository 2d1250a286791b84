"""Per-plan and per-key-result summary rows (plan adoption, milestones and outcomes read them).

One `report_plan_facts` row per plan: the account's segment / stage / traits as they are now, the
plan's dates, its milestone counts by status, its first achieved milestone, and when the customer
first opened the shared page, first updated the plan and first confirmed a review. One
`report_kr_facts` row per key result with its plan's start and the same account snapshot. Both are
rewritten from the source rows by engine.reports.summaries (stale plans and accounts).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.reports.summaries import StaleKeys, register_owner, register_summary


class PlanFact(Base):
    """A plan as the milestones report sees it, with its account's grouping keys."""

    __tablename__ = "report_plan_facts"
    __table_args__ = (
        Index("ix_report_plan_facts_started_at", "started_at"),
        Index("ix_report_plan_facts_account_id", "account_id"),
    )

    plan_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime]
    segment: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    traits: Mapped[dict[str, Any]]
    milestones: Mapped[int] = mapped_column(Integer)
    achieved: Mapped[int] = mapped_column(Integer)
    on_track: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    behind: Mapped[int] = mapped_column(Integer)
    missed: Mapped[int] = mapped_column(Integer)
    first_achieved_at: Mapped[dt.datetime | None]
    # Plan adoption: the first shared-page view, customer update and confirmed review (NULL: none).
    first_opened_on: Mapped[dt.date | None] = mapped_column(Date)
    first_update_at: Mapped[dt.datetime | None]
    first_review_at: Mapped[dt.datetime | None]


class KrFact(Base):
    """A key result with its plan's start and its account's grouping keys (KR quartiles)."""

    __tablename__ = "report_kr_facts"
    __table_args__ = (
        Index("ix_report_kr_facts_started_at", "started_at"),
        Index("ix_report_kr_facts_plan_id", "plan_id"),
    )

    key_result_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    plan_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime]
    objective_key: Mapped[str] = mapped_column(String(80))
    baseline: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    target: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    segment: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    traits: Mapped[dict[str, Any]]


# {plans} / {milestones} / {krs} are "TRUE" for a rebuild, "<column> = ANY(:plans)" for a refresh
# ({milestones} filters every per-plan table by its plan_id). The revision conditions are
# engine.reports.plans' CUSTOMER_CHANNEL and REVIEW_SUMMARY.
PLAN_FACTS_SQL = """
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
    FROM milestones WHERE {milestones} GROUP BY plan_id
) m ON m.plan_id = p.id
LEFT JOIN (
    SELECT plan_id, min(day) AS first_opened_on FROM plan_page_views WHERE {milestones} GROUP BY plan_id
) v ON v.plan_id = p.id
LEFT JOIN (
    SELECT plan_id,
           min(created_at) FILTER (WHERE channel = 'shared') AS first_update_at,
           min(created_at) FILTER (WHERE summary LIKE 'Review confirmed%') AS first_review_at
    FROM plan_revisions
    WHERE {milestones} AND (channel = 'shared' OR summary LIKE 'Review confirmed%')
    GROUP BY plan_id
) r ON r.plan_id = p.id
WHERE {plans}
"""

KR_FACTS_SQL = """
INSERT INTO report_kr_facts (key_result_id, plan_id, account_id, started_at, objective_key, baseline,
    target, segment, stage, traits)
SELECT k.id, k.plan_id, p.account_id, p.started_at, k.objective_key, k.baseline, k.target,
       a.segment, a.lifecycle_stage, a.traits
FROM key_results k
JOIN success_plans p ON p.id = k.plan_id
JOIN accounts a ON a.id = p.account_id
WHERE {krs}
"""


def _plans_to_refresh(session: Session, keys: StaleKeys) -> list[int]:
    """Stale plans, and every plan (live or summarised) of a stale account."""
    plans = set(keys.ids("plan"))
    if keys.accounts:
        accounts = {"accounts": sorted(keys.accounts)}
        plans.update(
            session.scalars(text("SELECT id FROM success_plans WHERE account_id = ANY(:accounts)"), accounts)
        )
        plans.update(
            session.scalars(
                text("SELECT plan_id FROM report_plan_facts WHERE account_id = ANY(:accounts)"), accounts
            )
        )
    return sorted(plans)


def refresh_plan_facts(session: Session, keys: StaleKeys) -> int:
    plans = _plans_to_refresh(session, keys)
    if not plans:
        return 0
    bound = {"plans": plans}
    session.execute(text("DELETE FROM report_plan_facts WHERE plan_id = ANY(:plans)"), bound)
    session.execute(text("DELETE FROM report_kr_facts WHERE plan_id = ANY(:plans)"), bound)
    sql = PLAN_FACTS_SQL.format(plans="p.id = ANY(:plans)", milestones="plan_id = ANY(:plans)")
    session.execute(text(sql), bound)
    session.execute(text(KR_FACTS_SQL.format(krs="k.plan_id = ANY(:plans)")), bound)
    return len(plans)


def rebuild_plan_facts(session: Session) -> int:
    session.execute(text("DELETE FROM report_plan_facts"))
    session.execute(text("DELETE FROM report_kr_facts"))
    rows = session.execute(text(PLAN_FACTS_SQL.format(plans="TRUE", milestones="TRUE")))
    session.execute(text(KR_FACTS_SQL.format(krs="TRUE")))
    return int(rows.rowcount or 0)  # type: ignore[attr-defined]


def accounts_of_plans(session: Session, plan_ids: list[int]) -> set[int]:
    """Owners of stale plans, from the source row or (a deleted plan) its last summary row."""
    bound = {"plans": plan_ids}
    found = set(session.scalars(text("SELECT account_id FROM success_plans WHERE id = ANY(:plans)"), bound))
    found.update(
        session.scalars(text("SELECT account_id FROM report_plan_facts WHERE plan_id = ANY(:plans)"), bound)
    )
    return found


def register_plan_summaries() -> None:
    register_owner("plan", accounts_of_plans)
    register_summary(
        "plans",
        refresh_plan_facts,
        rebuild_plan_facts,
        watches=(
            "accounts",
            "success_plans",
            "milestones",
            "key_results",
            "plan_revisions",
            "plan_page_views",
        ),
    )
