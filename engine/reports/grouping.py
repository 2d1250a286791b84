"""Grouped aggregates with a total row: ROLLUP over the grouping column, 'all' for the total."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, func, literal, select
from sqlalchemy.orm import Session

from engine.reports.base import Filters
from engine.reports.scope import ALL

TOTAL_LABEL = ALL


def grouped_select(
    filters: Filters, group: ColumnElement[Any], measures: Sequence[ColumnElement[Any]]
) -> Select[Any]:
    """SELECT group, measures…; grouped by ROLLUP(group) when the report is grouped."""
    if filters.group_by:
        return select_rollup(group, measures)
    return _select(literal(ALL).label("grp"), measures)


def select_rollup(group: ColumnElement[Any], measures: Sequence[ColumnElement[Any]]) -> Select[Any]:
    return _select(group.label("grp"), measures).group_by(func.rollup(group))


def _select(label: ColumnElement[Any], measures: Sequence[ColumnElement[Any]]) -> Select[Any]:
    return select(label, *measures)


def split_total(
    session: Session, query: Select[Any], filters: Filters
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run a grouped_select: (rows per group sorted by label, the total row)."""
    rows: list[dict[str, Any]] = []
    total: dict[str, Any] | None = None
    for row in session.execute(query).mappings():
        record = dict(row)
        if filters.group_by and record["grp"] is None and total is None:
            total = {**record, "grp": TOTAL_LABEL}
            continue
        record["grp"] = TOTAL_LABEL if record["grp"] is None else str(record["grp"])
        rows.append(record)
    rows.sort(key=lambda r: r["grp"])
    if total is None:
        total = rows[0] if rows and not filters.group_by else {"grp": TOTAL_LABEL}
    return rows, total
