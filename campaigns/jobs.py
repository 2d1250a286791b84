"""RQ entry points: they take IDs only, load fresh state and are safe to run twice."""

from __future__ import annotations

from campaigns.delivery import DeliveryResult, deliver
from campaigns.mail import backend_for
from engine import db
from engine.db import utcnow


def deliver_batch(message_ids: list[int]) -> dict[str, int]:
    database = db.current()
    result: DeliveryResult = deliver(
        database, backend_for(database.settings), list(message_ids), now=utcnow()
    )
    return {
        "claimed": result.claimed,
        "sent": result.sent,
        "failed": result.failed,
        "unknown": result.unknown,
    }


def notify_owner_job(revision_id: int) -> bool:
    from campaigns.notify import notify_owner

    database = db.current()
    return notify_owner(database, backend_for(database.settings), int(revision_id), now=utcnow())
