"""The in-app inbox: a contact's visible in-app messages, and what they did with them.

A scheduler tick writes in-app messages as `queued` (or `deferred` until the send window opens,
then `queued`). The widget's first fetch shows them and marks them `seen`; the contact may then
click a link in one (`clicked`) or dismiss it (`dismissed`). Only `queued` and `seen` messages are
shown: suppressed, deferred and failed ones never, clicked and dismissed ones never again.
Cards are rendered when fetched, so they show the plan as it is now.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from campaigns.models import Enrollment, Message, MessageStatus, Step, StepKind
from content.inapp import CardReader, card_content, in_app_templates, render_card, step_content
from engine.accounts import Contact
from engine.errors import NotFound
from engine.plans.models import MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.sharing import plan_token
from engine.templating import TemplateFailed

log = logging.getLogger(__name__)

INBOX_LIMIT = 20
VISIBLE = (MessageStatus.QUEUED, MessageStatus.SEEN)
ACTIONS = {"clicked": MessageStatus.CLICKED, "dismissed": MessageStatus.DISMISSED}
INBOX_STRINGS: dict[str, dict[str, str]] = {
    "en": {"title": "Messages", "dismiss": "Dismiss"},
    "de": {"title": "Nachrichten", "dismiss": "Ausblenden"},
}


@dataclass(frozen=True)
class InboxMessage:
    id: int
    html: str
    created_at: dt.datetime
    status: MessageStatus  # as it was before this fetch: `queued` means new to the reader


@dataclass(frozen=True)
class Links:
    """Where plan links point: the public address and the key that signs share tokens."""

    public_url: str
    secret_key: str


def inbox_strings(locale: str) -> dict[str, str]:
    language = (locale or "en").split("-")[0].lower()
    return {**INBOX_STRINGS["en"], **INBOX_STRINGS.get(language, {})}


def open_inbox(session: Session, contact: Contact, *, links: Links, now: dt.datetime) -> list[InboxMessage]:
    """The contact's visible in-app messages, newest first (at most INBOX_LIMIT), marked `seen`.

    A message whose template no longer renders is marked `failed` with the reason, and skipped."""
    stmt = (
        select(Message)
        .where(
            Message.contact_id == contact.id,
            Message.channel == StepKind.IN_APP.value,
            Message.status.in_(VISIBLE),
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(INBOX_LIMIT)
        .options(
            selectinload(Message.step).selectinload(Step.campaign),
            selectinload(Message.enrollment).selectinload(Enrollment.account),
        )
    )
    # Two tabs fetching at once: the second waits, then sees the first's `seen` marks.
    messages = list(session.scalars(stmt.with_for_update(of=Message)))
    if not messages:
        return []
    # In the contact's locale, else the default locale's (content.library.best_locale).
    locale = contact.locale or None
    templates = in_app_templates(session, {m.template_key or "" for m in messages}, locale)
    content = card_content(session, {k for m in messages for k in m.step.config.get("content") or []}, locale)
    plans = _active_plans(session, {m.enrollment.account_id for m in messages})
    shown: list[InboxMessage] = []
    for message in messages:
        account = message.enrollment.account
        reader = _reader(contact, account.name, plans.get(account.id), message.step.campaign.name, links)
        try:
            template = templates.get(message.template_key or "")
            if template is None:
                raise NotFound(f"no in_app template {message.template_key!r}")
            field = f"templates.{template.key}.body"
            items = step_content(content, list(message.step.config.get("content") or []))
            fragment = render_card(template.body, reader, items, field=field)
        except (TemplateFailed, NotFound) as exc:
            log.warning("in-app message %s not shown: %s", message.id, exc.detail)
            message.status, message.reason, message.updated_at = MessageStatus.FAILED, _reason(exc), now
            continue
        shown.append(InboxMessage(message.id, fragment, message.created_at, message.status))
        if message.status is MessageStatus.QUEUED:
            message.status, message.seen_at, message.updated_at = MessageStatus.SEEN, now, now
    session.flush()
    return shown


def record_action(
    session: Session, contact: Contact, message_id: int, action: str, *, now: dt.datetime
) -> Message:
    """`clicked` or `dismissed`, on one of the contact's shown messages; safe to repeat.

    Other contacts' messages, and messages that were never shown (suppressed, deferred, failed),
    are not found. A dismissal is final: a later click is recorded (clicked_at) but the message
    stays dismissed."""
    status = ACTIONS.get(action)
    message = session.scalar(
        select(Message)
        .where(
            Message.id == message_id,
            Message.contact_id == contact.id,
            Message.channel == StepKind.IN_APP.value,
            Message.status.in_((*VISIBLE, MessageStatus.CLICKED, MessageStatus.DISMISSED)),
        )
        .with_for_update()
    )
    if status is None or message is None:
        raise NotFound(f"no in-app message {message_id} for this contact")
    if message.seen_at is None:
        message.seen_at = now
    if status is MessageStatus.CLICKED:
        message.clicked_at = message.clicked_at or now
    else:
        message.dismissed_at = message.dismissed_at or now
    if message.status is not MessageStatus.DISMISSED:
        message.status = status
    message.updated_at = now
    session.flush()
    return message


def _reason(exc: TemplateFailed | NotFound) -> str:
    return f"render failed: {exc.detail}"[:300]


def _active_plans(session: Session, account_ids: set[int]) -> dict[int, SuccessPlan]:
    plans = session.scalars(
        select(SuccessPlan)
        .where(SuccessPlan.account_id.in_(account_ids), SuccessPlan.status == PlanStatus.ACTIVE)
        .options(selectinload(SuccessPlan.milestones))
    )
    return {p.account_id: p for p in plans}


def _reader(
    contact: Contact, account_name: str, plan: SuccessPlan | None, campaign_name: str, links: Links
) -> CardReader:
    next_milestone = (
        next((m for m in plan.milestones if m.status != MilestoneStatus.ACHIEVED), None) if plan else None
    )
    return CardReader(
        first_name=contact.first_name,
        name=contact.name or contact.first_name,
        account_name=account_name,
        plan_goal=plan.goal if plan else "",
        plan_url=f"{links.public_url}/p/{plan_token(links.secret_key, plan)}" if plan else links.public_url,
        plan_review_date=plan.review_date.strftime("%B %d, %Y") if plan else "",
        next_milestone_title=next_milestone.title if next_milestone else "",
        next_milestone_due_date=next_milestone.due_date.strftime("%B %d") if next_milestone else "",
        campaign_name=campaign_name,
    )
