"""Enrolment: idempotent entry of an account into a campaign, and waking it on plan signals."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, EnrollmentState
from engine import refcache
from engine.errors import NotFound

refcache.watch(Campaign.__tablename__)


def get_campaign(session: Session, key: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.key == key))
    if campaign is None:
        raise NotFound(f"no campaign {key!r}")
    return campaign


def campaign_ids(session: Session) -> dict[str, int]:
    """Campaign key → id (cached reference data)."""

    def load() -> dict[str, int]:
        return {key: campaign_id for key, campaign_id in session.execute(select(Campaign.key, Campaign.id))}

    return refcache.cached(session, "campaign_ids", load)


def enroll_account(
    session: Session, account_id: int, campaign_key: str, *, now: dt.datetime, reason: str
) -> tuple[Enrollment, bool]:
    """Enrol once: an account already in the campaign keeps its enrolment (returns created=False)."""
    campaign_id = campaign_ids(session).get(campaign_key)
    if campaign_id is None:
        raise NotFound(f"no campaign {campaign_key!r}")
    existing = session.scalar(
        select(Enrollment).where(Enrollment.account_id == account_id, Enrollment.campaign_id == campaign_id)
    )
    if existing is not None:
        return existing, False
    enrollment = Enrollment(
        account_id=account_id,
        campaign_id=campaign_id,
        state=EnrollmentState.ACTIVE,
        current_step=0,
        step_started_at=now,
        next_run_at=now,
        enrolled_at=now,
        history=[log_entry(now, "enrolled", reason=reason)],
    )
    session.add(enrollment)
    session.flush()
    return enrollment, True


def exit_account(
    session: Session, account_id: int, campaign_key: str, *, now: dt.datetime, reason: str
) -> Enrollment | None:
    """Take an account out of a campaign (a rule's `exit`); no-op when not in it or already out."""
    campaign_id = campaign_ids(session).get(campaign_key)
    if campaign_id is None:
        raise NotFound(f"no campaign {campaign_key!r}")
    enrollment = session.scalar(
        select(Enrollment).where(Enrollment.account_id == account_id, Enrollment.campaign_id == campaign_id)
    )
    if enrollment is None or enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.WAITING):
        return None
    enrollment.state = EnrollmentState.EXITED
    enrollment.next_run_at = None
    enrollment.history = [*enrollment.history, log_entry(now, "exited", reason=reason)]
    session.flush()
    return enrollment


def wake_waiting_enrollments(session: Session, account_id: int, *, now: dt.datetime) -> int:
    """A plan signal arrived: let the next tick re-check this account's waiting steps now."""
    result = session.execute(
        update(Enrollment)
        .where(Enrollment.account_id == account_id, Enrollment.state == EnrollmentState.WAITING)
        .values(next_run_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def log_entry(now: dt.datetime, event: str, **details: Any) -> dict[str, Any]:
    return {"at": now.isoformat(), "event": event, **details}
