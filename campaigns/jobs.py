"""RQ entry points: they take IDs only, load fresh state and are safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from campaigns.delivery import DeliveryResult, deliver
from campaigns.mail import backend_for
from campaigns.segment_enrollment import Segment, enroll_segment, record_finished
from engine import db, queue
from engine.db import utcnow

log = logging.getLogger(__name__)

SEGMENT_JOB_ACCOUNTS = 5_000  # per job run: well inside RQ's timeout; the rest continues in a new job


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


def segment_reason(actor: str, segment: str) -> str:
    """The reason each enrolment records: who asked, from where, for which segment."""
    return f"console: {actor} (segment {segment})"


def enroll_segment_job(
    campaign_key: str,
    segment: str,
    stage: str | None,
    actor: str,
    after_id: int = 0,
    totals: dict[str, int] | None = None,
    run: str = "",
) -> dict[str, Any]:
    """Enrol the next SEGMENT_JOB_ACCOUNTS accounts of the segment (ids above `after_id`), then
    queue the rest as a new job carrying the running totals; safe to run twice (enroll_account
    enrols no one twice). The last job of a `run` (the console's id for it) records the totals on
    the campaign (its page lists them; so does the audit log)."""
    result = enroll_segment(
        db.current(),
        campaign_key,
        Segment(segment, stage),
        now=utcnow(),
        reason=segment_reason(actor, segment),
        after_id=int(after_id),
        limit=SEGMENT_JOB_ACCOUNTS,
    )
    before = totals or {}
    summed = {
        "matched": before.get("matched", 0) + result.matched,
        "enrolled": before.get("enrolled", 0) + result.enrolled,
        "already_enrolled": before.get("already_enrolled", 0) + result.already_enrolled,
        "refused": before.get("refused", 0) + result.refused,
    }
    if not result.done:
        # Every batch is committed: nothing is left to commit first.
        queue.current().enqueue(
            "default",
            enroll_segment_job,
            campaign_key,
            segment,
            stage,
            actor,
            result.last_account_id,
            summed,
            run,
        )
    else:
        if run:
            with db.current().transaction() as session:
                record_finished(session, campaign_key, Segment(segment, stage), summed, run=run, actor=actor)
        log.info(
            "segment %s enrolled in %r for %s: %s",
            Segment(segment, stage),
            campaign_key,
            actor,
            ", ".join(f"{k} {v}" for k, v in summed.items()),
        )
    return {**summed, "done": result.done}
