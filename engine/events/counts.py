"""Event facts for rules and milestone criteria, computed with one grouped query per account."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.events.models import Event


def event_counts(session: Session, account_id: int, since: dt.datetime) -> dict[str, dict[str, int]]:
    """Facts for milestone criteria: {"<event name>": {"count": n}} since `since`."""
    rows = session.execute(
        select(Event.name, func.count())
        .where(Event.account_id == account_id, Event.occurred_at >= since)
        .group_by(Event.name)
    )
    return {name: {"count": int(count)} for name, count in rows}
