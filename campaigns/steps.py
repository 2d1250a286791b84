"""The step machine of a tick: advance one enrolment as far as it can go now, writing a ledger row
per recipient with every guard's result. Shared by the per-enrolment tick (ORM objects,
campaigns.scheduler) and the bulk tick (plain rows loaded in chunks, campaigns.bulk), so both run
exactly the same steps; they differ only in how they read and write.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from campaigns.enrollment import log_entry
from campaigns.guards import CapLedger, contact_zone, suppression, window_opens
from campaigns.models import (
    Campaign,
    CampaignVersion,
    Enrollment,
    EnrollmentState,
    MessageStatus,
    Step,
    StepKind,
)
from campaigns.planstate import PlanState
from engine.accounts import Account, Contact
from engine.events.models import Event
from engine.plans.models import MilestoneStatus, PlanStatus
from engine.rules.facts import load_facts
from engine.rules.logic import holds

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode

MAX_STEPS_PER_TICK = 50
EVENT_POLL = dt.timedelta(hours=1)


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
    messages_existing: int = 0  # ledger rows already there (same dedupe key): not written again
    exited: int = 0
    batches: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step of one campaign version, as the tick reads it (loaded once per tick)."""

    id: int
    campaign_id: int
    version: int
    position: int
    key: str
    kind: StepKind
    config: dict[str, Any]
    roles: frozenset[str]  # `to`: the contact roles it goes to (empty: everyone)


Version = tuple[list[StepSpec], dict[str, Any]]  # a version's steps in order, and its settings
# One recipient's guards: suppression, holdout detail, account cap, contact cap (None or why), and
# when the send window opens (None: open now, or not checked because another guard stopped it).
Verdict = tuple[str | None, str, str | None, str | None, dt.datetime | None]


@dataclass(slots=True)
class ContactRow:
    """What the bulk tick reads about a contact (the guards read the same attributes of a Contact)."""

    id: int
    account_id: int
    email: str
    role: str
    timezone: str | None
    unsubscribed_at: dt.datetime | None
    bounced_at: dt.datetime | None
    spam_reported_at: dt.datetime | None
    unsubscribed_categories: list[Any]


@dataclass(slots=True)
class AccountRow:
    """What the bulk tick reads about an account; the facts columns only when a step needs facts."""

    id: int
    segment: str
    timezone: str
    holdout_group: bool
    contacts: list[ContactRow] = field(default_factory=list)
    external_id: str = ""
    plan_tier: str | None = None
    lifecycle_stage: str = ""
    traits: dict[str, Any] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        return Account.facts(self)  # type: ignore[arg-type]  # the very document an Account gives


@dataclass(slots=True)
class EnrollmentRow:
    """An enrolment of the bulk tick: `history` holds only the entries this tick appends (as JSON
    text), and `enrolled` what enrolled the account (JSON text, read from the stored history by the
    query; None if nothing did)."""

    id: int
    account_id: int
    campaign_id: int
    campaign_version: int
    state: EnrollmentState
    current_step: int
    step_started_at: dt.datetime
    entry: int
    held_out: bool
    enrolled: str | None
    account: AccountRow
    next_run_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    exited_reason: str | None = None
    history: list[str] = field(default_factory=list)


AnyEnrollment = Enrollment | EnrollmentRow
AnyAccount = Account | AccountRow
AnyContact = Contact | ContactRow


@dataclass
class Tick:
    """One tick's shared state. The lookups read the database per enrolment; the bulk tick
    (campaigns.bulk.BulkTick) answers them from what it loaded for the chunk."""

    session: Session
    now: dt.datetime
    result: TickResult
    caps: CapLedger
    plans: dict[int, PlanState]
    versions: dict[tuple[int, int], Version]
    new_messages: list[dict[str, Any]] = field(default_factory=list)  # rows written in one go
    new_queued: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # step id → rows
    facts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def facts_for(self, account: AnyAccount) -> dict[str, Any]:
        if account.id not in self.facts:
            loaded = load_facts(self.session, [account], self.now)  # type: ignore[list-item]
            self.facts[account.id] = loaded[account.id]
        return self.facts[account.id]

    def event_count(self, account_id: int, name: str, since: dt.datetime) -> int:
        count = self.session.scalar(
            select(func.count(Event.id)).where(
                Event.account_id == account_id, Event.name == name, Event.occurred_at >= since
            )
        )
        return int(count or 0)

    def suppression(self, contact: AnyContact, category: str) -> str | None:
        assert isinstance(contact, Contact)
        return suppression(contact, category)

    def add_message(
        self, enrollment: AnyEnrollment, step: StepSpec, contact: AnyContact, verdict: Verdict
    ) -> None:
        """Keep a recipient's ledger row for the write at the end of the tick (campaigns.bulk
        buffers its chunk's rows as columns instead)."""
        status, reason, opens, trace = ledger_fields(enrollment, step, verdict, enrolled_because(enrollment))
        message = {
            "enrollment_id": enrollment.id,
            "step_id": step.id,
            "contact_id": contact.id,
            "channel": step.kind.value,
            "status": status,
            "reason": reason,
            "dedupe_key": dedupe_key(enrollment, step, contact),
            "template_key": step.config.get("template"),
            "created_at": self.now,
            "updated_at": self.now,
            "not_before": opens,
            "trace": trace,
        }
        self.new_messages.append(message)
        if status is MessageStatus.QUEUED and step.kind is StepKind.EMAIL:
            self.new_queued.setdefault(step.id, []).append(message)


def not_paused(campaign_id: Any) -> ColumnElement[bool]:
    """`campaign_id` is not a paused campaign's: the tick does not take the enrolments of a paused
    campaign (both paths); they stay due, untouched, and carry on when it is resumed."""
    return campaign_id.not_in(select(Campaign.id).where(Campaign.paused.is_(True)))  # type: ignore[no-any-return]


def load_versions(session: Session, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], Version]:
    """The steps (in order) and settings of each (campaign id, version) the due enrolments run."""
    found: dict[tuple[int, int], Version] = {key: ([], {}) for key in wanted}
    campaign_ids = {cid for cid, _ in wanted}
    if not campaign_ids:
        return found
    for step in session.scalars(
        select(Step).where(Step.campaign_id.in_(campaign_ids)).order_by(Step.version, Step.position)
    ):
        if (step.campaign_id, step.version) in found:
            config = dict(step.config or {})
            spec = StepSpec(
                id=step.id,
                campaign_id=step.campaign_id,
                version=step.version,
                position=step.position,
                key=step.key,
                kind=StepKind(step.kind),
                config=config,
                roles=frozenset(config.get("to") or []),
            )
            found[(step.campaign_id, step.version)][0].append(spec)
    for row in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id.in_(campaign_ids))):
        if (row.campaign_id, row.version) in found:
            found[(row.campaign_id, row.version)][1].update(row.settings or {})
    return found


def advance(tick: Tick, enrollment: AnyEnrollment) -> None:
    """Run the enrolment's steps from its current one until it waits, ends or hits the cap."""
    steps, settings = tick.versions.get((enrollment.campaign_id, enrollment.campaign_version), ([], {}))
    if not steps:
        _finish(
            enrollment,
            tick.now,
            EnrollmentState.FAILED,
            f"version {enrollment.campaign_version} has no steps",
        )
        return
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
        if step.kind is StepKind.EMAIL or step.kind is StepKind.IN_APP:
            write_messages(tick, enrollment, step, settings)
        elif step.kind is StepKind.WAIT:
            until = enrollment.step_started_at + dt.timedelta(days=float(step.config["days"]))
            if tick.now < until:
                _wait(enrollment, until)
                return
        elif step.kind is StepKind.WAIT_UNTIL:
            outcome = _wait_until(tick, enrollment, step)
            if outcome is None:
                return
            _log(enrollment, tick.now, outcome, step=step.key)
            if outcome == "timed_out" and step.config.get("on_timeout"):
                target = str(step.config["on_timeout"])
        elif step.kind is StepKind.BRANCH:
            matched = _branch(tick, enrollment, step)
            target = step.config.get("then") if matched else step.config.get("else")
            _log(enrollment, tick.now, "branch", step=step.key, matched=matched, to=target or "next")
            if target == "exit":
                _finish(enrollment, tick.now, EnrollmentState.EXITED, f"branch {step.key!r} exits")
                return
        elif step.kind is StepKind.EXIT:
            _finish(enrollment, tick.now, EnrollmentState.EXITED, f"exit step {step.key!r}")
            return
        position = {s.key: i for i, s in enumerate(steps)} if target is not None else {}
        enrollment.current_step = position[target] if target in position else enrollment.current_step + 1
        enrollment.step_started_at = tick.now
        enrollment.state = EnrollmentState.ACTIVE
        _log(enrollment, tick.now, "step_done", step=step.key)
    enrollment.next_run_at = tick.now  # pathological campaign: continue on the next tick


def _exit_reason(tick: Tick, enrollment: AnyEnrollment, settings: dict[str, Any]) -> str | None:
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
    contacts: list[Any] = account.contacts
    if contacts and all(c.unsubscribed_at is not None for c in contacts):
        return "exit criteria: every contact unsubscribed"
    return None


def _wait_until(tick: Tick, enrollment: AnyEnrollment, step: StepSpec) -> str | None:
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
        count = tick.event_count(enrollment.account_id, str(config["event"]), enrollment.step_started_at)
        if count >= int(config.get("count") or 1):
            return "condition_met"
    if until is not None and tick.now >= until:
        return "timed_out"
    # Milestones and KRs wake their waiters when they change (campaigns.wiring); events are also
    # polled hourly, so an event stored by any path ends the wait within the hour.
    recheck = tick.now + (EVENT_POLL if config.get("event") else dt.timedelta(days=1))
    _wait(enrollment, min(until, recheck) if until is not None else recheck)
    return None


def _branch(tick: Tick, enrollment: AnyEnrollment, step: StepSpec) -> bool:
    try:
        return holds(step.config["condition"], tick.facts_for(enrollment.account))
    except Exception:  # noqa: BLE001 - a condition that no longer evaluates takes the else path
        log.warning("branch %s of enrolment %s failed to evaluate", step.key, enrollment.id, exc_info=True)
        return False


def _wait(enrollment: AnyEnrollment, until: dt.datetime) -> None:
    enrollment.state = EnrollmentState.WAITING
    enrollment.next_run_at = until


def _log(enrollment: AnyEnrollment, now: dt.datetime, event: str, **details: Any) -> None:
    if isinstance(enrollment, EnrollmentRow):
        enrollment.history.append(entry_text(now, event, tuple(details.items())))
    else:
        enrollment.history = [*enrollment.history, log_entry(now, event, **details)]


@functools.lru_cache(maxsize=4096)
def entry_text(now: dt.datetime, event: str, details: tuple[tuple[str, Any], ...]) -> str:
    """A history entry as JSON, for the bulk tick: the same few entries (this moment, this step)
    repeat across thousands of enrolments, so each is encoded once."""
    return _dumps(log_entry(now, event, **dict(details)))


def _finish(enrollment: AnyEnrollment, now: dt.datetime, state: EnrollmentState, reason: str) -> None:
    enrollment.state = state
    enrollment.next_run_at = None
    enrollment.finished_at = now
    enrollment.exited_reason = reason if state != EnrollmentState.COMPLETED else None
    _log(enrollment, now, state.value, reason=reason)


def enrolled_because(enrollment: AnyEnrollment) -> Any:
    """What enrolled the account in its current run (the rule, the trigger, the API call)."""
    if isinstance(enrollment, EnrollmentRow):
        return None if enrollment.enrolled is None else json.loads(enrollment.enrolled)
    for entry in reversed(enrollment.history):
        if entry.get("event") in ("enrolled", "re-entered"):
            return entry.get("reason")
    return None


def dedupe_key(enrollment: AnyEnrollment, step: StepSpec, contact: AnyContact) -> str:
    entry = "" if enrollment.entry <= 1 else f".{enrollment.entry}"
    return f"{enrollment.id}{entry}:{step.id}:{contact.id}"


def ledger_fields(
    enrollment: AnyEnrollment, step: StepSpec, verdict: Verdict, enrolled: Any
) -> tuple[MessageStatus, str | None, dt.datetime | None, dict[str, Any]]:
    """A recipient's ledger row from its guards' results: status, reason, `not_before` and the
    trace (what enrolled the account, the step, every guard's result). Everything in it follows
    from the enrolment's run, the step and the verdict, so the bulk tick builds it once per
    distinct combination."""
    suppressed, holdout_detail, account_cap, contact_cap, opens = verdict
    holdout = "holdout" if holdout_detail != "pass" else None
    reason = suppressed or holdout or account_cap or contact_cap or None
    guards: list[list[str]] = [
        ["suppression", suppressed or "pass"],
        ["holdout", holdout_detail],
        ["account cap", account_cap or "pass"],
        ["contact cap", contact_cap or "pass"],
    ]
    if reason is None:
        guards.append(["send window", f"deferred until {opens.isoformat()}" if opens else "pass"])
    status = MessageStatus.SUPPRESSED if reason else MessageStatus.DEFERRED if opens else MessageStatus.QUEUED
    trace = {
        "enrolled": enrolled,
        "campaign_version": enrollment.campaign_version,
        "entry": enrollment.entry,
        "step": step.key,
        "guards": guards,
        "result": reason or ("deferred" if opens else "queued"),
    }
    return status, reason, opens, trace


def write_messages(tick: Tick, enrollment: AnyEnrollment, step: StepSpec, settings: dict[str, Any]) -> None:
    """One ledger row per recipient, with the result of every guard on it (the audit trail)."""
    account = enrollment.account
    category = str(settings.get("category") or "nurture")
    uses_caps = bool(settings.get("caps", True))
    caps = tick.caps
    account_cap = caps.account_capped(account.id) if uses_caps else None
    window = settings.get("send_window")
    if enrollment.held_out:
        holdout, holdout_detail = "holdout", "held out of this campaign"
    elif account.holdout_group:
        holdout, holdout_detail = "holdout", "in the global holdout group"
    else:
        holdout, holdout_detail = None, "pass"
    now = tick.now
    contacts: list[Any] = account.contacts
    sent_any = False
    for contact in contacts:
        if step.roles and contact.role not in step.roles:  # a ContactRole is equal to its value
            continue
        suppressed = tick.suppression(contact, category)
        contact_cap = caps.contact_capped(contact.id) if uses_caps else None
        reason = suppressed or holdout or account_cap or contact_cap or None
        opens = None
        if reason is None and window:
            opens = window_opens(window, contact_zone(contact, account), now)
        tick.add_message(
            enrollment, step, contact, (suppressed, holdout_detail, account_cap, contact_cap, opens)
        )
        if reason:
            tick.result.messages_suppressed += 1
            continue
        sent_any = True
        caps.messages[contact.id] += 1
        if opens:
            tick.result.messages_deferred += 1
        elif step.kind is StepKind.EMAIL:
            tick.result.messages_queued += 1
    if sent_any:
        caps.nudges[account.id] += 1
