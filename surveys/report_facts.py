"""Per-response summary rows for the outcomes report and the survey funnel, and the outcomes queries.

One `report_response_facts` row per response of an account: the account and its segment / stage /
traits as they are now, when the response began, on which channel, whether and when it was
completed, and the outcomes and objectives it picked (from survey_choices, with their date). The rows are
rewritten by engine.reports.summaries from stale responses and accounts; the outcomes report then
reads one narrow table instead of joining responses, choices and a million accounts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    Float,
    Index,
    Integer,
    String,
    and_,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    true,
    union_all,
    values,
)
from sqlalchemy import column as sql_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.reports.base import Filters
from engine.reports.plan_facts import KrFact
from engine.reports.scope import snapshot_conditions
from engine.reports.summaries import StaleKeys, any_of, register_summary
from surveys.models import Response

# Arrays on PostgreSQL (unnest); the demo's SQLite never fills the table but still creates it.
PICKS = JSON().with_variant(ARRAY(String(80)), "postgresql")


class ResponseFact(Base):
    """A response of an account with its account's grouping keys and its picks."""

    __tablename__ = "report_response_facts"
    __table_args__ = (
        Index("ix_report_response_facts_created_at", "created_at"),
        Index("ix_report_response_facts_completed_at", "completed_at"),
        Index("ix_report_response_facts_chosen_at", "chosen_at"),
        Index("ix_report_response_facts_account_id", "account_id"),
    )

    response_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]  # the survey funnel's "started"
    channel: Mapped[str] = mapped_column(String(16))
    completed: Mapped[bool] = mapped_column(Boolean)
    completed_at: Mapped[dt.datetime | None]  # NULL unless the response is completed
    chosen_at: Mapped[dt.datetime | None]  # the picks' date (survey_choices.chosen_at)
    segment: Mapped[str] = mapped_column(String(80))
    stage: Mapped[str] = mapped_column(String(40))
    traits: Mapped[dict[str, Any]]
    # The account's only completed-or-picked response: its outcomes need no DISTINCT across responses.
    sole: Mapped[bool] = mapped_column(Boolean)
    outcomes: Mapped[list[str]] = mapped_column(PICKS)
    objectives: Mapped[list[str]] = mapped_column(PICKS)


# {responses} / {choices} are "TRUE" for a rebuild, "<column> = ANY(:ids)" for a refresh, which
# always covers every response of an account (`sole` counts them).
RESPONSE_FACTS_SQL = """
INSERT INTO report_response_facts (response_id, account_id, created_at, channel, completed,
    completed_at, chosen_at, segment, stage, traits, sole, outcomes, objectives)
SELECT r.id, r.account_id, r.created_at, r.channel, r.status = 'completed',
       CASE WHEN r.status = 'completed' THEN r.completed_at END, c.chosen_at,
       a.segment, a.lifecycle_stage, a.traits,
       count(*) FILTER (WHERE r.status = 'completed' OR c.response_id IS NOT NULL)
           OVER (PARTITION BY r.account_id) = 1,
       coalesce(c.outcomes, '{{}}'), coalesce(c.objectives, '{{}}')
FROM responses r
JOIN accounts a ON a.id = r.account_id
LEFT JOIN (
    SELECT response_id, min(chosen_at) AS chosen_at,
           array_agg(item_key ORDER BY item_key) FILTER (WHERE kind = 'outcome') AS outcomes,
           array_agg(item_key ORDER BY item_key) FILTER (WHERE kind = 'objective') AS objectives
    FROM survey_choices WHERE {choices} GROUP BY response_id
) c ON c.response_id = r.id
WHERE {responses}
"""


def refresh_response_facts(session: Session, keys: StaleKeys) -> int:
    """Rewrite the facts of every response of a stale account or of the account of a stale response."""
    stale = keys.ids("response")
    accounts = set(keys.accounts)
    if stale:
        accounts.update(session.scalars(select(Response.account_id).where(any_of(Response.id, stale))))
        accounts.update(
            session.scalars(select(ResponseFact.account_id).where(any_of(ResponseFact.response_id, stale)))
        )
        accounts.discard(None)
    wanted = set(stale)
    if accounts:
        accounts_list = sorted(accounts)
        wanted.update(session.scalars(select(Response.id).where(any_of(Response.account_id, accounts_list))))
        wanted.update(
            session.scalars(
                select(ResponseFact.response_id).where(any_of(ResponseFact.account_id, accounts_list))
            )
        )
    if not wanted:
        return 0
    ids = sorted(wanted)
    session.execute(delete(ResponseFact).where(any_of(ResponseFact.response_id, ids)))
    sql = RESPONSE_FACTS_SQL.format(responses="r.id = ANY(:ids)", choices="response_id = ANY(:ids)")
    session.execute(text(sql), {"ids": ids})
    return len(ids)


def rebuild_response_facts(session: Session) -> int:
    session.execute(text("DELETE FROM report_response_facts"))
    sql = RESPONSE_FACTS_SQL.format(responses="TRUE", choices="TRUE")
    return int(session.execute(text(sql)).rowcount or 0)  # type: ignore[attr-defined]


def register_response_summary() -> None:
    register_summary(
        "responses",
        refresh_response_facts,
        rebuild_response_facts,
        watches=("accounts", "responses", "survey_choices"),
    )


# --- the outcomes report's three queries on the summary rows --------------------------------------


def _grouped(filters: Filters, group: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    return [group] if filters.group_by else []


def respondents_from_facts(session: Session, filters: Filters, group: ColumnElement[Any]) -> dict[str, int]:
    """Accounts that completed a response between the dates, per group."""
    fact = ResponseFact
    accounts = func.count().filter(fact.sole) + func.count(func.distinct(fact.account_id)).filter(~fact.sole)
    query = (
        select(group.label("grp"), accounts)
        .where(
            fact.completed_at >= filters.start_at,
            fact.completed_at < filters.end_before,
            *snapshot_conditions(filters, fact),
        )
        .group_by(*_grouped(filters, group))
    )
    return {str(g): int(n) for g, n in session.execute(query)}


def picks_from_facts(
    session: Session, filters: Filters, group: ColumnElement[Any]
) -> list[tuple[str, str, str, int]]:
    """(group, kind, key, accounts) for the outcomes and objectives picked between the dates.

    Accounts with one response (nearly all) are counted by identical pick lists first, a hash
    aggregate over a few distinct lists; only accounts with several responses need DISTINCT.
    """
    fact = ResponseFact
    where = (
        fact.chosen_at >= filters.start_at,
        fact.chosen_at < filters.end_before,
        *snapshot_conditions(filters, fact),
    )
    combos = (
        select(group.label("grp"), fact.outcomes, fact.objectives, func.count().label("n"))
        .where(fact.sole, *where)
        .group_by(group, fact.outcomes, fact.objectives)
        .cte("combos")
    )
    several = select(group.label("grp"), fact.account_id, fact.outcomes, fact.objectives).where(
        ~fact.sole, *where
    )
    several_cte = several.cte("several")
    parts = []
    for kind, column in (("outcome", "outcomes"), ("objective", "objectives")):
        parts.append(
            select(
                combos.c.grp,
                literal(kind).label("kind"),
                func.unnest(combos.c[column]).label("item_key"),
                combos.c.n,
            )
        )
        picked = select(
            several_cte.c.grp, func.unnest(several_cte.c[column]).label("item_key"), several_cte.c.account_id
        ).subquery()
        parts.append(
            select(
                picked.c.grp,
                literal(kind).label("kind"),
                picked.c.item_key,
                func.count(func.distinct(picked.c.account_id)).label("n"),
            ).group_by(picked.c.grp, picked.c.item_key)
        )
    counted = union_all(*parts).subquery("counted")
    query = select(counted.c.grp, counted.c.kind, counted.c.item_key, func.sum(counted.c.n)).group_by(
        counted.c.grp, counted.c.kind, counted.c.item_key
    )
    return [(str(g), str(kind), str(key), int(n)) for g, kind, key, n in session.execute(query)]


QUARTILES = (0.25, 0.5, 0.75)


def kr_quartiles_from_facts(
    session: Session, filters: Filters, group: ColumnElement[Any]
) -> list[tuple[str, str, int, list[float], list[float]]]:
    """(group, objective, KRs, baseline quartiles, target quartiles) of plans started between the dates.

    Exactly what `percentile_cont(ARRAY[.25, .5, .75]) WITHIN GROUP (ORDER BY value)` returns, without
    sorting a million values: count each distinct value (a parallel hash aggregate), rank the
    values by their running count, pick the two values around each percentile's position and
    interpolate as PostgreSQL does (orderedsetaggs.c), in the same double arithmetic.
    """
    fact = KrFact
    where = (
        fact.started_at >= filters.start_at,
        fact.started_at < filters.end_before,
        *snapshot_conditions(filters, fact),
    )
    parts = []
    for name, column in (("baseline", fact.baseline), ("target", fact.target)):
        value = cast(column, Float)  # percentile_cont orders double precision values
        parts.append(
            select(
                group.label("grp"),
                fact.objective_key.label("key"),
                literal(name).label("col"),
                value.label("v"),
                func.count().label("c"),
            )
            .where(*where)
            .group_by(*_grouped(filters, group), fact.objective_key, value)
        )
    hist = union_all(*parts).subquery("hist")
    partition = (hist.c.grp, hist.c.key, hist.c.col)
    ranked = select(
        hist,
        (func.sum(hist.c.c).over(partition_by=partition, order_by=hist.c.v) - hist.c.c).label("before"),
        func.sum(hist.c.c).over(partition_by=partition).label("total"),
    ).subquery("ranked")
    r = ranked.c
    p = values(sql_column("p", Float), name="quartiles").data([(q,) for q in QUARTILES])
    position = p.c.p * (r.total - 1)

    def value_at(index: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.min(r.v).filter(and_(r.before <= index, index < r.before + r.c))

    query = (
        select(
            r.grp, r.key, r.col, p.c.p, r.total, value_at(func.floor(position)), value_at(func.ceil(position))
        )
        .select_from(ranked.join(p, true()))
        .group_by(r.grp, r.key, r.col, p.c.p, r.total)
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for grp, key, col, q, total, low, high in session.execute(query):
        entry = found.setdefault((str(grp), str(key)), {"krs": int(total), "baseline": {}, "target": {}})
        entry[col][float(q)] = _interpolate(float(q), int(total), float(low), float(high))
    return [
        (
            grp,
            key,
            entry["krs"],
            [entry["baseline"][q] for q in QUARTILES],
            [entry["target"][q] for q in QUARTILES],
        )
        for (grp, key), entry in found.items()
    ]


def _interpolate(percentile: float, rows: int, low: float, high: float) -> float:
    # orderedsetaggs.c: proportion = p*(n-1) - floor(p*(n-1)); float8_lerp(lo, hi, proportion).
    position = percentile * (rows - 1)
    proportion = position - math.floor(position)
    if proportion == 0:
        return low
    return low + proportion * (high - low)
