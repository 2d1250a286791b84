"""The scheduler tick: run due enrolment steps, write Message rows, enqueue batched delivery.

Messages are committed *before* any send (unique dedupe key per enrolment, step and contact);
delivery jobs are enqueued only after that commit, one per batch of up to 1,000 recipients.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from rq import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from campaigns.enrollment import log_entry
from campaigns.jobs import deliver_batch
from campaigns.models import (
    RUNNABLE_STATES,
    Enrollment,
    EnrollmentState,
    Message,
    MessageStatus,
    Step,
    StepKind,
)
from engine.accounts import Account, Contact
from engine.plans.models import Milestone, MilestoneStatus, PlanStatus, SuccessPlan
from engine.queue import enqueue_after_commit

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
TICK_LIMIT = 5000
MAX_STEPS_PER_TICK = 50
DELIVERY_RETRY = Retry(max=5, interval=[10, 30, 120, 600, 1800])


@dataclass
class TickResult:
    enrollments: int = 0
    steps_run: int = 0
    messages_queued: int = 0
    messages_suppressed: int = 0
    batches: list[list[int]] = field(default_factory=list)


def due_enrollments(session: Session, now: dt.datetime, limit: int) -> list[Enrollment]:
    stmt = (
        select(Enrollment)
        .where(Enrollment.state.in_(RUNNABLE_STATES), Enrollment.next_run_at <= now)
        .order_by(Enrollment.next_run_at)
        .limit(limit)
        .options(selectinload(Enrollment.account).selectinload(Account.contacts))
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two schedulers (or a slow tick overlapping the next) never take the same rows.
        stmt = stmt.with_for_update(skip_locked=True, of=Enrollment)
    return list(session.scalars(stmt))


def run_tick(session: Session, *, now: dt.datetime, limit: int = TICK_LIMIT) -> TickResult:
    """Advance every due enrolment as far as it can go now; the caller commits."""
    result = TickResult()
    enrollments = due_enrollments(session, now, limit)
    steps_by_campaign = _steps(session, {e.campaign_id for e in enrollments})
    achieved = _achieved_milestones(session, {e.account_id for e in enrollments})
    queued: dict[int, list[Message]] = {}
    with session.no_autoflush:  # one flush for the whole tick, not one per enrolment
        for enrollment in enrollments:
            result.enrollments += 1
            steps = steps_by_campaign[enrollment.campaign_id]
            done = achieved.get(enrollment.account_id, set())
            _advance(session, enrollment, steps, done, now, result, queued)
    session.flush()
    for step_messages in queued.values():
        ids = [m.id for m in step_messages]
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            result.batches.append(batch)
            enqueue_after_commit(session, "delivery", deliver_batch, batch, retry=DELIVERY_RETRY)
    return result


def _steps(session: Session, campaign_ids: set[int]) -> dict[int, list[Step]]:
    found: dict[int, list[Step]] = {cid: [] for cid in campaign_ids}
    if campaign_ids:
        for step in session.scalars(
            select(Step).where(Step.campaign_id.in_(campaign_ids)).order_by(Step.position)
        ):
            found[step.campaign_id].append(step)
    return found


def _advance(
    session: Session,
    enrollment: Enrollment,
    steps: list[Step],
    achieved: set[str],
    now: dt.datetime,
    result: TickResult,
    queued: dict[int, list[Message]],
) -> None:
    for _ in range(MAX_STEPS_PER_TICK):
        if enrollment.current_step >= len(steps):
            _finish(enrollment, now, EnrollmentState.COMPLETED, "all steps done")
            return
        step = steps[enrollment.current_step]
        result.steps_run += 1
        if step.kind in (StepKind.EMAIL, StepKind.IN_APP):
            _write_messages(session, enrollment, step, now, result, queued)
        elif step.kind == StepKind.WAIT:
            until = enrollment.step_started_at + dt.timedelta(days=float(step.config["days"]))
            if now < until:
                _wait(enrollment, until)
                return
        elif step.kind == StepKind.WAIT_UNTIL:
            key = str(step.config["milestone"])
            until = enrollment.step_started_at + dt.timedelta(days=float(step.config["timeout_days"]))
            if key in achieved:
                enrollment.history = [
                    *enrollment.history,
                    log_entry(now, "condition_met", step=step.key),
                ]
            elif now >= until:
                enrollment.history = [
                    *enrollment.history,
                    log_entry(now, "timed_out", step=step.key),
                ]
            else:
                _wait(enrollment, until)
                return
        elif step.kind == StepKind.EXIT:
            _finish(enrollment, now, EnrollmentState.EXITED, f"exit step {step.key!r}")
            return
        enrollment.current_step += 1
        enrollment.step_started_at = now
        enrollment.state = EnrollmentState.ACTIVE
        enrollment.history = [*enrollment.history, log_entry(now, "step_done", step=step.key)]
    enrollment.next_run_at = now  # pathological campaign: continue on the next tick


def _wait(enrollment: Enrollment, until: dt.datetime) -> None:
    enrollment.state = EnrollmentState.WAITING
    enrollment.next_run_at = until


def _finish(enrollment: Enrollment, now: dt.datetime, state: EnrollmentState, reason: str) -> None:
    enrollment.state = state
    enrollment.next_run_at = None
    enrollment.finished_at = now
    enrollment.exited_reason = reason if state == EnrollmentState.EXITED else None
    enrollment.history = [*enrollment.history, log_entry(now, state.value, reason=reason)]


def _achieved_milestones(session: Session, account_ids: set[int]) -> dict[int, set[str]]:
    """Achieved milestone keys of each account's active plan, in one query for the whole tick."""
    found: dict[int, set[str]] = {}
    if not account_ids:
        return found
    rows = session.execute(
        select(SuccessPlan.account_id, Milestone.key)
        .join(Milestone, Milestone.plan_id == SuccessPlan.id)
        .where(
            SuccessPlan.account_id.in_(account_ids),
            SuccessPlan.status == PlanStatus.ACTIVE,
            Milestone.status == MilestoneStatus.ACHIEVED,
        )
    )
    for account_id, key in rows:
        found.setdefault(account_id, set()).add(key)
    return found


def _recipients(enrollment: Enrollment, step: Step) -> list[Contact]:
    roles = set(step.config.get("to") or [])
    return [c for c in enrollment.account.contacts if not roles or c.role.value in roles]


def _write_messages(
    session: Session,
    enrollment: Enrollment,
    step: Step,
    now: dt.datetime,
    result: TickResult,
    queued: dict[int, list[Message]],
) -> None:
    for contact in _recipients(enrollment, step):
        reason = _suppression_reason(enrollment.account, contact)
        message = Message(
            enrollment_id=enrollment.id,
            step_id=step.id,
            contact_id=contact.id,
            channel=step.kind.value,
            status=MessageStatus.SUPPRESSED if reason else MessageStatus.QUEUED,
            reason=reason,
            dedupe_key=f"{enrollment.id}:{step.id}:{contact.id}",
            template_key=step.config.get("template"),
            created_at=now,
        )
        session.add(message)
        if reason:
            result.messages_suppressed += 1
        elif step.kind == StepKind.EMAIL:
            result.messages_queued += 1
            queued.setdefault(step.id, []).append(message)


def _suppression_reason(account: Account, contact: Contact) -> str | None:
    if contact.unsubscribed_at is not None:
        return "unsubscribed"
    if contact.bounced_at is not None:
        return "bounced"
    if account.holdout_group:
        return "holdout"
    return None
