"""Survey, SurveyVersion (immutable once published) and Response."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.accounts import Account, Contact, str_enum
from engine.db import Base, utcnow


class Channel(enum.StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    HOSTED = "hosted"
    API = "api"


class ResponseStatus(enum.StrEnum):
    PARTIAL = "partial"
    COMPLETED = "completed"


class Survey(Base):
    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    anonymous: Mapped[bool] = mapped_column(default=False)
    # The widget's display rule: once answered, never again; after a dismissal, not for N days.
    redisplay_days: Mapped[int] = mapped_column(default=30, server_default="30")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[SurveyVersion]] = relationship(
        back_populates="survey", order_by="SurveyVersion.version", cascade="all, delete-orphan"
    )

    @property
    def latest_published(self) -> SurveyVersion | None:
        published = [v for v in self.versions if v.published_at is not None]
        return published[-1] if published else None


class SurveyVersion(Base):
    __tablename__ = "survey_versions"
    __table_args__ = (UniqueConstraint("survey_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]] = mapped_column()
    published_at: Mapped[dt.datetime | None]

    survey: Mapped[Survey] = relationship(back_populates="versions")

    @property
    def questions(self) -> list[dict[str, Any]]:
        return list(self.definition.get("questions", []))


class Response(Base):
    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_version_id: Mapped[int] = mapped_column(ForeignKey("survey_versions.id"), index=True)
    # Anonymous surveys have no account: the respondent leaves an email instead.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    respondent_email: Mapped[str | None] = mapped_column(String(320))
    client_response_id: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    status: Mapped[ResponseStatus] = mapped_column(str_enum(ResponseStatus))
    answers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[dt.datetime | None]
    # Completed, with its rules (plan, enrolments) left to the `rules` job: surveys.rules_queue.
    rules_queued_at: Mapped[dt.datetime | None]

    version: Mapped[SurveyVersion] = relationship()
    account: Mapped[Account | None] = relationship()
    contact: Mapped[Contact | None] = relationship()


class SurveyDismissal(Base):
    """A contact closed the widget without answering; the survey waits `redisplay_days`."""

    __tablename__ = "survey_dismissals"
    __table_args__ = (UniqueConstraint("survey_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    dismissed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
