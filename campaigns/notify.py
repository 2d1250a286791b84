"""Tell a plan's owner on our side when the customer changes it (a KR value, a milestone done, a
comment, a confirmed review on the shared page).

The owner is the account's `owner_email` trait (the CSM or pooled team that looks after it), else
the workspace's `NORTHSTAR_OPS_EMAIL`; with neither, the change stays visible in the console's plan
history and nothing is sent. The job takes the revision id, claims it (`notified_at`) before
sending, so a retried or duplicated job never sends twice (at most once: a crash between the claim
and the send loses that one notification, which the console's history still shows).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from campaigns.mail import BulkEmail, MailBackend, Recipient
from engine.config import Settings
from engine.db import Database
from engine.plans.models import PlanRevision
from engine.queue import enqueue_after_commit

log = logging.getLogger(__name__)
CUSTOMER_CHANNELS = ("shared",)


def owner_email(settings: Settings, traits: dict[str, Any]) -> str | None:
    owner = traits.get("owner_email")
    return str(owner) if isinstance(owner, str) and "@" in owner else settings.ops_email


def on_plan_updated(
    _sender: object, *, session: Session, revision_id: int | None, channel: str, **_: Any
) -> None:
    if revision_id is not None and channel in CUSTOMER_CHANNELS:
        from campaigns.jobs import notify_owner_job

        enqueue_after_commit(session, "default", notify_owner_job, revision_id)


def notify_owner(database: Database, backend: MailBackend, revision_id: int, *, now: dt.datetime) -> bool:
    """Send the owner one email about this revision; False when already done or nobody to tell."""
    settings = database.settings
    with database.transaction() as session:
        claimed = session.execute(
            update(PlanRevision)
            .where(PlanRevision.id == revision_id, PlanRevision.notified_at.is_(None))
            .values(notified_at=now)
            .returning(PlanRevision.id)
        ).first()
        if claimed is None:
            return False
        revision = session.get(PlanRevision, revision_id)
        assert revision is not None
        account = revision.plan.account
        to = owner_email(settings, dict(account.traits or {}))
        if to is None:
            log.info(
                "plan %s changed (%s); no owner_email or NORTHSTAR_OPS_EMAIL to tell",
                revision.plan_id,
                revision.summary,
            )
            return False
        link = f"{settings.public_url}/admin/plans/{revision.plan_id}"
        comment = revision.change.get("comment") if isinstance(revision.change, dict) else None
        subject = f"{account.name} updated their success plan: {revision.summary}"[:290]
        text = (
            f"{account.name} changed their success plan on the shared page.\n\n{revision.summary}\n"
            + (f"\n\u201c{comment}\u201d\n" if comment else "")
            + f"\nOpen the plan: {link}\n"
        )
        body = (
            f"<p>{html.escape(account.name)} changed their success plan on the shared page.</p>"
            f"<p><strong>{html.escape(revision.summary)}</strong></p>"
            + (f"<blockquote>{html.escape(str(comment))}</blockquote>" if comment else "")
            + f'<p><a href="{html.escape(link)}">Open the plan</a></p>'
        )
    backend.send(
        BulkEmail(
            settings.mail_from,
            body,
            text,
            [Recipient(message_id=0, email=to, name="", subject=subject, substitutions={})],
            category="plan_update",
        )
    )
    return True
