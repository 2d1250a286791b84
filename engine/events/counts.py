"""Event facts for rules and milestone criteria: grouped counts per account, or per batch of plans."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from engine.events.models import Event
from engine.plans.models import SuccessPlan

EventFacts = dict[str, dict[str, int]]


def event_counts(session: Session, account_id: int, since: dt.datetime) -> EventFacts:
    """Facts for milestone criteria: {"<event name>": {"count": n}} since `since`."""
    rows = session.execute(
        select(Event.name, func.count())
        .where(Event.account_id == account_id, Event.occurred_at >= since)
        .group_by(Event.name)
    )
    return {name: {"count": int(count)} for name, count in rows}


def plan_event_counts(session: Session, plan_ids: Sequence[int]) -> dict[int, EventFacts]:
    """`event_counts` for many plans in one query: each plan's account's events since that plan
    started, {plan_id: {"<event name>": {"count": n}}}; a plan without events maps to {}."""
    found: dict[int, EventFacts] = {plan_id: {} for plan_id in plan_ids}
    if not plan_ids:
        return found
    rows = session.execute(
        select(SuccessPlan.id, Event.name, func.count())
        .join(
            Event,
            and_(Event.account_id == SuccessPlan.account_id, Event.occurred_at >= SuccessPlan.started_at),
        )
        .where(SuccessPlan.id.in_(plan_ids))
        .group_by(SuccessPlan.id, Event.name)
    )
    for plan_id, name, count in rows:
        found[plan_id][name] = {"count": int(count)}
    return found
