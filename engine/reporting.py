"""Segment reporting: per-segment counts, with metrics contributed by the packages that own the data.

Engine sits lowest, so it cannot read the survey or message tables itself; `surveys` and
`campaigns` register their metrics here (see docs/adr/0002-reporting-metric-providers.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.db import utcnow
from engine.plans.models import Milestone, MilestoneStatus, PlanStatus, SuccessPlan

SLIPPED = (MilestoneStatus.BEHIND, MilestoneStatus.MISSED)

SegmentCounts = dict[str, int]
MetricQuery = Callable[[Session], SegmentCounts]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    order: int
    query: MetricQuery


@dataclass(frozen=True)
class SegmentRow:
    segment: str
    values: dict[str, int]


_metrics: dict[str, Metric] = {}


def register_metric(key: str, label: str, order: int, query: MetricQuery) -> None:
    """Add (or replace, so wiring twice is harmless) a per-segment metric."""
    _metrics[key] = Metric(key, label, order, query)


def metrics() -> list[Metric]:
    return sorted(_metrics.values(), key=lambda m: (m.order, m.key))


def segment_report(session: Session) -> list[SegmentRow]:
    """One row per segment plus a final 'all' row, every registered metric as a column."""
    columns = {m.key: m.query(session) for m in metrics()}
    segments = sorted(columns.get("accounts", {}))
    rows = [SegmentRow(s, {k: counts.get(s, 0) for k, counts in columns.items()}) for s in segments]
    total = {k: sum(counts.values()) for k, counts in columns.items()}
    return [*rows, SegmentRow("all", total)]


def _accounts(session: Session) -> SegmentCounts:
    rows = session.execute(select(Account.segment, func.count()).group_by(Account.segment))
    return {segment: int(n) for segment, n in rows}


def _plans(session: Session) -> SegmentCounts:
    rows = session.execute(
        select(Account.segment, func.count(SuccessPlan.id))
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def _milestones_achieved(session: Session) -> SegmentCounts:
    rows = session.execute(
        select(Account.segment, func.count(distinct(Milestone.id)))
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .join(Milestone, Milestone.plan_id == SuccessPlan.id)
        .where(Milestone.status == MilestoneStatus.ACHIEVED)
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def _milestones_behind(session: Session) -> SegmentCounts:
    rows = session.execute(
        select(Account.segment, func.count(distinct(Milestone.id)))
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .join(Milestone, Milestone.plan_id == SuccessPlan.id)
        .where(SuccessPlan.status == PlanStatus.ACTIVE, Milestone.status.in_(SLIPPED))
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def _reviews_overdue(session: Session) -> SegmentCounts:
    today = utcnow().date()
    rows = session.execute(
        select(Account.segment, func.count(SuccessPlan.id))
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .where(SuccessPlan.status == PlanStatus.ACTIVE, SuccessPlan.review_date < today)
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def register_engine_metrics() -> None:
    register_metric("accounts", "accounts", 0, _accounts)
    register_metric("plans_created", "plans created", 20, _plans)
    register_metric("milestones_achieved", "milestones achieved", 40, _milestones_achieved)
    register_metric("milestones_behind", "milestones behind or missed", 41, _milestones_behind)
    register_metric("reviews_overdue", "reviews overdue", 42, _reviews_overdue)
