"""Finding plans: by state (behind, missed, on track, review overdue…), segment, lifecycle stage and
account name, one page at a time. The API and the admin console list plans with these."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from engine.accounts import Account
from engine.errors import ValidationFailed
from engine.plans.models import LIFECYCLE_STAGES, Milestone, MilestoneStatus, PlanStatus, SuccessPlan

PLAN_STATUSES = tuple(s.value for s in PlanStatus)
# A milestone state names active plans with at least one milestone in it.
MILESTONE_STATES = ("on_track", "behind", "missed")
STATES = (*PLAN_STATUSES, *MILESTONE_STATES, "review_overdue")
MAX_PER_PAGE = 200
MAX_SEARCH = 200


@dataclass(frozen=True)
class PlanFilter:
    """Which plans to list; None (or "") means any."""

    state: str = "active"
    segment: str | None = None
    stage: str | None = None
    search: str | None = None

    def check(self) -> None:
        errors = {}
        if self.state not in STATES:
            errors["state"] = f"one of {', '.join(STATES)}"
        if self.stage and self.stage not in LIFECYCLE_STAGES:
            errors["stage"] = f"one of {', '.join(LIFECYCLE_STAGES)}"
        if self.segment and len(self.segment) > 80:
            errors["segment"] = "at most 80 characters"
        if self.search and len(self.search) > MAX_SEARCH:
            errors["search"] = f"at most {MAX_SEARCH} characters"
        if errors:
            raise ValidationFailed(errors)


@dataclass(frozen=True)
class PlanPage:
    plans: Sequence[SuccessPlan]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def plans_query(wanted: PlanFilter, *, today: dt.date) -> Select[SuccessPlan]:
    """The plans `wanted` names (unordered, unpaginated); raises ValidationFailed for bad values."""
    wanted.check()
    query = select(SuccessPlan).join(Account, Account.id == SuccessPlan.account_id)
    if wanted.state in PLAN_STATUSES:
        query = query.where(SuccessPlan.status == PlanStatus(wanted.state))
    else:
        query = query.where(SuccessPlan.status == PlanStatus.ACTIVE)
        if wanted.state == "review_overdue":
            query = query.where(SuccessPlan.review_date < today)
        else:
            query = query.where(
                exists().where(
                    Milestone.plan_id == SuccessPlan.id, Milestone.status == MilestoneStatus(wanted.state)
                )
            )
    if wanted.segment:
        query = query.where(Account.segment == wanted.segment)
    if wanted.stage:
        query = query.where(Account.lifecycle_stage == wanted.stage)
    if wanted.search and wanted.search.strip():
        pattern = "%" + _escape_like(wanted.search.strip()) + "%"
        query = query.where(
            or_(Account.name.ilike(pattern, escape="\\"), Account.external_id.ilike(pattern, escape="\\"))
        )
    return query


def count_plans(session: Session, wanted: PlanFilter, *, today: dt.date) -> int:
    query = plans_query(wanted, today=today)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def plan_page(
    session: Session, wanted: PlanFilter, *, today: dt.date, page: int = 1, per_page: int = 50
) -> PlanPage:
    """One page of the plans `wanted` names, newest first, with what a list shows loaded up front."""
    errors = {}
    if not 1 <= page <= 1_000_000:
        errors["page"] = "a whole number from 1"
    if not 1 <= per_page <= MAX_PER_PAGE:
        errors["per_page"] = f"a whole number from 1 to {MAX_PER_PAGE}"
    if errors:
        raise ValidationFailed(errors)
    query = plans_query(wanted, today=today)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    plans = session.scalars(
        query.options(
            selectinload(SuccessPlan.key_results),
            selectinload(SuccessPlan.milestones),
            selectinload(SuccessPlan.account).selectinload(Account.contacts),
        )
        .order_by(SuccessPlan.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return PlanPage(plans, total, page, per_page)


def plan_segments(session: Session) -> list[str]:
    """The segments of accounts that have a plan (what a segment filter can offer)."""
    query = (
        select(Account.segment)
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .distinct()
        .order_by(Account.segment)
    )
    return list(session.scalars(query))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
