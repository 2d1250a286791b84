"""The scheduler tick: run due enrolment steps, write Message rows, enqueue batched delivery.

Messages are committed *before* any send (unique dedupe key per enrolment entry, step and
contact); delivery jobs are enqueued only after that commit, one per batch of up to 1,000
recipients. Each enrolment runs the campaign version it started on. Steps move forward only:
`branch` and `wait_until`'s timeout jump to a later step by key. Before every step the campaign's
exit criteria are checked; before every message the guards (campaigns.guards) run and their
results are kept on the message.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb
from rq import Retry
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, selectinload

from campaigns.enrollment import log_entry
from campaigns.guards import CapLedger, Caps, contact_zone, suppression, window_opens
from campaigns.jobs import deliver_batch
from campaigns.models import (
    RUNNABLE_STATES,
    CampaignVersion,
    Enrollment,
    EnrollmentState,
    Message,
    MessageStatus,
    Step,
    StepKind,
)
from campaigns.planstate import PlanState, plan_states, waited_on
from campaigns.recovery import recover_stale_deliveries
from engine.accounts import Account, Contact
from engine.events.models import Event
from engine.plans.models import MilestoneStatus, PlanStatus
from engine.queue import enqueue_after_commit
from engine.rules.facts import load_facts
from engine.rules.logic import holds

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
TICK_LIMIT = 5000
MAX_STEPS_PER_TICK = 50
EVENT_POLL = dt.timedelta(hours=1)
DELIVERY_RETRY = Retry(max=5, interval=[10, 30, 120, 600, 1800])


@dataclass
class TickResult:
    enrollments: int = 0
    steps_run: int = 0
    messages_queued: int = 0
    messages_suppressed: int = 0
    messages_deferred: int = 0
    messages_released: int = 0
    messages_recovered: int = 0  # rows a dead worker or a lost job left behind, given a new job
    messages_unknown: int = 0  # rows a worker died while sending: left to the reconciler
    exited: int = 0
    batches: list[list[int]] = field(default_factory=list)


@dataclass
class Tick:
    session: Session
    now: dt.datetime
    result: TickResult
    caps: CapLedger
    plans: dict[int, PlanState]
    versions: dict[tuple[int, int], tuple[list[Step], dict[str, Any]]]
    queued: dict[int, list[int]] = field(default_factory=dict)  # step id → message ids to deliver
    new_messages: list[dict[str, Any]] = field(default_factory=list)  # rows written in one go
    new_queued: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # step id → rows
    facts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def facts_for(self, account: Account) -> dict[str, Any]:
        if account.id not in self.facts:
            self.facts[account.id] = load_facts(self.session, [account], self.now)[account.id]
        return self.facts[account.id]


def due_enrollments(session: Session, now: dt.datetime, limit: int) -> list[Enrollment]:
    stmt = (
        select(Enrollment)
        .where(Enrollment.state.in_(RUNNABLE_STATES), Enrollment.next_run_at <= now)
        .order_by(Enrollment.next_run_at)
        .limit(limit)
        .options(
            selectinload(Enrollment.account).selectinload(Account.contacts),
            selectinload(Enrollment.campaign),
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        # Two schedulers (or a slow tick overlapping the next) never take the same rows.
        stmt = stmt.with_for_update(skip_locked=True, of=Enrollment)
    return list(session.scalars(stmt))


def run_tick(
    session: Session, *, now: dt.datetime, limit: int = TICK_LIMIT, caps: Caps | None = None
) -> TickResult:
    """Recover deliveries a crash left behind (campaigns.recovery), release deferred messages whose
    window opened, then advance every due enrolment as far as it can go now; the caller
    commits (delivery jobs are enqueued after that commit)."""
    result = TickResult()
    recovered = recover_stale_deliveries(session, now)
    result.messages_recovered, result.messages_unknown = len(recovered.to_enqueue), len(recovered.unknown)
    if result.messages_recovered or result.messages_unknown:
        log.warning(
            "recovered deliveries a crash left behind: %d requeued, %d orphaned given a new job, %d unknown "
            "(left to the reconciler)",
            len(recovered.requeued),
            len(recovered.orphaned),
            len(recovered.unknown),
        )
    released = release_deferred(session, now)
    result.messages_released = len(released)
    enrollments = due_enrollments(session, now, limit)
    account_ids = {e.account_id for e in enrollments}
    versions = _versions(session, {(e.campaign_id, e.campaign_version) for e in enrollments})
    tick = Tick(
        session=session,
        now=now,
        result=result,
        caps=CapLedger.load(session, caps or Caps(), account_ids, now),
        plans=plan_states(session, account_ids, *waited_on(versions)),
        versions=versions,
    )
    for message in released:
        tick.queued.setdefault(message.step_id, []).append(message.id)
    with session.no_autoflush:  # one flush for the whole tick, not one per enrolment
        for enrollment in enrollments:
            result.enrollments += 1
            _advance(tick, enrollment)
    session.flush()
    insert_messages(session, tick.new_messages)
    for step_id, rows in tick.new_queued.items():
        tick.queued.setdefault(step_id, []).extend(row["id"] for row in rows)
    for ids in tick.queued.values():
        for start in range(0, len(ids), BATCH_SIZE):
            batch = ids[start : start + BATCH_SIZE]
            result.batches.append(batch)
            enqueue_after_commit(session, "delivery", deliver_batch, batch, retry=DELIVERY_RETRY)
    ids = recovered.to_enqueue
    for start in range(0, len(ids), BATCH_SIZE):
        result.batches.append(ids[start : start + BATCH_SIZE])
        enqueue_after_commit(session, "delivery", deliver_batch, result.batches[-1], retry=DELIVERY_RETRY)
    return result


def release_deferred(session: Session, now: dt.datetime) -> list[Message]:
    """Deferred emails whose send window has opened become queued (in-app ones become visible)."""
    stmt = select(Message).where(Message.status == MessageStatus.DEFERRED, Message.not_before <= now)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    released = list(session.scalars(stmt))
    for message in released:
        message.status = MessageStatus.QUEUED
        message.updated_at = now
        message.trace = {**message.trace, "released_at": now.isoformat()}
    session.flush()
    return [m for m in released if m.channel == StepKind.EMAIL.value]


def _versions(
    session: Session, wanted: set[tuple[int, int]]
) -> dict[tuple[int, int], tuple[list[Step], dict[str, Any]]]:
    found: dict[tuple[int, int], tuple[list[Step], dict[str, Any]]] = {key: ([], {}) for key in wanted}
    campaign_ids = {cid for cid, _ in wanted}
    if not campaign_ids:
        return found
    for step in session.scalars(
        select(Step).where(Step.campaign_id.in_(campaign_ids)).order_by(Step.version, Step.position)
    ):
        if (step.campaign_id, step.version) in found:
            found[(step.campaign_id, step.version)][0].append(step)
    for row in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id.in_(campaign_ids))):
        if (row.campaign_id, row.version) in found:
            found[(row.campaign_id, row.version)][1].update(row.settings or {})
    return found


def _advance(tick: Tick, enrollment: Enrollment) -> None:
    steps, settings = tick.versions.get((enrollment.campaign_id, enrollment.campaign_version), ([], {}))
    if not steps:
        _finish(
            enrollment,
            tick.now,
            EnrollmentState.FAILED,
            f"version {enrollment.campaign_version} has no steps",
        )
        return
    position = {step.key: i for i, step in enumerate(steps)}
    exit_reason = _exit_reason(tick, enrollment, settings)
    if exit_reason is not None:
        tick.result.exited += 1
        _finish(enrollment, tick.now, EnrollmentState.EXITED, exit_reason)
        return
    for _ in range(MAX_STEPS_PER_TICK):
        if enrollment.current_step >= len(steps):
            _finish(enrollment, tick.now, EnrollmentState.COMPLETED, "all steps done")
            return
        step = steps[enrollment.current_step]
        tick.result.steps_run += 1
        target: str | None = None  # the step to jump to, by key
        if step.kind in (StepKind.EMAIL, StepKind.IN_APP):
            _write_messages(tick, enrollment, step, settings)
        elif step.kind == StepKind.WAIT:
            until = enrollment.step_started_at + dt.timedelta(days=float(step.config["days"]))
            if tick.now < until:
                _wait(enrollment, until)
                return
        elif step.kind == StepKind.WAIT_UNTIL:
            outcome = _wait_until(tick, enrollment, step)
            if outcome is None:
                return
            _log(enrollment, tick.now, outcome, step=step.key)
            if outcome == "timed_out" and step.config.get("on_timeout"):
                target = str(step.config["on_timeout"])
        elif step.kind == StepKind.BRANCH:
            matched = _branch(tick, enrollment, step)
            target = step.config.get("then") if matched else step.config.get("else")
            _log(enrollment, tick.now, "branch", step=step.key, matched=matched, to=target or "next")
            if target == "exit":
                _finish(enrollment, tick.now, EnrollmentState.EXITED, f"branch {step.key!r} exits")
                return
        elif step.kind == StepKind.EXIT:
            _finish(enrollment, tick.now, EnrollmentState.EXITED, f"exit step {step.key!r}")
            return
        enrollment.current_step = position[target] if target in position else enrollment.current_step + 1
        enrollment.step_started_at = tick.now
        enrollment.state = EnrollmentState.ACTIVE
        _log(enrollment, tick.now, "step_done", step=step.key)
    enrollment.next_run_at = tick.now  # pathological campaign: continue on the next tick


def _exit_reason(tick: Tick, enrollment: Enrollment, settings: dict[str, Any]) -> str | None:
    """The campaign's exit criteria: plan completed, left the segments, a condition, no one to reach."""
    criteria = settings.get("exit_when") or {}
    account = enrollment.account
    plan = tick.plans.get(account.id)
    if criteria.get("plan_completed", True) and plan is not None and plan.status is PlanStatus.COMPLETED:
        return "exit criteria: the plan is completed"
    segments = criteria.get("segments")
    if segments and account.segment not in segments:
        return f"exit criteria: segment {account.segment!r} is not one of {', '.join(segments)}"
    condition = criteria.get("condition")
    if condition is not None and holds(condition, tick.facts_for(account)):
        return "exit criteria: the exit condition holds"
    if account.contacts and all(c.unsubscribed_at is not None for c in account.contacts):
        return "exit criteria: every contact unsubscribed"
    return None


def _wait_until(tick: Tick, enrollment: Enrollment, step: Step) -> str | None:
    """'condition_met' / 'timed_out' when the wait is over; None (and the enrolment waits) if not."""
    config = step.config
    plan = tick.plans.get(enrollment.account_id, PlanState())
    timeout = config.get("timeout_days")
    until = enrollment.step_started_at + dt.timedelta(days=float(timeout)) if timeout is not None else None
    if config.get("milestone"):
        status, due = plan.milestones.get(str(config["milestone"]), (None, None))
        if config.get("days_before_due") is not None:
            if due is None:
                return "timed_out"  # no such milestone on this plan: nothing to wait for
            moment = dt.datetime.combine(
                due - dt.timedelta(days=int(config["days_before_due"])), dt.time(), tzinfo=dt.UTC
            )
            until = moment if until is None else min(until, moment)
            if tick.now >= moment:
                return "condition_met"
        elif status is MilestoneStatus.ACHIEVED:
            return "condition_met"
    elif config.get("kr"):
        found = plan.key_results.get(str(config["kr"]))
        if found is not None:
            baseline, current, target = found
            goal = target if config.get("reaches") == "target" else float(config["reaches"])
            # A KR that should fall (target below its baseline) reaches its goal from above.
            if (current <= goal) if target < baseline else (current >= goal):
                return "condition_met"
    elif config.get("event"):
        count = tick.session.scalar(
            select(func.count(Event.id)).where(
                Event.account_id == enrollment.account_id,
                Event.name == str(config["event"]),
                Event.occurred_at >= enrollment.step_started_at,
            )
        )
        if int(count or 0) >= int(config.get("count") or 1):
            return "condition_met"
    if until is not None and tick.now >= until:
        return "timed_out"
    # Milestones and KRs wake their waiters when they change (campaigns.wiring); events are also
    # polled hourly, so an event stored by any path ends the wait within the hour.
    recheck = tick.now + (EVENT_POLL if config.get("event") else dt.timedelta(days=1))
    _wait(enrollment, min(until, recheck) if until is not None else recheck)
    return None


def _branch(tick: Tick, enrollment: Enrollment, step: Step) -> bool:
    try:
        return holds(step.config["condition"], tick.facts_for(enrollment.account))
    except Exception:  # noqa: BLE001 - a condition that no longer evaluates takes the else path
        log.warning("branch %s of enrolment %s failed to evaluate", step.key, enrollment.id, exc_info=True)
        return False


def _wait(enrollment: Enrollment, until: dt.datetime) -> None:
    enrollment.state = EnrollmentState.WAITING
    enrollment.next_run_at = until


def _log(enrollment: Enrollment, now: dt.datetime, event: str, **details: Any) -> None:
    enrollment.history = [*enrollment.history, log_entry(now, event, **details)]


def _finish(enrollment: Enrollment, now: dt.datetime, state: EnrollmentState, reason: str) -> None:
    enrollment.state = state
    enrollment.next_run_at = None
    enrollment.finished_at = now
    enrollment.exited_reason = reason if state != EnrollmentState.COMPLETED else None
    _log(enrollment, now, state.value, reason=reason)


def _recipients(enrollment: Enrollment, step: Step) -> list[Contact]:
    roles = set(step.config.get("to") or [])
    return [c for c in enrollment.account.contacts if not roles or c.role.value in roles]


def _enrolled_because(enrollment: Enrollment) -> Any:
    for entry in reversed(enrollment.history):
        if entry.get("event") in ("enrolled", "re-entered"):
            return entry.get("reason")
    return None


def dedupe_key(enrollment: Enrollment, step: Step, contact: Contact) -> str:
    entry = "" if enrollment.entry <= 1 else f".{enrollment.entry}"
    return f"{enrollment.id}{entry}:{step.id}:{contact.id}"


def _write_messages(tick: Tick, enrollment: Enrollment, step: Step, settings: dict[str, Any]) -> None:
    """One ledger row per recipient, with the result of every guard on it (the audit trail)."""
    account = enrollment.account
    category = str(settings.get("category") or "nurture")
    uses_caps = bool(settings.get("caps", True))
    account_cap = tick.caps.account_capped(account.id) if uses_caps else None
    sent_any = False
    for contact in _recipients(enrollment, step):
        guards: list[list[str]] = []
        reason = None
        holdout = "holdout" if enrollment.held_out or account.holdout_group else None
        checks = (
            ("suppression", suppression(contact, category)),
            ("holdout", holdout),
            ("account cap", account_cap),
            ("contact cap", tick.caps.contact_capped(contact.id) if uses_caps else None),
        )
        for name, problem in checks:
            detail = problem
            if name == "holdout" and problem:
                detail = "held out of this campaign" if enrollment.held_out else "in the global holdout group"
            guards.append([name, detail or "pass"])
            if problem and reason is None:
                reason = problem
        opens = None
        if reason is None:
            opens = window_opens(settings.get("send_window"), contact_zone(contact, account), tick.now)
            guards.append(["send window", f"deferred until {opens.isoformat()}" if opens else "pass"])
        status = (
            MessageStatus.SUPPRESSED if reason else MessageStatus.DEFERRED if opens else MessageStatus.QUEUED
        )
        message = {
            "enrollment_id": enrollment.id,
            "step_id": step.id,
            "contact_id": contact.id,
            "channel": step.kind.value,
            "status": status,
            "reason": reason,
            "dedupe_key": dedupe_key(enrollment, step, contact),
            "template_key": step.config.get("template"),
            "created_at": tick.now,
            "updated_at": tick.now,
            "not_before": opens,
            "trace": {
                "enrolled": _enrolled_because(enrollment),
                "campaign_version": enrollment.campaign_version,
                "entry": enrollment.entry,
                "step": step.key,
                "guards": guards,
                "result": reason or ("deferred" if opens else "queued"),
            },
        }
        tick.new_messages.append(message)
        if reason:
            tick.result.messages_suppressed += 1
            continue
        sent_any = True
        tick.caps.messages[contact.id] += 1
        if opens:
            tick.result.messages_deferred += 1
        elif step.kind == StepKind.EMAIL:
            tick.result.messages_queued += 1
            tick.new_queued.setdefault(step.id, []).append(message)
    if sent_any:
        tick.caps.nudges[account.id] += 1


_MESSAGE_COLUMNS = (
    "id",
    "enrollment_id",
    "step_id",
    "contact_id",
    "channel",
    "status",
    "reason",
    "dedupe_key",
    "template_key",
    "created_at",
    "updated_at",
    "not_before",
    "trace",
)


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write the tick's new ledger rows and give each its id. On PostgreSQL: ids from the sequence
    in one query, then COPY (an ORM or executemany INSERT … RETURNING of 100k rows spends most of
    the tick building and parsing statements); elsewhere (the demo's SQLite) an INSERT … RETURNING."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        stmt = insert(Message).returning(Message.id, sort_by_parameter_order=True)
        for row, message_id in zip(rows, session.scalars(stmt, rows).all(), strict=True):
            row["id"] = message_id
        return
    sequence = func.pg_get_serial_sequence(Message.__tablename__, "id")
    ids = session.scalars(select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows))))
    for row, message_id in zip(rows, ids.all(), strict=True):
        row["id"] = message_id
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(_MESSAGE_COLUMNS)
    with cursor, cursor.copy(f"COPY {Message.__tablename__} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in _MESSAGE_COLUMNS[:-1]]
            values[_MESSAGE_COLUMNS.index("status")] = row["status"].value
            copy.write_row([*values, Jsonb(row["trace"])])
