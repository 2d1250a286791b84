"""Survey reports: the outcomes chosen (the funnel is in surveys/funnel_report.py), and what they record.

Two report-only tables live here: `survey_reaches` (a contact was shown / sent / opened a survey)
and `survey_choices` (the outcomes and objectives each completed response picked), the latter a
summary kept by a `reports`-queue job after each completed response (docs/reports.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, String, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import db, signals
from engine.db import Base, utcnow
from engine.library import Objective, Outcome
from engine.plans.models import KeyResult, SuccessPlan
from engine.queue import enqueue_after_commit
from engine.reports import Chart, Column, Filters, ReportResult, Series, register_report
from engine.reports.plan_facts import KrFact
from engine.reports.scope import group_column, scope_accounts, snapshot_group
from engine.reports.stats import share
from surveys.facts import picks
from surveys.models import Channel, Response, ResponseStatus, SurveyVersion
from surveys.report_facts import (
    ResponseFact,
    kr_quartiles_from_facts,
    picks_from_facts,
    register_response_summary,
    respondents_from_facts,
)

REACH_CHANNELS = (Channel.IN_APP.value, Channel.EMAIL.value, Channel.HOSTED.value)
CHANNEL_LABELS = {"in_app": "In-app", "email": "Email", "hosted": "Hosted page", "api": "API"}


class SurveyReach(Base):
    """A contact was reached by a survey on a channel (widget shown, hosted page opened)."""

    __tablename__ = "survey_reaches"
    __table_args__ = (
        Index("uq_survey_reaches_contact", "survey_id", "contact_id", "channel", unique=True),
        Index("ix_survey_reaches_first_at", "first_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    first_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    times: Mapped[int] = mapped_column(default=1)


class SurveyChoice(Base):
    """One outcome or objective a completed response picked (summary for the outcomes report)."""

    __tablename__ = "survey_choices"
    __table_args__ = (Index("ix_survey_choices_chosen_at", "chosen_at", "kind"),)

    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "outcome" | "objective"
    item_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    chosen_at: Mapped[dt.datetime]


# Indexes the survey reports need on the responses table (created by migration 0008).
REPORT_INDEXES = (
    Index("ix_responses_created_at", Response.created_at),
    Index("ix_responses_completed_at", Response.completed_at, postgresql_where=text("status = 'completed'")),
)


# --- recording ------------------------------------------------------------------------------------


def record_reach(
    session: Session, survey_id: int, account_id: int, contact_id: int, channel: str, *, now: dt.datetime
) -> None:
    """Count one showing of a survey to a contact; the first one dates the reach (upsert)."""
    dialect = session.get_bind().dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(SurveyReach).values(
        survey_id=survey_id,
        account_id=account_id,
        contact_id=contact_id,
        channel=channel,
        first_at=now,
        last_at=now,
        times=1,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SurveyReach.survey_id, SurveyReach.contact_id, SurveyReach.channel],
            set_={"last_at": now, "times": SurveyReach.times + 1},
        )
    )


def refresh_choices(session: Session, response_id: int) -> int:
    """Rewrite the choices of one response from its answers (safe to run twice)."""
    return refresh_choices_of(session, [response_id])


def refresh_choices_of(session: Session, response_ids: list[int]) -> int:
    """Rewrite the choices of these responses from their answers: three statements however many."""
    session.execute(delete(SurveyChoice).where(SurveyChoice.response_id.in_(response_ids)))
    found = session.execute(
        select(
            Response.id,
            Response.account_id,
            Response.answers,
            Response.completed_at,
            Response.created_at,
            SurveyVersion.definition,
        )
        .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
        .where(
            Response.id.in_(response_ids),
            Response.account_id.is_not(None),
            Response.status == ResponseStatus.COMPLETED,
        )
    )
    rows = [
        {
            "response_id": response_id,
            "kind": kind,
            "item_key": key[:80],
            "account_id": account_id,
            "chosen_at": completed_at or created_at,
        }
        for response_id, account_id, answers, completed_at, created_at, definition in found
        for kind, question_kind in (("outcome", "outcome_pick"), ("objective", "objective_pick"))
        for key in dict.fromkeys(
            picks(list((definition or {}).get("questions", [])), dict(answers or {}), question_kind)
        )
    ]
    if rows:
        session.execute(insert(SurveyChoice), rows)
    return len(rows)


def refresh_choices_job(response_id: int) -> int:
    """RQ entry point (queue `reports`), enqueued after the response's transaction commits."""
    with db.current().transaction() as session:
        return refresh_choices(session, int(response_id))


REBUILD_CHOICES_SQL = """
INSERT INTO survey_choices (response_id, kind, item_key, account_id, chosen_at)
SELECT DISTINCT r.id, CASE q.value->>'kind' WHEN 'outcome_pick' THEN 'outcome' ELSE 'objective' END,
       left(pick.value, 80), r.account_id, coalesce(r.completed_at, r.created_at)
FROM responses r
JOIN survey_versions v ON v.id = r.survey_version_id
CROSS JOIN LATERAL jsonb_array_elements(v.definition->'questions') AS q(value)
CROSS JOIN LATERAL jsonb_array_elements_text(
    CASE jsonb_typeof(r.answers->(q.value->>'key')) WHEN 'array' THEN r.answers->(q.value->>'key')
    ELSE '[]'::jsonb END) AS pick(value)
WHERE r.status = 'completed' AND r.account_id IS NOT NULL
  AND q.value->>'kind' IN ('outcome_pick', 'objective_pick')
ON CONFLICT DO NOTHING
"""


def rebuild_choices(session: Session) -> int:
    """Rebuild the whole summary in one statement (PostgreSQL): after a restore or a bulk load."""
    session.execute(delete(SurveyChoice))
    return int(session.execute(text(REBUILD_CHOICES_SQL)).rowcount or 0)  # type: ignore[attr-defined]


def _on_response_completed(
    _sender: object, *, session: Session, response_id: int, deferred: bool = False, **_: Any
) -> None:
    if not deferred:  # the rules job (surveys.rules_queue) refreshes its whole batch's choices
        enqueue_after_commit(session, "reports", refresh_choices_job, response_id)


# --- reports --------------------------------------------------------------------------------------


def outcomes(session: Session, filters: Filters) -> ReportResult:
    """Share of accounts choosing each outcome and objective; typical KR baselines and targets."""
    group = group_column(filters)
    in_range = (SurveyChoice.chosen_at >= filters.start_at, SurveyChoice.chosen_at < filters.end_before)
    base = scope_accounts(
        select(group.label("grp"), func.count(func.distinct(Response.account_id)))
        .select_from(Response)
        .where(
            Response.status == ResponseStatus.COMPLETED,
            Response.completed_at >= filters.start_at,
            Response.completed_at < filters.end_before,
        ),
        filters,
        Response.account_id,
    )
    if filters.group_by:
        base = base.group_by(group)
    respondents = {str(g): int(n) for g, n in session.execute(base)}
    picks_query = scope_accounts(
        select(
            group.label("grp"),
            SurveyChoice.kind,
            SurveyChoice.item_key,
            func.count(func.distinct(SurveyChoice.account_id)),
        )
        .select_from(SurveyChoice)
        .where(*in_range)
        .group_by(*([group] if filters.group_by else []), SurveyChoice.kind, SurveyChoice.item_key),
        filters,
        SurveyChoice.account_id,
    )
    chosen = [(str(g), kind, key, int(n)) for g, kind, key, n in session.execute(picks_query)]
    return _outcomes_report(session, filters, respondents, chosen, _kr_stats(session, filters, group))


def outcomes_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """The outcomes report from report_response_facts and report_kr_facts (no joins)."""
    respondents = respondents_from_facts(session, filters, snapshot_group(filters, ResponseFact))
    chosen = picks_from_facts(session, filters, snapshot_group(filters, ResponseFact))
    quartiles = kr_quartiles_from_facts(session, filters, snapshot_group(filters, KrFact))
    krs = _kr_stats_dict(quartiles)
    return _outcomes_report(session, filters, respondents, chosen, krs)


def _outcomes_report(
    session: Session,
    filters: Filters,
    respondents: dict[str, int],
    chosen: list[tuple[str, str, str, int]],
    krs: dict[tuple[str, str], dict[str, Any]],
) -> ReportResult:
    titles: dict[str, str] = {
        key: title for key, title in session.execute(select(Outcome.key, Outcome.title))
    }
    titles.update({key: title for key, title in session.execute(select(Objective.key, Objective.title))})
    rows: list[dict[str, Any]] = []
    for grp, kind, key, n in sorted(chosen, key=lambda c: (c[0], c[1] != "outcome", -c[3], c[2])):
        stats = krs.get((grp, key), {}) if kind == "objective" else {}
        rows.append(
            {
                "group": grp,
                "kind": kind,
                "key": key,
                "title": titles.get(key, key),
                "accounts": n,
                "share": share(n, respondents.get(grp, 0)),
                "krs": stats.get("krs"),
                **{k: stats.get(k) for k in _KR_STAT_KEYS},
            }
        )
    surveyed = sum(respondents.values())
    top = [r for r in rows if r["kind"] == "outcome"][:8]
    top_objectives = [r for r in rows if r["kind"] == "objective"][:8]
    charts = [
        Chart(
            "hbar",
            "Outcomes chosen (share of accounts)",
            [r["title"] for r in top],
            [Series("share", [r["share"] for r in top])],
            unit="%",
        ),
        Chart(
            "interval",
            "Objectives: typical target (median, p25 to p75)",
            [r["title"] for r in top_objectives],
            [
                Series(
                    "target",
                    [r["target_median"] for r in top_objectives],
                    low=[r["target_p25"] for r in top_objectives],
                    high=[r["target_p75"] for r in top_objectives],
                )
            ],
        ),
    ]
    outcome_rows = [r for r in rows if r["kind"] == "outcome"]
    return ReportResult(
        name="outcomes",
        title="Outcomes and objectives chosen",
        description=(
            "Share of the accounts that completed a survey in the date range choosing each outcome "
            "and objective, with the typical key-result baseline and target (median, p25, p75)."
        ),
        filters=filters,
        columns=[
            Column("group", "Group", "text"),
            Column("kind", "Kind", "text"),
            Column("title", "Outcome or objective", "text"),
            Column("accounts", "Accounts", "int"),
            Column("share", "Share of accounts", "pct"),
            Column("krs", "Key results", "int"),
            Column("baseline_p25", "Baseline p25", "number"),
            Column("baseline_median", "Baseline median", "number"),
            Column("baseline_p75", "Baseline p75", "number"),
            Column("target_p25", "Target p25", "number"),
            Column("target_median", "Target median", "number"),
            Column("target_p75", "Target p75", "number"),
        ],
        rows=rows,
        charts=charts,
        headline={
            "accounts_surveyed": surveyed,
            "outcomes_chosen": len({r["key"] for r in outcome_rows}),
            "top_outcome_share": outcome_rows[0]["share"] if outcome_rows else None,
        },
        notes=[
            "Share: accounts choosing the item / accounts that completed a survey between the dates.",
            "Key results: those of plans started between the dates, by objective.",
        ],
    )


_KR_STAT_KEYS = (
    "baseline_p25",
    "baseline_median",
    "baseline_p75",
    "target_p25",
    "target_median",
    "target_p75",
)


def _kr_stats(
    session: Session, filters: Filters, group: ColumnElement[Any]
) -> dict[tuple[str, str], dict[str, Any]]:
    pct = _quartiles
    query = (
        select(
            group.label("grp"),
            KeyResult.objective_key,
            func.count(),
            pct(KeyResult.baseline),
            pct(KeyResult.target),
        )
        .select_from(KeyResult)
        .join(SuccessPlan, SuccessPlan.id == KeyResult.plan_id)
        .where(SuccessPlan.started_at >= filters.start_at, SuccessPlan.started_at < filters.end_before)
        .group_by(*([group] if filters.group_by else []), KeyResult.objective_key)
    )
    return _kr_stats_rows(session, scope_accounts(query, filters, SuccessPlan.account_id))


def _quartiles(column: Any) -> ColumnElement[Any]:
    # One sort per column for all three quartiles (three percentile_cont calls sort three times).
    quartiles = postgresql.array([0.25, 0.5, 0.75])
    return func.percentile_cont(quartiles).within_group(column)


def _kr_stats_rows(session: Session, query: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return _kr_stats_dict(tuple(row) for row in session.execute(query))


def _kr_stats_dict(rows: Iterable[tuple[Any, ...]]) -> dict[tuple[str, str], dict[str, Any]]:
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for grp, key, n, baselines, targets in rows:
        values = [*(baselines or [None] * 3), *(targets or [None] * 3)]
        stats[(str(grp), key)] = {
            "krs": int(n),
            **{k: _round(v) for k, v in zip(_KR_STAT_KEYS, values, strict=True)},
        }
    return stats


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def connect() -> None:
    """Called from surveys.wiring.connect()."""
    signals.response_completed.connect(_on_response_completed)
    from surveys.funnel_report import register_survey_funnel

    register_survey_funnel()
    register_report(
        "outcomes",
        "Outcomes and objectives",
        "Share of accounts choosing each outcome and objective; typical KR baselines and targets",
        outcomes,
        build_from_summaries=outcomes_from_summaries,
    )
    register_response_summary()
