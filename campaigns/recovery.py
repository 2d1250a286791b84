"""Recovery of deliveries a crash left behind: rows stuck in `sending`, `queued` rows whose job is gone.

A worker can die (SIGKILL, OOM, a lost machine) between any two statements of `deliver`; Redis can
lose its queue. The ledger in PostgreSQL is what is true, so the scheduler tick repairs from it
(docs/adr/0005-delivery-crash-recovery.md):

- `sending` and never attempted (`sent_at` unset: the worker died before `begin_attempt`
  committed): nothing left this system, so the rows go back to `queued` and get a new job.
- `sending` and attempted (`sent_at` set): the request may have reached the provider, which has
  no idempotency key, so the rows become `unknown` (at most once), for the webhook reconciler to
  settle from the provider's events; they are never sent again blindly.
- `queued` email rows untouched for longer than any retry backoff: their job was lost (a killed
  worker's abandoned job, a Redis that lost its data); they get a new job. A duplicate job is
  harmless: `deliver` claims only rows still `queued`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from campaigns.models import Message, MessageStatus, StepKind

# Far beyond a batch's run time (≈0.5 s for 1,000) and RQ's default job timeout (180 s): a row in
# `sending` this long has no live worker behind it.
STALE_SENDING = dt.timedelta(minutes=10)
# Beyond the longest wait of the delivery retry backoff (30 min, campaigns.scheduler.DELIVERY_RETRY)
# so a row waiting for its scheduled retry is never given a second job early.
STALE_QUEUED = dt.timedelta(hours=1)
REQUEUED_AFTER_CRASH = "requeued: the worker stopped before sending"
UNKNOWN_AFTER_CRASH = "the worker stopped during the send; outcome from the provider's events"


@dataclass
class Recovered:
    requeued: list[int] = field(default_factory=list)  # `sending`, never attempted → `queued`
    unknown: list[int] = field(default_factory=list)  # `sending`, attempted → `unknown`
    orphaned: list[int] = field(default_factory=list)  # `queued` too long: their job was lost

    @property
    def to_enqueue(self) -> list[int]:
        return sorted({*self.requeued, *self.orphaned})


def recover_stale_deliveries(
    session: Session,
    now: dt.datetime,
    *,
    sending_after: dt.timedelta = STALE_SENDING,
    queued_after: dt.timedelta = STALE_QUEUED,
) -> Recovered:
    """Repair rows a dead worker or a lost job left behind; returns the ids that need a new job
    (the caller enqueues them after commit). Each UPDATE is conditional on the row's state, so a
    worker that is merely slow and moves a row on meanwhile wins, and the row is left alone."""
    found = Recovered()
    email = Message.channel == StepKind.EMAIL.value
    stuck = (Message.status == MessageStatus.SENDING, email, Message.updated_at < now - sending_after)
    attempted = Message.sent_at.is_not(None)
    found.requeued = _touched(
        session, now, *stuck, ~attempted, status=MessageStatus.QUEUED, reason=REQUEUED_AFTER_CRASH
    )
    found.unknown = _touched(
        session, now, *stuck, attempted, status=MessageStatus.UNKNOWN, reason=UNKNOWN_AFTER_CRASH
    )
    # Touching updated_at gives each orphan at most one new job per `queued_after`.
    found.orphaned = _touched(
        session, now, Message.status == MessageStatus.QUEUED, email, Message.updated_at < now - queued_after
    )
    return found


def _touched(session: Session, now: dt.datetime, *where: ColumnElement[bool], **values: Any) -> list[int]:
    """The ids of the messages `where` holds for, now set to `values` and touched at `now` (one
    conditional UPDATE: a row a live worker moved on meanwhile no longer matches)."""
    return list(
        session.scalars(update(Message).where(*where).values(**values, updated_at=now).returning(Message.id))
    )
