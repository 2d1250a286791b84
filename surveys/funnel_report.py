"""The survey funnel report (reached → started → completed by channel), and the per-reach summary rows.

One `report_reach_facts` row per survey reach (channel, first shown, the account's segment / stage /
traits now) lets the funnel filter and group by account without joining the accounts table; the
responses come from surveys/report_facts.py and the survey emails from campaigns/report_facts.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Index, Integer, String, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.reports import Chart, Column, Filters, ReportResult, Series, register_report
from engine.reports.scope import (
    group_column,
    reads_accounts,
    scope_accounts,
    snapshot_conditions,
    snapshot_group,
)
from engine.reports.stats import share
from engine.reports.summaries import StaleKeys, any_of, register_summary
from surveys.models import Response, ResponseStatus
from surveys.report_facts import ResponseFact
from surveys.reports import CHANNEL_LABELS, REACH_CHANNELS, SurveyReach


class ReachFact(Base):
    """A survey reach with its account's grouping keys (the survey funnel's first step)."""

    __tablename__ = "report_reach_facts"
    __table_args__ = (
        Index("ix_report_reach_facts_first_at", "first_at"),
        Index("ix_report_reach_facts_account_id", "account_id"),
    )

    reach_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    first_at: Mapped[dt.datetime]
    segment: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    traits: Mapped[dict[str, Any]]


# {reaches} is "TRUE" for a rebuild, "r.id = ANY(:ids)" for a refresh.
REACH_FACTS_SQL = """
INSERT INTO report_reach_facts (reach_id, account_id, channel, first_at, segment, stage, traits)
SELECT r.id, r.account_id, r.channel, r.first_at, a.segment, a.lifecycle_stage, a.traits
FROM survey_reaches r
JOIN accounts a ON a.id = r.account_id
WHERE {reaches}
"""


def refresh_reach_facts(session: Session, keys: StaleKeys) -> int:
    """Rewrite the facts of stale reaches and of every reach of a stale account."""
    wanted = set(keys.ids("reach"))
    if keys.accounts:
        accounts = sorted(keys.accounts)
        wanted.update(session.scalars(select(SurveyReach.id).where(any_of(SurveyReach.account_id, accounts))))
        wanted.update(
            session.scalars(select(ReachFact.reach_id).where(any_of(ReachFact.account_id, accounts)))
        )
    if not wanted:
        return 0
    ids = sorted(wanted)
    session.execute(text("DELETE FROM report_reach_facts WHERE reach_id = ANY(:ids)"), {"ids": ids})
    session.execute(text(REACH_FACTS_SQL.format(reaches="r.id = ANY(:ids)")), {"ids": ids})
    return len(ids)


def rebuild_reach_facts(session: Session) -> int:
    session.execute(text("DELETE FROM report_reach_facts"))
    rows = session.execute(text(REACH_FACTS_SQL.format(reaches="TRUE")))
    return int(rows.rowcount or 0)  # type: ignore[attr-defined]


# --- the email channel's reach comes from the campaigns ledger ------------------------------------

EmailReach = Callable[[Session, Filters], dict[str, int]]
_email_reach: EmailReach | None = None
_email_reach_from_summaries: EmailReach | None = None


def register_email_reach(query: EmailReach, from_summaries: EmailReach | None = None) -> None:
    """Campaigns send the survey emails; they count them (grouped like the report) for the funnel,
    from the raw rows and from their summary rows."""
    global _email_reach, _email_reach_from_summaries
    _email_reach, _email_reach_from_summaries = query, from_summaries or query


# --- the report ---------------------------------------------------------------------------------


def _funnel_filters(filters: Filters) -> Filters:
    return filters if filters.group_by else dataclasses.replace(filters, group_by="channel")


def survey_funnel(session: Session, filters: Filters) -> ReportResult:
    """The funnel from the raw reaches, survey emails and responses."""
    grouped = _funnel_filters(filters)
    reached: dict[str, int] = {}
    group = group_column(grouped, channel=SurveyReach.channel)
    query = (
        select(group.label("grp"), func.count())
        .select_from(SurveyReach)
        .where(SurveyReach.first_at >= filters.start_at, SurveyReach.first_at < filters.end_before)
        .group_by(group)
    )
    query = scope_accounts(query, grouped, SurveyReach.account_id)
    for grp, n in session.execute(query):
        reached[str(grp)] = reached.get(str(grp), 0) + int(n)
    if _email_reach is not None:
        for grp, n in _email_reach(session, grouped).items():
            reached[grp] = reached.get(grp, 0) + n
    group = group_column(grouped, channel=Response.channel)
    completed = Response.status == ResponseStatus.COMPLETED
    query = (
        select(group.label("grp"), func.count(), func.count().filter(completed))
        .select_from(Response)
        .where(Response.created_at >= filters.start_at, Response.created_at < filters.end_before)
        .group_by(group)
    )
    query = scope_accounts(query, grouped, Response.account_id)
    counts: dict[str, tuple[int, int]] = {str(g): (int(s), int(c)) for g, s, c in session.execute(query)}
    return _funnel_report(filters, grouped, reached, counts)


def survey_funnel_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """The funnel from report_reach_facts, report_response_facts and report_enrollment_facts when a
    filter or grouping reads the accounts; otherwise the raw rows need no join and are as fast."""
    grouped = _funnel_filters(filters)
    if not reads_accounts(grouped):
        return survey_funnel(session, filters)
    reach, response = ReachFact, ResponseFact
    group = snapshot_group(grouped, reach) if grouped.group_by != "channel" else reach.channel
    query = (
        select(group.label("grp"), func.count())
        .where(reach.first_at >= filters.start_at, reach.first_at < filters.end_before)
        .where(*snapshot_conditions(grouped, reach))
        .group_by(group)
    )
    reached: dict[str, int] = {}
    for grp, n in session.execute(query):
        reached[str(grp)] = reached.get(str(grp), 0) + int(n)
    if _email_reach_from_summaries is not None:
        for grp, n in _email_reach_from_summaries(session, grouped).items():
            reached[grp] = reached.get(grp, 0) + n
    group = snapshot_group(grouped, response) if grouped.group_by != "channel" else response.channel
    query = (
        select(group.label("grp"), func.count(), func.count().filter(response.completed))
        .where(response.created_at >= filters.start_at, response.created_at < filters.end_before)
        .where(*snapshot_conditions(grouped, response))
        .group_by(group)
    )
    counts = {str(g): (int(s), int(c)) for g, s, c in session.execute(query)}
    return _funnel_report(filters, grouped, reached, counts)


def _funnel_report(
    filters: Filters, grouped: Filters, reached: dict[str, int], counts: dict[str, tuple[int, int]]
) -> ReportResult:
    groups = sorted(set(reached) | set(counts), key=_channel_order if grouped.group_by == "channel" else str)
    rows = [_funnel_row(g, reached.get(g, 0), *counts.get(g, (0, 0)), grouped) for g in groups]
    total = _funnel_row(
        "all",
        sum(reached.values()),
        sum(s for s, _ in counts.values()),
        sum(c for _, c in counts.values()),
        grouped,
    )
    total["group"] = "All channels" if grouped.group_by == "channel" else "all"
    return ReportResult(
        name="survey-funnel",
        title="Survey funnel",
        description=(
            "Contacts reached by a survey (widget shown, survey email sent, hosted page opened), "
            "responses started and completed, by channel."
        ),
        filters=filters,
        columns=[
            Column(
                "group",
                "Channel" if grouped.group_by == "channel" else str(grouped.group_by).capitalize(),
                "text",
            ),
            Column("reached", "Reached", "int"),
            Column("started", "Started", "int"),
            Column("completed", "Completed", "int"),
            Column("start_rate", "Started / reached", "pct"),
            Column("completion_rate", "Completed / started", "pct"),
        ],
        rows=[*rows, total],
        charts=[
            Chart(
                "funnel",
                "Survey funnel",
                ["Reached", "Started", "Completed"],
                [
                    Series(
                        "contacts",
                        [float(total["reached"]), float(total["started"]), float(total["completed"])],
                    )
                ],
            ),
            Chart(
                "bar",
                "Completion rate",
                [r["group"] for r in rows],
                [Series("completed / started", [r["completion_rate"] for r in rows])],
                unit="%",
            ),
        ],
        headline={
            "reached": total["reached"],
            "started": total["started"],
            "completed": total["completed"],
            "completion_rate": total["completion_rate"],
        },
        notes=[
            "Reached counts each contact once per survey and channel, dated by the first time.",
            "Started and completed count responses begun between the dates; API responses have no reach.",
        ],
    )


def _channel_order(value: str) -> tuple[int, str]:
    order = [*REACH_CHANNELS, "api"]
    return (order.index(value) if value in order else len(order), value)


def _funnel_row(group: str, reached: int, started: int, completed: int, filters: Filters) -> dict[str, Any]:
    label = CHANNEL_LABELS.get(group, group) if filters.group_by == "channel" else group
    return {
        "group": label,
        "reached": reached,
        "started": started,
        "completed": completed,
        "start_rate": share(started, reached),
        "completion_rate": share(completed, started),
    }


def register_survey_funnel() -> None:
    register_summary(
        "reaches", refresh_reach_facts, rebuild_reach_facts, watches=("accounts", "survey_reaches")
    )
    register_report(
        "survey-funnel",
        "Survey funnel",
        "Reached, started and completed by channel (in-app, email, hosted)",
        survey_funnel,
        group_by=("channel", "segment", "stage"),
        build_from_summaries=survey_funnel_from_summaries,
    )
