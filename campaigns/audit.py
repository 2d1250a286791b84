"""Why a contact was (or was not) sent something: every enrolment of their account, every message to
them with each guard's result, and the message steps that wrote nothing for them, with the reason.

Everything here is read from what the scheduler already records (`Enrollment.history`,
`Message.trace`, the steps of each campaign version) and returned as plain, JSON-ready dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.models import RUNNABLE_STATES, Campaign, CampaignVersion, Enrollment, Message, Step, StepKind
from engine.accounts import Account, Contact
from engine.errors import Conflict, NotFound, ValidationFailed

MESSAGE_STEPS = (StepKind.EMAIL, StepKind.IN_APP)
MAX_MESSAGES = 1000
DEFAULT_MESSAGES = 200
START_EVENTS = ("enrolled", "re-entered")
END_EVENTS = ("completed", "exited", "failed")


def find_contact(
    session: Session,
    *,
    external_id: str | None = None,
    email: str | None = None,
    account: str | None = None,
) -> Contact:
    """A contact by its external id (optionally within one account), or by email within an account."""
    stmt = select(Contact).join(Account, Account.id == Contact.account_id)
    if account is not None:
        stmt = stmt.where(Account.external_id == account)
    if external_id is not None:
        stmt = stmt.where(Contact.external_id == external_id)
        wanted = f"external id {external_id!r}"
    elif email is not None:
        if account is None:
            raise ValidationFailed(
                {"account": "required with email: a person may be a contact of two accounts"}
            )
        stmt = stmt.where(Contact.email == email.strip().lower())
        wanted = f"email {email!r}"
    else:
        raise ValidationFailed({"email": "give the contact's external id, or email and account"})
    found = list(session.scalars(stmt.order_by(Contact.id).limit(2)))
    where = f" in account {account!r}" if account is not None else ""
    if not found:
        raise NotFound(f"no contact with {wanted}{where}")
    if len(found) > 1:
        raise Conflict(f"several contacts have {wanted}; add ?account=<account external id>")
    return found[0]


def contact_audit(session: Session, contact: Contact, *, limit: int = DEFAULT_MESSAGES) -> dict[str, Any]:
    """Every decision about `contact`: enrolments, messages (the latest `limit`), steps not sent."""
    account = contact.account
    enrollments = list(
        session.scalars(
            select(Enrollment).where(Enrollment.account_id == account.id).order_by(Enrollment.enrolled_at)
        )
    )
    campaigns = {c.id: c for c in session.scalars(select(Campaign).where(Campaign.id.in_(_ids(enrollments))))}
    categories = _categories(session, campaigns)
    steps = _steps(session, campaigns)
    by_id = {e.id: e for e in enrollments}
    total = int(session.scalar(select(func.count(Message.id)).where(Message.contact_id == contact.id)) or 0)
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.contact_id == contact.id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(max(1, min(limit, MAX_MESSAGES)))
        )
    )[::-1]
    step_of = {s.id: s for versions in steps.values() for s in versions}
    written: set[tuple[int, int, str]] = set()  # enrolment, entry, step key
    for m in messages:
        written.add((m.enrollment_id, int(m.trace.get("entry") or 1), str(m.trace.get("step") or "")))
    return {
        "contact": {
            "id": contact.id,
            "external_id": contact.external_id,
            "email": contact.email,
            "name": contact.name,
            "role": contact.role.value,
            "created_at": _iso(contact.created_at),
        },
        "account": {"id": account.id, "external_id": account.external_id, "name": account.name},
        "suppression": {
            "unsubscribed_at": _iso(contact.unsubscribed_at),
            "unsubscribed_categories": sorted(contact.unsubscribed_categories or []),
            "bounced_at": _iso(contact.bounced_at),
            "spam_reported_at": _iso(contact.spam_reported_at),
            "account_in_global_holdout": account.holdout_group,
        },
        "enrollments": [_enrollment(e, campaigns[e.campaign_id], categories) for e in enrollments],
        "messages": [
            _message(m, by_id.get(m.enrollment_id), campaigns, step_of.get(m.step_id)) for m in messages
        ],
        "messages_total": total,
        "messages_truncated": total > len(messages),
        "not_sent": [
            item
            for e in enrollments
            for item in _not_sent(contact, e, campaigns[e.campaign_id], steps, written, total > len(messages))
        ],
    }


def _ids(enrollments: Sequence[Enrollment]) -> list[int]:
    return sorted({e.campaign_id for e in enrollments})


def _categories(session: Session, campaigns: dict[int, Campaign]) -> dict[tuple[int, int], str]:
    if not campaigns:
        return {}
    return {
        (row.campaign_id, row.version): str((row.settings or {}).get("category") or "nurture")
        for row in session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id.in_(campaigns)))
    }


def _steps(session: Session, campaigns: dict[int, Campaign]) -> dict[tuple[int, int], list[Step]]:
    found: dict[tuple[int, int], list[Step]] = {}
    if campaigns:
        for step in session.scalars(
            select(Step).where(Step.campaign_id.in_(campaigns)).order_by(Step.version, Step.position)
        ):
            found.setdefault((step.campaign_id, step.version), []).append(step)
    return found


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment(text: str) -> dt.datetime | None:
    try:
        return _aware(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _entries(enrollment: Enrollment) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """The history split per entry (a re-entry starts over): (entry, version, events)."""
    segments: list[tuple[int, int, list[dict[str, Any]]]] = []
    for event in enrollment.history or []:
        if event.get("event") in START_EVENTS or not segments:
            number = int(event.get("entry") or len(segments) + 1)
            version = int(event.get("version") or 0)
            segments.append((number, version, []))
        segments[-1][2].append(event)
    last = len(segments) - 1
    return [
        (number, version or (enrollment.campaign_version if i == last else 0), events)
        for i, (number, version, events) in enumerate(segments)
    ]


def _enrolled_by(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("event") in START_EVENTS:
            return str(event.get("reason")) if event.get("reason") is not None else None
    return None


def _enrollment(
    enrollment: Enrollment, campaign: Campaign, categories: dict[tuple[int, int], str]
) -> dict[str, Any]:
    entries = _entries(enrollment)
    return {
        "id": enrollment.id,
        "campaign": campaign.key,
        "campaign_name": campaign.name,
        "category": categories.get((campaign.id, enrollment.campaign_version), "nurture"),
        "version": enrollment.campaign_version,
        "entry": enrollment.entry,
        "state": enrollment.state.value,
        "held_out": enrollment.held_out,
        "enrolled_at": _iso(enrollment.enrolled_at),
        "enrolled_by": _enrolled_by(entries[-1][2]) if entries else None,
        "finished_at": _iso(enrollment.finished_at),
        "exited_reason": enrollment.exited_reason,
        "next_run_at": _iso(enrollment.next_run_at),
        "transitions": [dict(event) for event in enrollment.history or []],
    }


def _message(
    message: Message, enrollment: Enrollment | None, campaigns: dict[int, Campaign], step: Step | None
) -> dict[str, Any]:
    trace = message.trace or {}
    campaign = campaigns.get(enrollment.campaign_id) if enrollment is not None else None
    guards = [
        {"name": str(name), "result": str(result), "passed": result == "pass"}
        for name, result in (trace.get("guards") or [])
    ]
    return {
        "id": message.id,
        "campaign": campaign.key if campaign else None,
        "campaign_name": campaign.name if campaign else None,
        "version": trace.get("campaign_version"),
        "entry": trace.get("entry"),
        "step": trace.get("step") or (step.key if step else None),
        "channel": message.channel,
        "status": message.status.value,
        "reason": message.reason,
        "subject": message.subject,
        "enrolled_by": trace.get("enrolled"),
        "guards": guards,
        "result": trace.get("result"),
        "created_at": _iso(message.created_at),
        "not_before": _iso(message.not_before),
        "sent_at": _iso(message.sent_at),
        "delivered_at": _iso(message.delivered_at),
        "opened_at": _iso(message.opened_at),
        "clicked_at": _iso(message.clicked_at),
    }


def _not_sent(
    contact: Contact,
    enrollment: Enrollment,
    campaign: Campaign,
    steps: dict[tuple[int, int], list[Step]],
    written: set[tuple[int, int, str]],
    truncated: bool,
) -> list[dict[str, Any]]:
    """Message steps of each entry that wrote nothing for this contact, and why (when knowable)."""
    found: list[dict[str, Any]] = []
    entries = _entries(enrollment)
    for number, version, events in entries:
        flow = steps.get((campaign.id, version), [])
        position = {s.key: i for i, s in enumerate(flow)}
        ran = {str(e["step"]): str(e.get("at")) for e in events if e.get("event") == "step_done"}
        skipped = _skipped(events, flow, position)
        ended = next((e for e in events if e.get("event") in END_EVENTS), None)
        current = number == enrollment.entry and enrollment.state in RUNNABLE_STATES
        for i, step in enumerate(flow):
            if step.kind not in MESSAGE_STEPS or (enrollment.id, number, step.key) in written:
                continue
            if truncated and step.key in ran:
                continue  # its message may be older than the ones listed
            reason = _why_not(contact, step, i, ran, skipped, ended, current, enrollment, flow)
            if reason is not None:
                found.append(
                    {
                        "campaign": campaign.key,
                        "campaign_name": campaign.name,
                        "version": version,
                        "entry": number,
                        "step": step.key,
                        "channel": step.kind.value,
                        "kind": reason[0],
                        "reason": reason[1],
                    }
                )
    return found


def _skipped(events: list[dict[str, Any]], flow: list[Step], position: dict[str, int]) -> dict[int, str]:
    """Step index → why a jump (a branch, a wait's timeout) went past it."""
    skipped: dict[int, str] = {}
    for event in events:
        start, target = position.get(str(event.get("step"))), None
        if start is None:
            continue
        if event.get("event") == "branch" and event.get("to") not in (None, "next"):
            target, why = str(event["to"]), f"skipped: branch {event['step']!r} went to {event['to']!r}"
        elif event.get("event") == "timed_out" and flow[start].config.get("on_timeout"):
            target = str(flow[start].config["on_timeout"])
            why = f"skipped: the wait {event['step']!r} timed out and went to {target!r}"
        if target is None:
            continue
        end = len(flow) if target == "exit" else position.get(target, start + 1)
        for i in range(start + 1, end):
            skipped.setdefault(i, why)
    return skipped


def _why_not(
    contact: Contact,
    step: Step,
    index: int,
    ran: dict[str, str],
    skipped: dict[int, str],
    ended: dict[str, Any] | None,
    current: bool,
    enrollment: Enrollment,
    flow: list[Step],
) -> tuple[str, str] | None:
    roles = [str(r) for r in step.config.get("to") or []]
    if roles and contact.role.value not in roles:
        goes_to = ", ".join(r.replace("_", " ") for r in roles)
        role = contact.role.value.replace("_", " ")
        return (
            "not_a_recipient",
            f"their role ({role}) is not a recipient of this step (it goes to {goes_to})",
        )
    if step.key in ran:
        at = _moment(ran[step.key])
        if at is not None and _aware(contact.created_at) > at:
            return "added_later", "they were added to the account after this step ran"
        return "unknown", "no message was written for them when this step ran (their role may have changed)"
    if index in skipped:
        return "skipped", skipped[index]
    if ended is not None:
        return "not_reached", f"not reached: {ended.get('reason') or ended.get('event')}"
    if current:
        waiting = flow[enrollment.current_step].key if enrollment.current_step < len(flow) else "the end"
        return "pending", f"not yet: the enrolment is at step {waiting!r}"
    return None
