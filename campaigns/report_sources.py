"""What the campaigns ledger tells the other reports: which campaigns exist, which accounts one
enrolled (the `campaign` filter), and how many survey emails were sent (the survey funnel's email
reach), from the raw rows and from the summary rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, Message, Step
from campaigns.report_facts import EnrollmentFact
from engine.reports import Filters
from engine.reports.scope import (
    group_column,
    needs_account_join,
    reads_accounts,
    scope_accounts,
    snapshot_conditions,
    snapshot_group,
)


def campaign_keys(session: Session) -> list[str]:
    return list(session.scalars(select(Campaign.key).order_by(Campaign.key)))


def enrolled_accounts(campaign_key: str) -> Select[Any]:
    """Ids of the accounts enrolled in the campaign (the reports' `campaign` filter)."""
    return (
        select(Enrollment.account_id)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Campaign.key == campaign_key)
    )


def survey_emails_sent(session: Session, filters: Filters) -> dict[str, int]:
    """Survey emails sent between the dates (a step with a `survey`), grouped like the funnel."""
    group = group_column(filters, channel=literal("email"))
    query = (
        select(group.label("grp"), func.count())
        .select_from(Message)
        .join(Step, Step.id == Message.step_id)
        .where(
            Message.channel == "email",
            Message.sent_at >= filters.start_at,
            Message.sent_at < filters.end_before,
            Step.config["survey"].as_string().is_not(None),
        )
    )
    if needs_account_join(filters):
        query = scope_accounts(
            query.join(Enrollment, Enrollment.id == Message.enrollment_id), filters, Enrollment.account_id
        )
    if filters.group_by and filters.group_by != "channel":
        query = query.group_by(group)
    return {str(g): int(n) for g, n in session.execute(query) if n}


def survey_emails_sent_from_summaries(session: Session, filters: Filters) -> dict[str, int]:
    """survey_emails_sent with the account's keys read from report_enrollment_facts (no accounts join)."""
    if not reads_accounts(filters):
        return survey_emails_sent(session, filters)
    fact = EnrollmentFact
    grouped = bool(filters.group_by and filters.group_by != "channel")
    group = snapshot_group(filters, fact) if grouped else literal("email")
    query = (
        select(group.label("grp"), func.count())
        .select_from(Message)
        .join(Step, Step.id == Message.step_id)
        .join(fact, fact.enrollment_id == Message.enrollment_id)
        .where(
            Message.channel == "email",
            Message.sent_at >= filters.start_at,
            Message.sent_at < filters.end_before,
            Step.config["survey"].as_string().is_not(None),
            *snapshot_conditions(filters, fact),
        )
    )
    if grouped:
        query = query.group_by(group)
    return {str(g): int(n) for g, n in session.execute(query) if n}
