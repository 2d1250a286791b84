"""What campaigns hold about a contact: every message to them (status, guards' trace, timestamps),
their in-app inbox, and the provider's webhook events about those messages.

Erasing keeps the messages as anonymised counts (`erased_message_counts`: account, campaign, step,
channel, status, count), so a campaign's history still shows how many were sent, opened or
suppressed; the message rows themselves go (subjects are personalised, traces name the person)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from campaigns.models import Campaign, Enrollment, Message, Step, StepKind, WebhookEvent
from engine.accounts import Contact
from engine.db import Base, utcnow
from engine.privacy import PrivacyProvider, iso


class ErasedMessageCount(Base):
    __tablename__ = "erased_message_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    step_key: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    count: Mapped[int]
    erased_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def _messages(session: Session, contact: Contact) -> list[tuple[Message, Enrollment, Step, Campaign]]:
    rows = session.execute(
        select(Message, Enrollment, Step, Campaign)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .join(Step, Step.id == Message.step_id)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Message.contact_id == contact.id)
        .order_by(Message.id)
    )
    return [(m, e, s, c) for m, e, s, c in rows]


def export_campaign_data(session: Session, contact: Contact) -> dict[str, Any]:
    messages = []
    inbox = []
    rows = _messages(session, contact)
    events: dict[int, list[dict[str, Any]]] = {}
    if rows:
        for event in session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.message_id.in_([m.id for m, *_ in rows]))
            .order_by(WebhookEvent.id)
        ):
            assert event.message_id is not None
            events.setdefault(event.message_id, []).append(
                {"event": event.event, "occurred_at": iso(event.occurred_at), "payload": event.payload}
            )
    for message, enrollment, step, campaign in rows:
        item = {
            "id": message.id,
            "campaign": campaign.key,
            "campaign_name": campaign.name,
            "enrollment_id": enrollment.id,
            "step": step.key,
            "channel": message.channel,
            "status": message.status.value,
            "reason": message.reason,
            "template": message.template_key,
            "subject": message.subject,
            "created_at": iso(message.created_at),
            "sent_at": iso(message.sent_at),
            "delivered_at": iso(message.delivered_at),
            "opened_at": iso(message.opened_at),
            "clicked_at": iso(message.clicked_at),
            "trace": message.trace,
            "provider_events": events.get(message.id, []),
        }
        messages.append(item)
        if step.kind == StepKind.IN_APP:
            inbox.append(
                {
                    "message_id": message.id,
                    "campaign": campaign.key,
                    "status": message.status.value,
                    "seen_at": iso(message.seen_at),
                    "dismissed_at": iso(message.dismissed_at),
                    "clicked_at": iso(message.clicked_at),
                }
            )
    return {
        "messages": messages,
        "inbox": inbox,
        "suppression": {
            "unsubscribed_at": iso(contact.unsubscribed_at),
            "unsubscribed_categories": list(contact.unsubscribed_categories or []),
            "bounced_at": iso(contact.bounced_at),
            "spam_reported_at": iso(contact.spam_reported_at),
        },
    }


def erase_campaign_data(session: Session, contact: Contact, now: dt.datetime) -> dict[str, int]:
    rows = _messages(session, contact)
    counts: Counter[tuple[int, int, str, str, str]] = Counter(
        (enrollment.account_id, campaign.id, step.key, message.channel, message.status.value)
        for message, enrollment, step, campaign in rows
    )
    for (account_id, campaign_id, step_key, channel, status), n in counts.items():
        session.add(
            ErasedMessageCount(
                account_id=account_id,
                campaign_id=campaign_id,
                step_key=step_key,
                channel=channel,
                status=status,
                count=n,
                erased_at=now,
            )
        )
    ids = [m.id for m, *_ in rows]
    scrubbed = 0
    if ids:
        # Provider events name the recipient; their ids stay so a replayed event is still a duplicate.
        result = session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.message_id.in_(ids))
            .values(payload={}, message_id=None)
            .execution_options(synchronize_session=False)
        )
        scrubbed = int(getattr(result, "rowcount", 0) or 0)
        for message, *_ in rows:
            session.expunge(message)
        session.execute(
            delete(Message).where(Message.id.in_(ids)).execution_options(synchronize_session=False)
        )
    session.flush()
    return {"messages_counted": len(ids), "count_rows": len(counts), "provider_events_scrubbed": scrubbed}


PROVIDER = PrivacyProvider("campaigns", export_campaign_data, erase_campaign_data)
