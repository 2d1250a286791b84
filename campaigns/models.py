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
    BRANCH = "branch"
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
    DEFERRED = "deferred"  # written, held until the contact's send window opens (`not_before`)
    SEEN = "seen"  # in-app: shown in the inbox
    DISMISSED = "dismissed"  # in-app: closed by the contact


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
    version: Mapped[int] = mapped_column(default=1)  # the version new enrolments run
    paused: Mapped[bool] = mapped_column(default=False)

    # Every version's steps (running enrolments stay on theirs); `steps` is the current version's.
    all_steps: Mapped[list[Step]] = relationship(
        back_populates="campaign", order_by="(Step.version, Step.position)", cascade="all, delete-orphan"
    )
    steps: Mapped[list[Step]] = relationship(
        primaryjoin="and_(Campaign.id == foreign(Step.campaign_id), Campaign.version == Step.version)",
        order_by="Step.position",
        viewonly=True,
    )
    versions: Mapped[list[CampaignVersion]] = relationship(
        back_populates="campaign", order_by="CampaignVersion.version", cascade="all, delete-orphan"
    )


class CampaignVersion(Base):
    """A published version's settings (entry trigger, exit criteria, re-entry, holdout, caps, send
    window, category); its steps are the Step rows with the same version number."""

    __tablename__ = "campaign_versions"
    __table_args__ = (UniqueConstraint("campaign_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version: Mapped[int]
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]

    campaign: Mapped[Campaign] = relationship(back_populates="versions")


class Step(Base):
    __tablename__ = "campaign_steps"
    __table_args__ = (UniqueConstraint("campaign_id", "version", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(default=1, server_default="1")
    position: Mapped[int]
    key: Mapped[str] = mapped_column(String(80))
    kind: Mapped[StepKind] = mapped_column(str_enum(StepKind))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    campaign: Mapped[Campaign] = relationship(back_populates="all_steps")


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
    campaign_version: Mapped[int] = mapped_column(default=1, server_default="1")
    entry: Mapped[int] = mapped_column(default=1, server_default="1")  # 2+ after a re-entry
    held_out: Mapped[bool] = mapped_column(default=False, server_default="0")

    account: Mapped[Account] = relationship()
    campaign: Mapped[Campaign] = relationship()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The tick releases deferred rows whose window opened: keep that index to those rows.
        Index("ix_messages_deferred", "not_before", postgresql_where=text("status = 'deferred'")),
    )

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
    not_before: Mapped[dt.datetime | None]  # deferred until the contact's send window opens
    # Why it was (not) sent: the enrolling rule, the step, and every guard's result.
    trace: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # In-app inbox and provider events (delivered/open/click) as they happen.
    delivered_at: Mapped[dt.datetime | None]
    opened_at: Mapped[dt.datetime | None]
    clicked_at: Mapped[dt.datetime | None]
    seen_at: Mapped[dt.datetime | None]
    dismissed_at: Mapped[dt.datetime | None]

    enrollment: Mapped[Enrollment] = relationship()
    step: Mapped[Step] = relationship()
    contact: Mapped[Contact] = relationship()


class WebhookEvent(Base):
    """A provider event (SendGrid event webhook), stored once per `sg_event_id`."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_event_id: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
