"""Campaign reports: the funnel (enrolled → sent → … → milestone achieved) and holdout lift.

Also registers what campaigns/report_sources.py tells the other reports (the campaigns, the
`campaign` filter, the survey funnel's email reach).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import ColumnElement, Index, Select, Subquery, and_, exists, false, func, select, text
from sqlalchemy.orm import Session

from campaigns.models import Campaign, CampaignVersion, Enrollment, Message, WebhookEvent
from campaigns.report_facts import (
    CAPPED,
    SENT,
    SUPPRESSED,
    WAS_CLICKED,
    WAS_DELIVERED,
    WAS_OPENED,
    EnrollmentChannelFact,
    EnrollmentFact,
    any_message,
    held_out,
    kr_attained,
    milestone_after_enrolling,
    register_enrollment_summary,
)
from campaigns.report_sources import (
    campaign_keys,
    enrolled_accounts,
    survey_emails_sent,
    survey_emails_sent_from_summaries,
)
from engine.accounts import Account
from engine.reports import (
    Chart,
    Column,
    Filters,
    ReportResult,
    Series,
    register_campaign_options,
    register_report,
)
from engine.reports.scope import (
    NONE_LABEL,
    group_column,
    scope_accounts,
    snapshot_conditions,
    snapshot_group,
)
from engine.reports.stats import lift_verdict, newcombe_difference, share
from surveys.funnel_report import register_email_reach

# Cohorts of enrolments by date (created by migration 0008).
REPORT_INDEXES = (
    Index("ix_enrollments_enrolled_at", Enrollment.enrolled_at),
    Index("ix_messages_sent_at", Message.sent_at, postgresql_where=text("sent_at IS NOT NULL")),
)

# The console dashboard's date-bounded counts (web/admin/dashboard.py; created by migration 0012).
DASHBOARD_INDEXES = (
    Index("ix_messages_suppressed_at", Message.created_at, postgresql_where=text("status = 'suppressed'")),
    Index("ix_webhook_events_spam", WebhookEvent.received_at, postgresql_where=text("event = 'spamreport'")),
)


def _scoped(query: Select[Any], filters: Filters) -> Select[Any]:
    """Enrolments begun between the dates, of the filtered accounts (and campaign); joins Account
    only when a filter or the grouping reads it."""
    query = query.where(
        Enrollment.enrolled_at >= filters.start_at, Enrollment.enrolled_at < filters.end_before
    )
    if filters.campaign:
        query = query.where(Campaign.key == filters.campaign)
    without_campaign = dataclasses.replace(filters, campaign=None)
    if filters.group_by == "channel":
        without_campaign = dataclasses.replace(without_campaign, group_by=None)
    return scope_accounts(query, without_campaign, Enrollment.account_id)


def _group(filters: Filters) -> ColumnElement[Any]:
    if not filters.group_by:
        return Campaign.key.expression
    return group_column(filters, channel=func.coalesce(Message.channel, NONE_LABEL))


def campaign_funnel(session: Session, filters: Filters) -> ReportResult:
    """The funnel from the raw enrolments and messages (one row per enrolment, then counted)."""
    group = _group(filters)
    per_enrollment_query = (
        select(
            Enrollment.id.label("enrollment_id"),
            group.label("grp"),
            held_out().label("held_out"),
            any_message(SENT).label("sent"),
            any_message(WAS_DELIVERED).label("delivered"),
            any_message(WAS_OPENED).label("opened"),
            any_message(WAS_CLICKED).label("clicked"),
            func.count(Message.id).filter(SUPPRESSED).label("suppressed"),
            func.count(Message.id).filter(CAPPED).label("capped"),
            milestone_after_enrolling(filters.end_before).label("milestone"),
        )
        .select_from(Enrollment)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .outerjoin(Message, Message.enrollment_id == Enrollment.id)
        .group_by(Enrollment.id, group)
    )
    return _funnel_report(session, filters, _scoped(per_enrollment_query, filters).subquery())


def campaign_funnel_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """The funnel from report_enrollment_facts; by channel, one row per enrolment and channel from
    report_enrollment_channel_facts ('(none)' for an enrolment without messages), as the raw query."""
    fact = EnrollmentFact
    if filters.group_by == "channel":
        per_channel = EnrollmentChannelFact
        query = select(
            fact.enrollment_id,
            func.coalesce(per_channel.channel, NONE_LABEL).label("grp"),
            fact.held_out,
            *(
                func.coalesce(getattr(per_channel, k), false()).label(k)
                for k in ("sent", "delivered", "opened", "clicked")
            ),
            *(func.coalesce(getattr(per_channel, k), 0).label(k) for k in ("suppressed", "capped")),
            _facts_milestone(filters).label("milestone"),
        )
        query = _facts_scoped(query, filters).outerjoin(
            per_channel, per_channel.enrollment_id == fact.enrollment_id
        )
        return _funnel_report(session, filters, query.subquery())
    per_enrollment = _facts_scoped(
        select(
            fact.enrollment_id,
            _facts_group(filters).label("grp"),
            fact.held_out,
            fact.sent,
            fact.delivered,
            fact.opened,
            fact.clicked,
            fact.suppressed,
            fact.capped,
            _facts_milestone(filters).label("milestone"),
        ),
        filters,
    ).subquery()
    return _funnel_report(session, filters, per_enrollment)


def _facts_group(filters: Filters) -> ColumnElement[Any]:
    if filters.group_by in (None, "channel"):
        return Campaign.key.expression
    return snapshot_group(filters, EnrollmentFact)


def _facts_milestone(filters: Filters) -> ColumnElement[Any]:
    fact = EnrollmentFact
    return func.coalesce(fact.milestone_at < filters.end_before, false())


def _facts_scoped(query: Select[Any], filters: Filters) -> Select[Any]:
    """Enrolments begun between the dates, of the filtered accounts (snapshot columns) and campaign."""
    fact = EnrollmentFact
    query = query.select_from(fact).join(Campaign, Campaign.id == fact.campaign_id)
    query = query.where(fact.enrolled_at >= filters.start_at, fact.enrolled_at < filters.end_before)
    if filters.campaign:
        query = query.where(Campaign.key == filters.campaign)
    return query.where(*snapshot_conditions(dataclasses.replace(filters, campaign=None), fact))


def _funnel_report(session: Session, filters: Filters, per_enrollment: Subquery) -> ReportResult:
    e = per_enrollment.c
    messaged = ~e.held_out
    measures: list[ColumnElement[Any]] = [
        func.count().label("enrolled"),
        func.count().filter(e.held_out).label("held_out"),
        func.count().filter(e.sent).label("sent"),
        func.count().filter(e.delivered).label("delivered"),
        func.count().filter(e.opened).label("opened"),
        func.count().filter(e.clicked).label("clicked"),
        func.count().filter(and_(messaged, e.milestone)).label("milestone"),
        func.coalesce(func.sum(e.suppressed), 0).label("suppressed"),
        func.coalesce(func.sum(e.capped), 0).label("capped"),
    ]
    query = select(e.grp, *measures).group_by(func.rollup(e.grp))
    rows: list[dict[str, Any]] = []
    total: dict[str, Any] = {"grp": "all"}
    for row in session.execute(query).mappings():
        record = _funnel_row(dict(row))
        if row["grp"] is None:
            total = record
        else:
            rows.append(record)
    total["group"] = "all"
    if "enrolled" not in total:
        total = _funnel_row({"grp": "all"})
    rows.sort(key=lambda r: r["group"])
    steps = ("enrolled", "sent", "delivered", "opened", "clicked", "milestone")
    return ReportResult(
        name="campaign-funnel",
        title="Campaign funnel",
        description=(
            "Enrolments begun between the dates: how many were sent a message, had one delivered, "
            "opened and clicked, and went on to achieve a milestone; messages skipped by suppression "
            "and frequency caps."
        ),
        filters=filters,
        columns=[
            Column("group", "Campaign" if not filters.group_by else filters.group_by.capitalize(), "text"),
            Column("enrolled", "Enrolled", "int"),
            Column("held_out", "Held out", "int"),
            Column("sent", "Sent", "int"),
            Column("delivered", "Delivered", "int"),
            Column("opened", "Opened", "int"),
            Column("clicked", "Clicked", "int"),
            Column("milestone", "Milestone achieved", "int"),
            Column("click_rate", "Clicked / delivered", "pct"),
            Column("milestone_rate", "Milestone / messaged", "pct"),
            Column("suppressed", "Skipped: suppression", "int"),
            Column("capped", "Skipped: frequency cap", "int"),
        ],
        rows=[*rows, total],
        charts=[
            Chart(
                "funnel",
                "Campaign funnel",
                ["Enrolled", "Sent", "Delivered", "Opened", "Clicked", "Milestone achieved"],
                [Series("enrolments", [float(total[k]) for k in steps])],
                unit="enrolments",
            ),
            Chart(
                "bar",
                "Messages skipped",
                ["Suppression", "Frequency cap"],
                [Series("messages", [float(total["suppressed"]), float(total["capped"])])],
                unit="messages",
            ),
        ],
        headline={k: total[k] for k in (*steps, "suppressed", "capped", "click_rate", "milestone_rate")},
        notes=[
            "Counts are enrolments (an account in a campaign) begun between the dates, except the two "
            "skip columns, which count messages.",
            "Milestone achieved: a milestone of the account's plan achieved after it enrolled, up to the "
            "end date, held-out enrolments excluded.",
        ],
    )


_FUNNEL_KEYS = (
    "enrolled",
    "held_out",
    "sent",
    "delivered",
    "opened",
    "clicked",
    "milestone",
    "suppressed",
    "capped",
)


def _funnel_row(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "all" if r.get("grp") is None else str(r["grp"])}
    for key in _FUNNEL_KEYS:
        out[key] = int(r.get(key) or 0)
    out["click_rate"] = share(out["clicked"], out["delivered"])
    out["milestone_rate"] = share(out["milestone"], out["enrolled"] - out["held_out"])
    return out


def holdout_lift(session: Session, filters: Filters) -> ReportResult:
    """Holdout lift from the raw enrolments, milestones and key results."""
    group = _group(filters) if filters.group_by != "channel" else Campaign.key.expression
    # One row per enrolment with its two outcomes, each looked up once (index probes), then counted.
    per_enrollment_query = (
        select(
            group.label("grp"),
            held_out().label("held"),
            milestone_after_enrolling(filters.end_before).label("milestone"),
            kr_attained().label("kr"),
        )
        .select_from(Enrollment)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
    )
    return _lift_report(session, filters, _scoped(per_enrollment_query, filters).subquery())


def holdout_lift_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """Holdout lift from report_enrollment_facts."""
    fact = EnrollmentFact
    per_enrollment = _facts_scoped(
        select(
            _facts_group(filters).label("grp"),
            fact.held_out.label("held"),
            _facts_milestone(filters).label("milestone"),
            fact.kr_attained.label("kr"),
        ),
        filters,
    ).subquery()
    return _lift_report(session, filters, per_enrollment)


NO_HOLDOUT = (
    "Nothing to compare: no campaign holds any accounts out (every campaign's Holdout is 0 %, and no "
    "account is in the global holdout group). Set a campaign's Holdout share in its builder "
    "(Campaigns → the campaign → Edit → Delivery → Holdout) and publish; its new enrolments are "
    "then split between messaged and held out."
)


def campaigns_holding_out(session: Session, campaign_key: str | None = None) -> list[str]:
    """The campaigns (all, or `campaign_key`) whose current version holds a share of accounts out."""
    query = select(Campaign.key, CampaignVersion.settings).join(
        CampaignVersion,
        and_(CampaignVersion.campaign_id == Campaign.id, CampaignVersion.version == Campaign.version),
    )
    if campaign_key:
        query = query.where(Campaign.key == campaign_key)
    return sorted(
        key for key, found in session.execute(query) if int((found or {}).get("holdout_percent") or 0)
    )


def holds_anyone_out(session: Session, campaign_key: str | None = None) -> bool:
    """Whether the holdout-lift report can ever have a held-out side: a campaign in scope holds a
    share out, or some account is in the global holdout group (held out of every campaign)."""
    return bool(campaigns_holding_out(session, campaign_key)) or bool(
        session.scalar(select(exists().where(Account.holdout_group)))
    )


def _lift_report(session: Session, filters: Filters, per_enrollment: Subquery) -> ReportResult:
    e = per_enrollment.c
    measures: list[ColumnElement[Any]] = [
        func.count().filter(~e.held).label("messaged"),
        func.count().filter(e.held).label("held"),
        func.count().filter(and_(~e.held, e.milestone)).label("messaged_milestone"),
        func.count().filter(and_(e.held, e.milestone)).label("held_milestone"),
        func.count().filter(and_(~e.held, e.kr)).label("messaged_kr"),
        func.count().filter(and_(e.held, e.kr)).label("held_kr"),
    ]
    query = select(e.grp, *measures).group_by(func.rollup(e.grp))
    rows: list[dict[str, Any]] = []
    total = _lift_row({"grp": None})
    for row in session.execute(query).mappings():
        record = _lift_row(dict(row))
        if row["grp"] is None:
            total = record
        else:
            rows.append(record)
    rows.sort(key=lambda r: r["group"])
    table = [*rows, total]
    labels = [r["group"] for r in table]
    return ReportResult(
        name="holdout-lift",
        title="Holdout lift",
        description=(
            "Milestone and key-result attainment of messaged against held-out enrolments, with the "
            "difference and its 95% confidence interval (Newcombe's hybrid score method)."
        ),
        filters=filters,
        columns=[
            Column(
                "group",
                "Campaign" if filters.group_by in (None, "channel") else str(filters.group_by).capitalize(),
                "text",
            ),
            Column("messaged", "Messaged", "int"),
            Column("held", "Held out", "int"),
            Column("messaged_milestone_rate", "Milestone rate, messaged", "pct"),
            Column("held_milestone_rate", "Milestone rate, held out", "pct"),
            Column("milestone_lift", "Milestone lift", "pct"),
            Column("milestone_low", "Lift 95% low", "pct"),
            Column("milestone_high", "Lift 95% high", "pct"),
            Column("messaged_kr_rate", "KR attained, messaged", "pct"),
            Column("held_kr_rate", "KR attained, held out", "pct"),
            Column("kr_lift", "KR lift", "pct"),
            Column("kr_low", "KR lift 95% low", "pct"),
            Column("kr_high", "KR lift 95% high", "pct"),
            Column("verdict", "Verdict", "text"),
        ],
        rows=table,
        charts=[
            Chart(
                "interval",
                "Milestone lift (messaged minus held out, 95% CI)",
                labels,
                [
                    Series(
                        "lift",
                        [r["milestone_lift"] for r in table],
                        low=[r["milestone_low"] for r in table],
                        high=[r["milestone_high"] for r in table],
                    )
                ],
                unit="%",
            ),
            Chart(
                "interval",
                "Key-result lift (messaged minus held out, 95% CI)",
                labels,
                [
                    Series(
                        "lift",
                        [r["kr_lift"] for r in table],
                        low=[r["kr_low"] for r in table],
                        high=[r["kr_high"] for r in table],
                    )
                ],
                unit="%",
            ),
        ],
        headline={
            k: total[k]
            for k in (
                "messaged",
                "held",
                "milestone_lift",
                "milestone_low",
                "milestone_high",
                "kr_lift",
                "kr_low",
                "kr_high",
            )
        },
        notes=[
            # No one held out in scope: the reason is the campaigns' settings, not the filters.
            NO_HOLDOUT
            if not total["held"] and not holds_anyone_out(session, filters.campaign)
            else total["verdict"],
            "Held out: enrolments in the campaign's holdout share or accounts in the global holdout group; "
            "all other enrolments count as messaged (intention to treat).",
            "Milestone attainment: a milestone achieved after enrolling, up to the end date. KR attainment: "
            "a key result of the account's plan at or past its target now.",
        ],
    )


def _lift_row(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "all" if r.get("grp") is None else str(r["grp"])}
    messaged, held = int(r.get("messaged") or 0), int(r.get("held") or 0)
    out["messaged"], out["held"] = messaged, held
    verdicts = []
    for metric, label in (("milestone", "milestone attainment"), ("kr", "key-result attainment")):
        m, h = int(r.get(f"messaged_{metric}") or 0), int(r.get(f"held_{metric}") or 0)
        out[f"messaged_{metric}_rate"] = share(m, messaged)
        out[f"held_{metric}_rate"] = share(h, held)
        diff = newcombe_difference(m, messaged, h, held)
        out[f"{metric}_lift"], out[f"{metric}_low"], out[f"{metric}_high"] = (
            diff if diff else (None, None, None)
        )
        if metric == "milestone":
            verdicts.append(lift_verdict(label, diff, messaged, held))
    out["verdict"] = verdicts[0]
    return out


def connect() -> None:
    """Called from campaigns.wiring.connect()."""
    register_campaign_options(campaign_keys, enrolled_accounts)
    register_enrollment_summary()
    register_email_reach(survey_emails_sent, survey_emails_sent_from_summaries)
    register_report(
        "campaign-funnel",
        "Campaign funnel",
        "Enrolled, sent, delivered, opened, clicked, milestone achieved; suppression and cap skips",
        campaign_funnel,
        group_by=("segment", "stage", "channel"),
        build_from_summaries=campaign_funnel_from_summaries,
    )
    register_report(
        "holdout-lift",
        "Holdout lift",
        "Milestone and KR attainment of messaged against held-out accounts, with a 95% interval",
        holdout_lift,
        build_from_summaries=holdout_lift_from_summaries,
    )
