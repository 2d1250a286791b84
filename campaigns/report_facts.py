"""Per-enrolment facts for the campaign reports: their definitions, and the summary rows built from them.

The definitions (what counts as sent, delivered, held out, a milestone after enrolling, a key result
attained) are used both by the raw-row queries in campaigns/reports.py and by the rows of
`report_enrollment_facts` (one per enrolment: campaign, start, the account's grouping keys, the
message funnel, the first milestone achieved after enrolling, KR attainment) and of
`report_enrollment_channel_facts` (the message funnel per enrolment and channel), which
engine.reports.summaries keeps current from stale enrolments and accounts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Index,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.models import SENT_STATUSES, Enrollment, Message, MessageStatus
from engine.accounts import Account
from engine.db import Base
from engine.plans.models import KeyResult, Milestone, MilestoneStatus, SuccessPlan
from engine.reports.summaries import StaleKeys, any_of, register_summary

DELIVERED = (MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED)
OPENED = (MessageStatus.OPENED, MessageStatus.CLICKED)
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "spam report")

# One message's contribution to its enrolment's funnel.
SENT = or_(Message.sent_at.is_not(None), Message.status.in_(SENT_STATUSES))
WAS_DELIVERED = or_(Message.delivered_at.is_not(None), Message.status.in_(DELIVERED))
WAS_OPENED = or_(Message.opened_at.is_not(None), Message.status.in_(OPENED))
WAS_CLICKED = or_(Message.clicked_at.is_not(None), Message.status == MessageStatus.CLICKED)
_SKIPPED = Message.status == MessageStatus.SUPPRESSED
SUPPRESSED = and_(
    _SKIPPED, or_(Message.reason.in_(SUPPRESSION_REASONS), Message.reason.like("unsubscribed from %"))
)
CAPPED = and_(_SKIPPED, Message.reason.like("frequency cap%"))


def any_message(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.bool_or(condition), false())


def milestone_after_enrolling(end_before: dt.datetime) -> ColumnElement[bool]:
    return exists().where(
        SuccessPlan.account_id == Enrollment.account_id,
        Milestone.plan_id == SuccessPlan.id,
        Milestone.status == MilestoneStatus.ACHIEVED,
        Milestone.achieved_at >= Enrollment.enrolled_at,
        Milestone.achieved_at < end_before,
    )


def first_milestone_after_enrolling() -> ColumnElement[Any]:
    """When the account first achieved a milestone on or after enrolling (NULL: not yet).

    `milestone_at < end` is exactly `milestone_after_enrolling(end)` for every end date."""
    return (
        select(func.min(Milestone.achieved_at))
        .join(SuccessPlan, SuccessPlan.id == Milestone.plan_id)
        .where(
            SuccessPlan.account_id == Enrollment.account_id,
            Milestone.status == MilestoneStatus.ACHIEVED,
            Milestone.achieved_at >= Enrollment.enrolled_at,
        )
        .correlate(Enrollment)
        .scalar_subquery()
    )


def kr_attained() -> ColumnElement[bool]:
    return exists().where(
        SuccessPlan.account_id == Enrollment.account_id,
        KeyResult.plan_id == SuccessPlan.id,
        or_(
            and_(KeyResult.target >= KeyResult.baseline, KeyResult.current >= KeyResult.target),
            and_(KeyResult.target < KeyResult.baseline, KeyResult.current <= KeyResult.target),
        ),
    )


def held_out() -> ColumnElement[bool]:
    # The global holdout group is a small set of accounts: a hashed list (partial index
    # ix_accounts_holdout) instead of joining the accounts table for one flag.
    return or_(
        Enrollment.held_out, Enrollment.account_id.in_(select(Account.id).where(Account.holdout_group))
    )


class EnrollmentFact(Base):
    """An enrolment as the campaign funnel and holdout lift see it (now), with its account's keys."""

    __tablename__ = "report_enrollment_facts"
    __table_args__ = (
        Index("ix_report_enrollment_facts_enrolled_at", "enrolled_at"),
        Index("ix_report_enrollment_facts_account_id", "account_id"),
    )

    enrollment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int] = mapped_column(Integer)
    enrolled_at: Mapped[dt.datetime]
    segment: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    traits: Mapped[dict[str, Any]]
    held_out: Mapped[bool] = mapped_column(Boolean)  # the campaign's share or the global group
    sent: Mapped[bool] = mapped_column(Boolean)
    delivered: Mapped[bool] = mapped_column(Boolean)
    opened: Mapped[bool] = mapped_column(Boolean)
    clicked: Mapped[bool] = mapped_column(Boolean)
    suppressed: Mapped[int] = mapped_column(Integer)  # messages skipped by suppression
    capped: Mapped[int] = mapped_column(Integer)  # messages skipped by a frequency cap
    milestone_at: Mapped[dt.datetime | None]  # first milestone achieved on or after enrolling
    kr_attained: Mapped[bool] = mapped_column(Boolean)


class EnrollmentChannelFact(Base):
    """An enrolment's messages on one channel (the campaign funnel grouped by channel)."""

    __tablename__ = "report_enrollment_channel_facts"

    enrollment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    sent: Mapped[bool] = mapped_column(Boolean)
    delivered: Mapped[bool] = mapped_column(Boolean)
    opened: Mapped[bool] = mapped_column(Boolean)
    clicked: Mapped[bool] = mapped_column(Boolean)
    suppressed: Mapped[int] = mapped_column(Integer)
    capped: Mapped[int] = mapped_column(Integer)


_COLUMNS = (
    "enrollment_id",
    "account_id",
    "campaign_id",
    "enrolled_at",
    "segment",
    "stage",
    "traits",
    "held_out",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "suppressed",
    "capped",
    "milestone_at",
    "kr_attained",
)


def _facts_insert(enrollment_ids: list[int] | None) -> Any:
    """INSERT … SELECT of the facts of these enrolments (all of them when None)."""
    funnel = select(
        Message.enrollment_id,
        any_message(SENT).label("sent"),
        any_message(WAS_DELIVERED).label("delivered"),
        any_message(WAS_OPENED).label("opened"),
        any_message(WAS_CLICKED).label("clicked"),
        func.count().filter(SUPPRESSED).label("suppressed"),
        func.count().filter(CAPPED).label("capped"),
    ).group_by(Message.enrollment_id)
    ids = bindparam("ids", enrollment_ids, type_=ARRAY(Integer))
    if enrollment_ids is not None:
        funnel = funnel.where(Message.enrollment_id == any_(ids))
    m = funnel.subquery("funnel")
    facts = (
        select(
            Enrollment.id,
            Enrollment.account_id,
            Enrollment.campaign_id,
            Enrollment.enrolled_at,
            Account.segment,
            Account.lifecycle_stage,
            Account.traits,
            or_(Enrollment.held_out, Account.holdout_group),
            func.coalesce(m.c.sent, false()),
            func.coalesce(m.c.delivered, false()),
            func.coalesce(m.c.opened, false()),
            func.coalesce(m.c.clicked, false()),
            func.coalesce(m.c.suppressed, 0),
            func.coalesce(m.c.capped, 0),
            first_milestone_after_enrolling(),
            kr_attained(),
        )
        .join(Account, Account.id == Enrollment.account_id)
        .outerjoin(m, m.c.enrollment_id == Enrollment.id)
    )
    if enrollment_ids is not None:
        facts = facts.where(Enrollment.id == any_(ids))
    return insert(EnrollmentFact).from_select(list(_COLUMNS), facts)


def _channel_facts_insert(enrollment_ids: list[int] | None) -> Any:
    """INSERT … SELECT of the per-channel message funnel of these enrolments (all when None)."""
    funnel = select(
        Message.enrollment_id,
        Message.channel,
        any_message(SENT),
        any_message(WAS_DELIVERED),
        any_message(WAS_OPENED),
        any_message(WAS_CLICKED),
        func.count().filter(SUPPRESSED),
        func.count().filter(CAPPED),
    ).group_by(Message.enrollment_id, Message.channel)
    if enrollment_ids is not None:
        funnel = funnel.where(any_of(Message.enrollment_id, enrollment_ids))
    columns = ["enrollment_id", "channel", "sent", "delivered", "opened", "clicked", "suppressed", "capped"]
    return insert(EnrollmentChannelFact).from_select(columns, funnel)


def enrollment_facts_sql() -> str:
    """The full rebuild as SQL statements (the benchmark seeder runs them on a raw connection)."""
    dialect = PGDialect(paramstyle="named")  # type: ignore[no-untyped-call]
    return ";\n".join(
        str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for statement in (_facts_insert(None), _channel_facts_insert(None))
    )


def refresh_enrollment_facts(session: Session, keys: StaleKeys) -> int:
    """Rewrite the facts of stale enrolments and of every enrolment of a stale account."""
    wanted = set(keys.ids("enrollment"))
    if keys.accounts:
        accounts = sorted(keys.accounts)
        wanted.update(session.scalars(select(Enrollment.id).where(any_of(Enrollment.account_id, accounts))))
        wanted.update(
            session.scalars(
                select(EnrollmentFact.enrollment_id).where(any_of(EnrollmentFact.account_id, accounts))
            )
        )
    if not wanted:
        return 0
    ids = sorted(wanted)
    session.execute(delete(EnrollmentFact).where(any_of(EnrollmentFact.enrollment_id, ids)))
    session.execute(delete(EnrollmentChannelFact).where(any_of(EnrollmentChannelFact.enrollment_id, ids)))
    session.execute(_facts_insert(ids))
    session.execute(_channel_facts_insert(ids))
    return len(ids)


def rebuild_enrollment_facts(session: Session) -> int:
    session.execute(text("DELETE FROM report_enrollment_facts"))
    session.execute(text("DELETE FROM report_enrollment_channel_facts"))
    session.execute(_facts_insert(None))
    session.execute(_channel_facts_insert(None))
    return int(session.scalar(select(func.count()).select_from(EnrollmentFact)) or 0)


def register_enrollment_summary() -> None:
    register_summary(
        "enrollments",
        refresh_enrollment_facts,
        rebuild_enrollment_facts,
        watches=(
            "accounts",
            "enrollments",
            "messages",
            "success_plans",
            "milestones",
            "key_results",
        ),
    )
