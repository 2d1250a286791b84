"""Event facts for rules and milestone criteria: grouped counts per account, or per batch of plans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from sqlalchemy import ARRAY, ColumnElement, String, and_, any_, bindparam, func, select
from sqlalchemy.orm import Session

from engine.db import id_in
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


def plan_event_tallies(
    session: Session, plan_ids: Sequence[int], names: Collection[str] | None = None
) -> dict[int, Tallies]:
    """Each plan's account's events since that plan started, counted by name in one query:
    {plan_id: {"<event name>": n}}, {} for a plan without events. `names`: count only these
    (None: every name)."""
    found: dict[int, Tallies] = {plan_id: {} for plan_id in plan_ids}
    if not plan_ids or (names is not None and not names):
        return found
    query = (
        select(SuccessPlan.id, Event.name, func.count())
        .join(
            Event,
            and_(Event.account_id == SuccessPlan.account_id, Event.occurred_at >= SuccessPlan.started_at),
        )
        .where(id_in(session, SuccessPlan.id, plan_ids))
        .group_by(SuccessPlan.id, Event.name)
    )
    if names is not None:
        query = query.where(_name_in(session, sorted(names)))
    for plan_id, name, count in session.connection().execute(query):
        found[plan_id][name] = int(count)
    return found


def _name_in(session: Session, names: list[str]) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Event.name == any_(bindparam(None, names, type_=ARRAY(String)))
    return Event.name.in_(names)
