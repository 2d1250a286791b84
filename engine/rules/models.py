"""Stored rulesets and rules: versioned, with draft/published/archived status."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from engine.accounts import str_enum
from engine.db import Base, utcnow
from engine.rules.decide import RuleSpec


class RuleSetStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class RuleSet(Base):
    __tablename__ = "rulesets"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    status: Mapped[RuleSetStatus] = mapped_column(str_enum(RuleSetStatus), default=RuleSetStatus.DRAFT)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    published_at: Mapped[dt.datetime | None]
    # Who made this version and why: a draft's author, the publisher, the version it was copied
    # from (a new draft starts from the published rules; a rollback republishes an old version).
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by: Mapped[str | None] = mapped_column(String(320))
    published_by: Mapped[str | None] = mapped_column(String(320))
    based_on_version: Mapped[int | None]

    rules: Mapped[list[Rule]] = relationship(
        back_populates="ruleset", order_by="Rule.id", cascade="all, delete-orphan"
    )

    def specs(self) -> list[RuleSpec]:
        return [r.spec() for r in self.rules]


class Rule(Base):
    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    ruleset_id: Mapped[int] = mapped_column(ForeignKey("rulesets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(default=100)
    condition: Mapped[dict[str, Any]] = mapped_column()
    actions: Mapped[list[Any]] = mapped_column()
    stop_processing: Mapped[bool] = mapped_column(default=False)
    # Bumped on every save; an edit based on an older revision is refused (two editors, one rule).
    revision: Mapped[int] = mapped_column(default=1, server_default="1")

    ruleset: Mapped[RuleSet] = relationship(back_populates="rules")

    def spec(self) -> RuleSpec:
        return RuleSpec(
            name=self.name,
            condition=self.condition,
            actions=tuple(self.actions),
            priority=self.priority,
            stop_processing=self.stop_processing,
        )


def published_ruleset(session: Session) -> RuleSet | None:
    return session.scalar(
        select(RuleSet)
        .where(RuleSet.status == RuleSetStatus.PUBLISHED)
        .order_by(RuleSet.version.desc())
        .limit(1)
    )
