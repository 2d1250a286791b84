"""Event facts for rules and milestone criteria: grouped counts per account, or per batch of plans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    BindParameter,
    DateTime,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from engine.events.models import Event
from engine.plans.models import SuccessPlan

EventFacts = dict[str, dict[str, int]]
Tallies = dict[str, int]  # event name -> count


def event_counts(session: Session, account_id: int, since: dt.datetime) -> EventFacts:
    """Facts for milestone criteria: {"<event name>": {"count": n}} since `since`."""
    rows = session.execute(
        select(Event.name, func.count())
        .where(Event.account_id == account_id, Event.occurred_at >= since)
        .group_by(Event.name)
    )
    return {name: {"count": int(count)} for name, count in rows}


class PlanWindow(NamedTuple):
    """Whose events a plan counts, and since when."""

    plan_id: int
    account_id: int
    started_at: dt.datetime


def plan_event_tallies(
    session: Session, plans: Sequence[PlanWindow], names: Collection[str] | None = None
) -> dict[int, Tallies]:
    """Each plan's account's events since that plan started, counted by name in one query:
    {plan_id: {"<event name>": n}}, {} for a plan without events. `names`: count only these
    (None: every name).

    On PostgreSQL the plans go as arrays and each plan's events are counted in a LATERAL
    subquery, which reads `ix_events_account_name_time` for that account, name and time range
    only: the cost follows the plans' own events, never the size of the events table (a plain
    join let the planner scan every event and probe the plans for each). SQLite (the demo) joins."""
    found: dict[int, Tallies] = {plan.plan_id: {} for plan in plans}
    if not plans or (names is not None and not names):
        return found
    if session.get_bind().dialect.name == "postgresql":
        windows = (
            func.unnest(
                _array([p.plan_id for p in plans], Integer()),
                _array([p.account_id for p in plans], Integer()),
                _array([p.started_at for p in plans], DateTime(timezone=True)),
            )
            .table_valued("plan_id", "account_id", "started_at", name="windows")
            .render_derived()
        )
        counted = select(Event.name, func.count().label("n")).where(
            Event.account_id == windows.c.account_id, Event.occurred_at >= windows.c.started_at
        )
        if names is not None:
            counted = counted.where(Event.name == any_(_array(sorted(names), String())))
        per_plan = counted.group_by(Event.name).lateral("per_plan")
        query = select(windows.c.plan_id, per_plan.c.name, per_plan.c.n).join(per_plan, true())
    else:
        query = (
            select(SuccessPlan.id, Event.name, func.count())
            .join(
                Event,
                and_(Event.account_id == SuccessPlan.account_id, Event.occurred_at >= SuccessPlan.started_at),
            )
            .where(SuccessPlan.id.in_([p.plan_id for p in plans]))
            .group_by(SuccessPlan.id, Event.name)
        )
        if names is not None:
            query = query.where(Event.name.in_(sorted(names)))
    for plan_id, name, count in session.connection().execute(query).all():
        found[plan_id][name] = int(count)
    return found


def _array(values: list[Any], item: TypeEngine[Any]) -> BindParameter[Any]:
    return bindparam(None, values, type_=ARRAY(item))
