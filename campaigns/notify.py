"""Tell a plan's owner on our side when the customer changes it (a KR value, a milestone done, a
comment, a confirmed review on the shared page).

The owner is the account's `owner_email` trait (the CSM or pooled team that looks after it), else
the workspace's `NORTHSTAR_OPS_EMAIL`; with neither, the change stays visible in the console's plan
history and nothing is sent. The job takes the revision id, claims it (`notified_at`) before
sending, so a retried or duplicated job never sends twice (at most once: a crash between the claim
and the send loses that one notification, which the console's history still shows). A job that
was never queued (Redis lost at the commit, a flushed queue) is queued again by the scheduler's
sweep (`sweep_unnotified`): the revision still has no `notified_at`.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import Any

from sqlalchemy import Index, select, text, update
from sqlalchemy.orm import Session

from campaigns.mail import BulkEmail, MailBackend, Recipient
from engine.config import Settings
from engine.db import Database
from engine.plans.models import PlanRevision
from engine.queue import enqueue_after_commit

log = logging.getLogger(__name__)
CUSTOMER_CHANNELS = ("shared",)
UNNOTIFIED = "channel = 'shared' AND notified_at IS NULL"  # as a literal: the partial index's own words
# Only the customer changes whose owner has not been told (migration 0021): the sweep's scan stays a
# few rows however long the plans' history grows.
Index(
    "ix_plan_revisions_unnotified",
    PlanRevision.created_at,
    postgresql_where=text(UNNOTIFIED),
    sqlite_where=text(UNNOTIFIED),
)
LOST_AFTER = dt.timedelta(minutes=2)  # a job queued at the commit has run by then
GIVE_UP_AFTER = dt.timedelta(days=1)  # older news is in the console's history; no email about it
SWEEP_LIMIT = 500


def owner_email(settings: Settings, traits: dict[str, Any]) -> str | None:
    owner = traits.get("owner_email")
    return str(owner) if isinstance(owner, str) and "@" in owner else settings.ops_email


def on_plan_updated(
    _sender: object, *, session: Session, revision_id: int | None, channel: str, **_: Any
) -> None:
    if revision_id is not None and channel in CUSTOMER_CHANNELS:
        from campaigns.jobs import notify_owner_job

        enqueue_after_commit(session, "default", notify_owner_job, revision_id)


def sweep_unnotified(session: Session, *, now: dt.datetime) -> int:
    """Queue the owner's notification again for customer changes older than LOST_AFTER (and younger
    than GIVE_UP_AFTER) whose job never ran. A job that merely runs late finds its revision claimed
    and sends nothing, so a duplicate is harmless."""
    from campaigns.jobs import notify_owner_job

    lost = session.scalars(
        select(PlanRevision.id)
        .where(
            text(UNNOTIFIED),  # one table in the query: its columns need no prefix
            PlanRevision.created_at < now - LOST_AFTER,
            PlanRevision.created_at >= now - GIVE_UP_AFTER,
        )
        .order_by(PlanRevision.created_at)
        .limit(SWEEP_LIMIT)
    ).all()
    for revision_id in lost:
        enqueue_after_commit(session, "default", notify_owner_job, revision_id)
    return len(lost)


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
