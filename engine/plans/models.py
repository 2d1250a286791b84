"""Plan templates and plan instances (DESIGN.md section 3; seed 004's one-page format)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Date, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts import Account, str_enum
from engine.db import Base, utcnow

MAX_MEASURES = 4
MAX_MILESTONES = 5
LIFECYCLE_STAGES = ("onboarding", "enablement", "adoption", "optimisation", "renewal")


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MilestoneStatus(enum.StrEnum):
    PENDING = "pending"
    ON_TRACK = "on_track"
    BEHIND = "behind"
    ACHIEVED = "achieved"
    MISSED = "missed"


class PlanTemplate(Base):
    __tablename__ = "plan_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    goal: Mapped[str] = mapped_column(Text)
    default_objectives: Mapped[list[Any]] = mapped_column(default=list)
    milestones: Mapped[list[Any]] = mapped_column(default=list)
    dependencies: Mapped[list[Any]] = mapped_column(default=list)
    risks: Mapped[list[Any]] = mapped_column(default=list)
    review_days: Mapped[int] = mapped_column(default=90)
    # The lifecycle stage this template serves (seed 001: onboarding → … → renewal); None: any.
    stage: Mapped[str | None] = mapped_column(String(40))


class SuccessPlan(Base):
    __tablename__ = "success_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    template_key: Mapped[str] = mapped_column(String(80))
    status: Mapped[PlanStatus] = mapped_column(str_enum(PlanStatus), default=PlanStatus.ACTIVE)
    goal: Mapped[str] = mapped_column(Text)
    dependencies: Mapped[list[Any]] = mapped_column(default=list)
    risks: Mapped[list[Any]] = mapped_column(default=list)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    review_date: Mapped[dt.date] = mapped_column(Date)
    review_every_days: Mapped[int] = mapped_column(default=90, server_default="90")
    last_reviewed_at: Mapped[dt.datetime | None]
    stage: Mapped[str | None] = mapped_column(String(40))
    share_token_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    account: Mapped[Account] = relationship()
    key_results: Mapped[list[KeyResult]] = relationship(
        back_populates="plan", order_by="KeyResult.id", cascade="all, delete-orphan"
    )
    milestones: Mapped[list[Milestone]] = relationship(
        back_populates="plan", order_by="Milestone.position", cascade="all, delete-orphan"
    )
    revisions: Mapped[list[PlanRevision]] = relationship(
        back_populates="plan", order_by="PlanRevision.id", cascade="all, delete-orphan"
    )


class KeyResult(Base):
    __tablename__ = "key_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("success_plans.id", ondelete="CASCADE"), index=True)
    objective_key: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(40))
    baseline: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    target: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    current: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    due_date: Mapped[dt.date] = mapped_column(Date)

    plan: Mapped[SuccessPlan] = relationship(back_populates="key_results")

    @property
    def sentence(self) -> str:
        """The seed's SMART phrasing: 'Careers-site traffic from 8,000 to 12,000 a week by Aug 30.'"""
        verb = "Increase" if self.target > self.baseline else "Reduce"
        return (
            f"{verb} {self.metric} from {_number(self.baseline)} to {_number(self.target)} "
            f"{self.unit} by {self.due_date:%b} {self.due_date.day}, {self.due_date.year}"
        )


class Milestone(Base):
    __tablename__ = "milestones"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("success_plans.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    owner: Mapped[str] = mapped_column(String(16), default="customer")
    due_date: Mapped[dt.date] = mapped_column(Date)
    # Due `due_days` after the milestone `after` (its key) is due, instead of after the plan start.
    after: Mapped[str | None] = mapped_column(String(80))
    criteria: Mapped[dict[str, Any] | None] = mapped_column()
    status: Mapped[MilestoneStatus] = mapped_column(
        str_enum(MilestoneStatus), default=MilestoneStatus.PENDING
    )
    achieved_at: Mapped[dt.datetime | None]

    plan: Mapped[SuccessPlan] = relationship(back_populates="milestones")


class PlanRevision(Base):
    __tablename__ = "plan_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("success_plans.id", ondelete="CASCADE"), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    change: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # When the plan's owner on the other side was told about this change (None: not yet / not needed).
    notified_at: Mapped[dt.datetime | None]

    plan: Mapped[SuccessPlan] = relationship(back_populates="revisions")


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
