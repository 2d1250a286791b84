"""Campaign, Step, Enrollment (a state machine per account) and the Message ledger."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts import Account, Contact, str_enum
from engine.db import Base, utcnow


class StepKind(enum.StrEnum):
    EMAIL = "email"
    IN_APP = "in_app"
    WAIT = "wait"
    WAIT_UNTIL = "wait_until"
    EXIT = "exit"


class EnrollmentState(enum.StrEnum):
    ACTIVE = "active"
    WAITING = "waiting"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"


RUNNABLE_STATES = (EnrollmentState.ACTIVE, EnrollmentState.WAITING)


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    DROPPED = "dropped"
    SUPPRESSED = "suppressed"
    FAILED = "failed"


SENT_STATUSES = (
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(default=1)
    paused: Mapped[bool] = mapped_column(default=False)

    steps: Mapped[list[Step]] = relationship(
        back_populates="campaign", order_by="Step.position", cascade="all, delete-orphan"
    )


class Step(Base):
    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    position: Mapped[int]
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[StepKind] = mapped_column(str_enum(StepKind))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    campaign: Mapped[Campaign] = relationship(back_populates="steps")


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("account_id", "campaign_id"),
        # The tick reads only due, runnable rows: keep that index small (partial on PostgreSQL).
        Index(
            "ix_enrollments_due",
            "next_run_at",
            postgresql_where=text("state IN ('active', 'waiting')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    state: Mapped[EnrollmentState] = mapped_column(str_enum(EnrollmentState))
    current_step: Mapped[int] = mapped_column(default=0)
    step_started_at: Mapped[dt.datetime]
    next_run_at: Mapped[dt.datetime | None]
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    exited_reason: Mapped[str | None] = mapped_column(String(200))
    history: Mapped[list[Any]] = mapped_column(default=list)

    account: Mapped[Account] = relationship()
    campaign: Mapped[Campaign] = relationship()


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"), index=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("campaign_steps.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus), index=True)
    reason: Mapped[str | None] = mapped_column(String(300))
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    template_key: Mapped[str | None] = mapped_column(String(120))
    subject: Mapped[str | None] = mapped_column(String(300))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    enrollment: Mapped[Enrollment] = relationship()
    step: Mapped[Step] = relationship()
    contact: Mapped[Contact] = relationship()
