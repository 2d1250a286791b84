"""The outcome and objective library customers choose from (seed 000: outcomes → objectives → KRs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, Integer, Numeric, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import refcache
from engine.db import Base


class Outcome(Base):
    __tablename__ = "outcomes"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")

    def item(self) -> dict[str, Any]:
        """As the playbook writes it (and the widget reads it)."""
        return {"key": self.key, "title": self.title, "description": self.description}


class Objective(Base):
    __tablename__ = "objectives"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    outcome_key: Mapped[str] = mapped_column(ForeignKey("outcomes.key"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(40))
    default_baseline: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    default_target: Mapped[float] = mapped_column(Numeric(asdecimal=False))
    default_days: Mapped[int] = mapped_column(Integer)

    def item(self) -> dict[str, Any]:
        """As the playbook writes it (and the widget reads it)."""
        return {
            "key": self.key,
            "outcome": self.outcome_key,
            "title": self.title,
            "metric": self.metric,
            "unit": self.unit,
            "baseline": self.default_baseline,
            "target": self.default_target,
            "days": self.default_days,
        }


# Measures that cannot go below zero: rates and shares, counts per period, durations.
NON_NEGATIVE_UNITS = frozenset({"%", "percent", "seconds", "minutes", "hours", "days", "weeks", "months"})


def least_value(unit: str) -> float | None:
    """The least value a measure in `unit` can take (0 for %, "per week", days…), or None: a unit
    this cannot tell about (points, a score, a currency) may go negative."""
    unit = unit.strip().lower()
    return 0.0 if unit in NON_NEGATIVE_UNITS or unit.startswith("per ") else None


def below_least(value: float, unit: str) -> str | None:
    """Why `value` cannot be a measure in `unit`, or None when it can."""
    least = least_value(unit)
    return (
        f"cannot be below 0 for a measure in {unit.strip()}" if least is not None and value < least else None
    )


@dataclass(frozen=True)
class ObjectiveInfo:
    """An objective as plain values (the cached library hands these out, not ORM rows)."""

    key: str
    outcome_key: str
    title: str
    metric: str
    unit: str
    default_baseline: float
    default_target: float
    default_days: int


@dataclass(frozen=True)
class Library:
    outcomes: dict[str, str]  # key → title
    objectives: dict[str, ObjectiveInfo]


refcache.watch(Outcome.__tablename__, Objective.__tablename__)


def library(session: Session) -> Library:
    def load() -> Library:
        outcomes = {o.key: o.title for o in session.scalars(select(Outcome))}
        objectives = {
            o.key: ObjectiveInfo(
                o.key,
                o.outcome_key,
                o.title,
                o.metric,
                o.unit,
                float(o.default_baseline),
                float(o.default_target),
                int(o.default_days),
            )
            for o in session.scalars(select(Objective))
        }
        return Library(outcomes, objectives)

    return refcache.cached(session, "library", load)


def objectives_by_key(session: Session) -> dict[str, ObjectiveInfo]:
    return library(session).objectives


def outcome_keys(session: Session) -> set[str]:
    return set(library(session).outcomes)
