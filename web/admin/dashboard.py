"""The console dashboard: the numbers CS leaders open first, each linking to its report.

Every figure is one bounded aggregate (a count with FILTER clauses over the last 14 days, split into
this week and the week before), so the page costs a handful of queries whatever the data size.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import render_template
from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from campaigns.models import Message, MessageStatus, WebhookEvent
from engine.accounts import Account
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.plans.progress import SLIPPED
from surveys.models import Response, ResponseStatus
from web.admin import bp
from web.admin.auth import ANY_ROLE, role_required
from web.admin.nav import first_link
from web.context import db_session, now, settings

# Indexes the dashboard's date-bounded counts need on other packages' tables (declared here, next to
# the queries that use them, as the reports do, and created by migration 0012). Each is partial where
# the dashboard reads only a slice, so the hot write paths (ticks, deliveries) carry little extra.
# Its date-bounded counts read indexes declared beside the reports (campaigns/reports.py and
# engine/reports/models.py DASHBOARD_INDEXES, created by migration 0012).

WEEK = dt.timedelta(days=7)
DELIVERED = (MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED)
BOUNCED = (MessageStatus.BOUNCED, MessageStatus.DROPPED)
AT_RISK_LISTED = 5


@dataclass(frozen=True)
class Weeks:
    """This week is [start, end); the week before is [previous, start)."""

    previous: dt.datetime
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def ending(cls, moment: dt.datetime) -> Weeks:
        return cls(moment - 2 * WEEK, moment - WEEK, moment)


@dataclass(frozen=True)
class Figure:
    """One number on the dashboard with last week's for comparison. `better` says which way is good
    ("up" or "down"); rates are fractions 0..1 (None when there was nothing to divide by)."""

    key: str
    label: str
    value: float | None
    previous: float | None
    rate: bool = False
    better: str = "up"
    detail: str = ""
    snapshot: bool = False  # a count of now, with nothing to compare against
    unknown: str = ""  # why there is no figure to show (said instead of a misleading 0 %)

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    @property
    def trend(self) -> str:
        """ "better", "worse" or "same" (in words on the page, never colour alone)."""
        change = self.change
        if change is None or abs(change) < 1e-9:
            return "same"
        return "better" if (change > 0) == (self.better == "up") else "worse"


@dataclass(frozen=True)
class Tile:
    """A dashboard card: its figures and where to read more."""

    key: str
    title: str
    figures: tuple[Figure, ...]
    link: str | None
    link_label: str


def weekly_counts(
    session: Session,
    weeks: Weeks,
    counted: QueryableAttribute[Any],
    at: QueryableAttribute[Any],
    *where: ColumnElement[bool],
) -> tuple[int, int]:
    """How many `counted` rows matching `where` have `at` in this week and in the week before: one
    aggregate over the two weeks' range (the shape every dashboard count shares)."""
    this, before = session.execute(
        select(
            func.count(counted).filter(at >= weeks.start),
            func.count(counted).filter(at < weeks.start),
        ).where(*where, at >= weeks.previous, at < weeks.end)
    ).one()
    return int(this or 0), int(before or 0)


def surveys_completed(session: Session, weeks: Weeks) -> Figure:
    this, before = weekly_counts(
        session, weeks, Response.id, Response.completed_at, Response.status == ResponseStatus.COMPLETED
    )
    return Figure("surveys_completed", "in the last 7 days", this, before)


def plans_at_risk(session: Session, weeks: Weeks) -> tuple[Figure, Figure]:
    """Active plans with a milestone behind or missed now, and how many milestones slipped each week
    (the plan's revisions record every move to behind or missed)."""
    at_risk = int(
        session.scalar(
            select(func.count(distinct(Milestone.plan_id)))
            .join(SuccessPlan, SuccessPlan.id == Milestone.plan_id)
            .where(SuccessPlan.status == PlanStatus.ACTIVE, Milestone.status.in_(SLIPPED))
        )
        or 0
    )
    slipped_status = PlanRevision.change["status"].as_string()
    this, before = weekly_counts(
        session,
        weeks,
        PlanRevision.id,
        PlanRevision.created_at,
        PlanRevision.change["milestone"].as_string().is_not(None),
        slipped_status.in_([s.value for s in SLIPPED]),
    )
    return (
        Figure("plans_at_risk", "active plans behind or missed", at_risk, None, better="down", snapshot=True),
        Figure("milestones_slipped", "milestones slipped this week", this, before, better="down"),
    )


def milestones_achieved(session: Session, weeks: Weeks) -> Figure:
    this, before = weekly_counts(
        session, weeks, Milestone.id, Milestone.achieved_at, Milestone.status == MilestoneStatus.ACHIEVED
    )
    return Figure("milestones_achieved", "in the last 7 days", this, before)


@dataclass(frozen=True)
class MessageWeek:
    sent: int
    emails: int
    delivered: int
    bounced: int
    skipped: int
    spam: int


def message_weeks(session: Session, weeks: Weeks) -> tuple[MessageWeek, MessageWeek]:
    """Sends (by when they went out), emails among them and how they fared, and skips (messages a
    guard stopped, by when they were written), this week and the week before."""
    this_week = Message.sent_at >= weeks.start
    email = Message.channel == "email"
    sent_cols = []
    for current in (this_week, ~this_week):
        sent_cols += [
            func.count(Message.id).filter(current),
            func.count(Message.id).filter(current, email),
            func.count(Message.id).filter(current, email, Message.status.in_(DELIVERED)),
            func.count(Message.id).filter(current, email, Message.status.in_(BOUNCED)),
        ]
    sent = session.execute(
        select(*sent_cols).where(Message.sent_at >= weeks.previous, Message.sent_at < weeks.end)
    ).one()
    skipped = weekly_counts(
        session, weeks, Message.id, Message.created_at, Message.status == MessageStatus.SUPPRESSED
    )
    spam = weekly_counts(
        session, weeks, WebhookEvent.id, WebhookEvent.received_at, WebhookEvent.event == "spamreport"
    )
    counts = [int(n or 0) for n in sent]
    return (
        MessageWeek(counts[0], counts[1], counts[2], counts[3], skipped[0], spam[0]),
        MessageWeek(counts[4], counts[5], counts[6], counts[7], skipped[1], spam[1]),
    )


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _share_of_emails(
    key: str,
    label: str,
    part: Callable[[MessageWeek], int],
    this: MessageWeek,
    before: MessageWeek,
    *,
    better: str = "up",
    detail: str,
) -> Figure:
    """`part` of each week's emails, as a rate beside the week before's."""
    this_rate, before_rate = _rate(part(this), this.emails), _rate(part(before), before.emails)
    return Figure(key, label, this_rate, before_rate, rate=True, better=better, detail=detail)


def deliverability(this: MessageWeek, before: MessageWeek, *, no_events: str) -> tuple[Figure, ...]:
    """Delivered, bounced and spam shares of the emails sent. Emails went out but no delivery event
    came back in either week (the outbox backend, SendGrid's event webhook not set up, or not yet
    arrived): the rates are unknown, not 0 %, and `no_events` says why."""
    heard = sum(week.delivered + week.bounced + week.spam for week in (this, before))
    if (this.emails or before.emails) and not heard:
        return tuple(
            Figure(
                key, label, None, None, rate=True, detail=f"{this.emails:,} emails sent", unknown=no_events
            )
            for key, label in (
                ("delivered_rate", "delivered"),
                ("bounced_rate", "bounced or dropped"),
                ("spam_rate", "reported as spam"),
            )
        )
    of_emails = f" of {this.emails:,} emails"
    return (
        _share_of_emails(
            "delivered_rate",
            "delivered",
            lambda week: week.delivered,
            this,
            before,
            detail=f"{this.delivered:,}{of_emails}",
        ),
        _share_of_emails(
            "bounced_rate",
            "bounced or dropped",
            lambda week: week.bounced,
            this,
            before,
            better="down",
            detail=f"{this.bounced:,}{of_emails}",
        ),
        _share_of_emails(
            "spam_rate",
            "reported as spam",
            lambda week: week.spam,
            this,
            before,
            better="down",
            detail=f"{this.spam:,} report{'' if this.spam == 1 else 's'}",
        ),
    )


@dataclass(frozen=True)
class RiskRow:
    plan_id: int
    account_id: int
    account: str
    external_id: str
    milestone: str
    status: str
    due_date: dt.date


def plans_at_risk_list(session: Session, *, limit: int = AT_RISK_LISTED) -> list[RiskRow]:
    """The active plans' slipped milestones to look at first: those behind, due soonest, then the
    latest missed (each an index range scan on `ix_milestones_slipped`, stopped at `limit`)."""
    found: list[RiskRow] = []
    for status, order in (
        (MilestoneStatus.BEHIND, Milestone.due_date.asc()),
        (MilestoneStatus.MISSED, Milestone.due_date.desc()),
    ):
        if len(found) >= limit:
            break
        rows = session.execute(
            select(
                SuccessPlan.id,
                Account.id,
                Account.name,
                Account.external_id,
                Milestone.title,
                Milestone.due_date,
            )
            .join(SuccessPlan, SuccessPlan.id == Milestone.plan_id)
            .join(Account, Account.id == SuccessPlan.account_id)
            .where(SuccessPlan.status == PlanStatus.ACTIVE, Milestone.status == status)
            .order_by(order, Milestone.id)
            .limit(limit - len(found))
        )
        found += [RiskRow(p, a, name, ext, title, status.value, due) for p, a, name, ext, title, due in rows]
    return found


def no_delivery_events(mail_backend: str, webhook_key: str | None) -> str:
    """Why no delivery event comes back, as the settings say."""
    if mail_backend == "outbox":
        return "not tracked: mail goes to the outbox folder (NORTHSTAR_MAIL_BACKEND=outbox)"
    if not webhook_key:
        return "not tracked: set up SendGrid's event webhook (NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY)"
    return "no delivery events from SendGrid yet: check its event webhook"


def dashboard_tiles(session: Session, moment: dt.datetime, *, no_events: str = "") -> list[Tile]:
    weeks = Weeks.ending(moment)
    at_risk, slipped = plans_at_risk(session, weeks)
    this, before = message_weeks(session, weeks)

    def report(name: str, fallback: str, **values: Any) -> str | None:
        return first_link(("admin.report", {"name": name}), (fallback, values))

    return [
        Tile(
            "surveys",
            "Surveys completed",
            (surveys_completed(session, weeks),),
            report("survey-funnel", "admin.surveys"),
            "Survey funnel",
        ),
        Tile(
            "milestones",
            "Milestones achieved",
            (milestones_achieved(session, weeks),),
            report("milestones", "admin.plans"),
            "Milestones report",
        ),
        Tile(
            "risk",
            "Plans at risk",
            (at_risk, slipped),
            report("milestones", "admin.plans", state="behind"),
            "Milestones report",
        ),
        Tile(
            "campaigns",
            "Campaign sends and skips",
            (
                Figure("sent", "messages sent", this.sent, before.sent),
                Figure(
                    "skipped",
                    "skipped by a guard",
                    this.skipped,
                    before.skipped,
                    better="down",
                    detail="suppressed, capped, held out or outside the send window",
                ),
            ),
            report("campaign-funnel", "admin.campaigns"),
            "Campaign funnel",
        ),
        Tile(
            "deliverability",
            "Deliverability",
            deliverability(this, before, no_events=no_events),
            report("campaign-funnel", "admin.campaigns"),
            "Campaign funnel",
        ),
    ]


@bp.get("/", endpoint="dashboard")
@role_required(*ANY_ROLE)
def dashboard() -> Any:
    session = db_session()
    moment = now()
    return render_template(
        "admin/dashboard.html",
        section="dashboard",
        tiles=dashboard_tiles(
            session,
            moment,
            no_events=no_delivery_events(settings().mail_backend, settings().sendgrid_webhook_public_key),
        ),
        at_risk=plans_at_risk_list(session),
        weeks=Weeks.ending(moment),
    )
