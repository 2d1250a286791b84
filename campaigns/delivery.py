"""Delivery of one batch: claim queued rows, compose once per step, send, record the outcome."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from campaigns.mail import (
    AmbiguousSendError,
    BulkEmail,
    MailBackend,
    PermanentSendError,
    Recipient,
    TransientSendError,
)
from campaigns.models import Campaign, Enrollment, Message, MessageStatus, Step
from campaigns.unsubscribe import unsubscribe_token
from content.emails import (
    compose_email,
    personalise,
    recipient_substitutions,
    survey_option_path,
    used_substitution_tokens,
)
from content.models import ContentItem
from content.recipients import Links, recipient_values
from content.recommend import Recommender
from content.tracking import record_sends
from engine.config import Settings
from engine.db import Database
from engine.errors import NotFound, ValidationFailed
from engine.plans.models import PlanStatus, SuccessPlan
from engine.templating import TemplateFailed
from surveys.links import answer_link, one_click_question

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0


def claim(session: Session, message_ids: list[int], now: dt.datetime) -> list[int]:
    """queued → sending, atomically; rows another worker claimed (or already sent) are skipped."""
    rows = session.scalars(
        update(Message)
        .where(Message.id.in_(message_ids), Message.status == MessageStatus.QUEUED)
        .values(status=MessageStatus.SENDING, updated_at=now)
        .returning(Message.id)
    )
    return list(rows)


def deliver(
    database: Database, backend: MailBackend, message_ids: list[int], *, now: dt.datetime
) -> DeliveryResult:
    """Safe to run twice: only rows still `queued` are claimed and sent."""
    result = DeliveryResult()
    with database.transaction() as session:
        claimed = claim(session, message_ids, now)
    result.claimed = len(claimed)
    if not claimed:
        return result
    with database.session() as session:
        messages = list(
            session.scalars(
                select(Message)
                .where(Message.id.in_(claimed))
                .options(
                    selectinload(Message.contact),
                    selectinload(Message.step).selectinload(Step.campaign),
                    selectinload(Message.enrollment).selectinload(Enrollment.account),
                )
            )
        )
        by_step: dict[tuple[int, str], list[Message]] = {}
        for message in messages:  # one composition per step and locale (content.templates falls back)
            by_step.setdefault((message.step_id, message.contact.locale or "en"), []).append(message)
        outcomes: dict[int, tuple[MessageStatus, str | None, str | None]] = {}
        content_sends: list[tuple[int, int, int]] = []
        transient: TransientSendError | None = None
        for group in by_step.values():
            try:
                email, group = begin_attempt(
                    database, _bulk_email(session, database.settings, group), group, now
                )
                if not group:
                    continue
                provider_id = backend.send(email)
            except (TemplateFailed, ValidationFailed, NotFound) as exc:  # a survey no longer one-click
                _record(outcomes, group, MessageStatus.FAILED, f"render failed: {exc.detail}")
            except PermanentSendError as exc:
                _record(outcomes, group, MessageStatus.FAILED, str(exc))
            except AmbiguousSendError as exc:
                log.warning("batch of %d: %s; marked unknown for reconciliation", len(group), exc)
                _record(outcomes, group, MessageStatus.UNKNOWN, str(exc))
            except TransientSendError as exc:
                log.warning("batch of %d: %s; back to queued for retry", len(group), exc)
                _record(outcomes, group, MessageStatus.QUEUED, str(exc))
                transient = exc
            else:
                _record(outcomes, group, MessageStatus.SENT, None, provider_id)
                contact_of = {m.id: m.contact_id for m in group}
                content_sends += [
                    (r.message_id, item, contact_of[r.message_id])
                    for r in email.recipients
                    for item in r.content_ids
                ]
    _record_outcomes(database, outcomes, now)
    if content_sends:
        with database.transaction() as session:
            record_sends(session, content_sends, now=now)
    for status, _reason, _pid in outcomes.values():
        if status == MessageStatus.SENT:
            result.sent += 1
        elif status == MessageStatus.FAILED:
            result.failed += 1
        elif status == MessageStatus.UNKNOWN:
            result.unknown += 1
    if transient is not None:
        raise transient  # RQ's Retry re-runs the job; the rows are `queued` again
    return result


def begin_attempt(
    database: Database, email: BulkEmail, group: list[Message], now: dt.datetime
) -> tuple[BulkEmail, list[Message]]:
    """Stamp `sent_at` on the claimed rows (committed) just before the request: a crash after this
    leaves the outcome unknowable, before it the rows can be sent again (campaigns.recovery).
    Rows recovery took back meanwhile are dropped from the request, so only one attempt wins."""
    with database.transaction() as session:
        attempted = set(
            session.scalars(
                update(Message)
                .where(
                    Message.id.in_([m.id for m in group]),
                    Message.status == MessageStatus.SENDING,
                    Message.sent_at.is_(None),
                )
                .values(sent_at=now, updated_at=now)
                .returning(Message.id)
            )
        )
    if len(attempted) == len(group):
        return email, group
    log.warning(
        "%d of %d claimed rows were recovered meanwhile; not sent", len(group) - len(attempted), len(group)
    )
    kept = [r for r in email.recipients if r.message_id in attempted]
    return replace(email, recipients=kept), [m for m in group if m.id in attempted]


def _record_outcomes(
    database: Database, outcomes: dict[int, tuple[MessageStatus, str | None, str | None]], now: dt.datetime
) -> None:
    """One UPDATE per distinct outcome (a whole batch usually shares one), not one per message."""
    groups: dict[tuple[MessageStatus, str | None, str | None], list[int]] = {}
    for message_id, outcome in outcomes.items():
        groups.setdefault(outcome, []).append(message_id)
    with database.transaction() as session:
        for (status, reason, sent_as), ids in groups.items():
            values: dict[str, object] = {"status": status, "reason": reason, "updated_at": now}
            if status == MessageStatus.SENT:
                values.update(sent_at=now, provider_message_id=sent_as)
            elif status == MessageStatus.QUEUED:
                values.update(sent_at=None)  # the provider refused it: nothing went out, no attempt stands
            # Only rows still in flight: a webhook event may already have moved one on (delivered,
            # bounced), and an outcome recorded after it must not move it back.
            in_flight = Message.status.in_((MessageStatus.SENDING, MessageStatus.UNKNOWN))
            session.execute(update(Message).where(Message.id.in_(ids), in_flight).values(**values))


def _record(
    outcomes: dict[int, tuple[MessageStatus, str | None, str | None]],
    group: list[Message],
    status: MessageStatus,
    reason: str | None,
    provider_id: str | None = None,
) -> None:
    for message in group:
        outcomes[message.id] = (status, reason, provider_id)


def _bulk_email(session: Session, settings: Settings, group: list[Message]) -> BulkEmail:
    step = group[0].step
    campaign: Campaign = step.campaign
    survey = one_click_question(session, str(step.config["survey"])) if step.config.get("survey") else None
    composed = compose_email(
        session,
        str(step.config["template"]),
        content_keys=list(step.config.get("content") or []),
        campaign_name=campaign.name,
        postal_address=settings.postal_address,
        survey=survey,
        locale=group[0].contact.locale,
        recommend=step.config.get("recommend") == "next_milestone",
    )
    plans = _plans(session, {m.enrollment.account_id for m in group})
    used_tokens = used_substitution_tokens(composed)
    recommender = (
        Recommender(session, contact_ids=[m.contact_id for m in group]) if composed.uses_recommended else None
    )
    fallback = session.get(ContentItem, composed.content_ids[0]) if composed.content_ids else None
    links = Links(settings.public_url, settings.secret_key)
    recipients = []
    for message in group:
        contact, account = message.contact, message.enrollment.account
        plan = plans.get(account.id)
        unsubscribe_url = f"{settings.public_url}/u/{unsubscribe_token(settings.secret_key, contact.id)}"
        top = (
            recommender.recommend(
                plan, contact, 1, for_next_milestone=True, exclude=step.config.get("content") or ()
            )
            if recommender
            else []
        )
        values = recipient_values(
            contact,
            account,
            plan,
            links=links,
            unsubscribe_url=unsubscribe_url,
            email=composed,
            message_id=message.id,
            recommended=top[0] if top else None,
            fallback=fallback,
        )
        if survey is not None:  # each recipient's own signed answer links
            for option in survey.options:
                values[survey_option_path(option.value)] = answer_link(
                    settings, contact, survey.version, survey.question_key, option.value
                )
        substitutions = recipient_substitutions(values)
        recipients.append(
            Recipient(
                message_id=message.id,
                email=contact.email,
                name=contact.name,
                subject=personalise(composed.subject, substitutions),
                substitutions={k: v for k, v in substitutions.items() if k in used_tokens},
                headers={
                    "List-Unsubscribe": f"<{unsubscribe_url}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                content_ids=(*composed.content_ids, *([top[0].item.id] if top else [])),
            )
        )
    return BulkEmail(settings.mail_from, composed.html, composed.text, recipients, category=campaign.key)


def _plans(session: Session, account_ids: set[int]) -> dict[int, SuccessPlan]:
    plans = session.scalars(
        select(SuccessPlan)
        .where(SuccessPlan.account_id.in_(account_ids), SuccessPlan.status == PlanStatus.ACTIVE)
        .options(selectinload(SuccessPlan.milestones))
    )
    return {p.account_id: p for p in plans}
