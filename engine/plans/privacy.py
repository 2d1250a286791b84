"""What plans hold about a contact: the plan revisions they made (actor is their email)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.plans.models import PlanRevision
from engine.privacy import PrivacyProvider, iso

ERASED_ACTOR = "erased contact"


def _revisions(session: Session, contact: Contact) -> list[PlanRevision]:
    return list(
        session.scalars(
            select(PlanRevision)
            .where(func.lower(PlanRevision.actor) == contact.email.strip().lower())
            .order_by(PlanRevision.id)
        )
    )


def export_plan_contributions(session: Session, contact: Contact) -> dict[str, Any]:
    return {
        "revisions": [
            {
                "id": r.id,
                "plan_id": r.plan_id,
                "channel": r.channel,
                "summary": r.summary,
                "change": r.change,
                "created_at": iso(r.created_at),
            }
            for r in _revisions(session, contact)
        ]
    }


def _scrub(value: Any, email: str) -> Any:
    if isinstance(value, str):
        return re.sub(re.escape(email), "(erased)", value, flags=re.IGNORECASE)
    if isinstance(value, dict):
        return {k: _scrub(v, email) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, email) for v in value]
    return value


def erase_plan_contributions(session: Session, contact: Contact, _now: dt.datetime) -> dict[str, int]:
    """Their revisions stay in the plan's history (the plan changed), attributed to nobody."""
    email = contact.email.strip().lower()
    revisions = _revisions(session, contact)
    for revision in revisions:
        revision.actor = ERASED_ACTOR
        revision.summary = _scrub(revision.summary, email)
        revision.change = _scrub(revision.change, email)
    return {"revisions_anonymised": len(revisions)}


PROVIDER = PrivacyProvider("plans", export_plan_contributions, erase_plan_contributions)
