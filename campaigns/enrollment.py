"""Enrolment: idempotent entry of an account into a campaign, and waking it on plan signals."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session

from campaigns.guards import held_out
from campaigns.models import Campaign, CampaignVersion, Enrollment, EnrollmentState
from engine import db, refcache
from engine.errors import NotFound

log = logging.getLogger(__name__)

refcache.watch(Campaign.__tablename__, CampaignVersion.__tablename__)


def get_campaign(session: Session, key: str) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.key == key))
    if campaign is None:
        raise NotFound(f"no campaign {key!r}")
    return campaign


@dataclass(frozen=True)
class CampaignRef:
    id: int
    key: str
    version: int
    paused: bool
    settings: dict[str, Any]


def campaign_refs(session: Session) -> dict[str, CampaignRef]:
    """Campaign key → its id, current version and that version's settings (cached reference data)."""

    def load() -> dict[str, CampaignRef]:
        settings = {
            (cid, version): dict(values or {})
            for cid, version, values in session.execute(
                select(CampaignVersion.campaign_id, CampaignVersion.version, CampaignVersion.settings)
            )
        }
        return {
            key: CampaignRef(cid, key, version, paused, settings.get((cid, version), {}))
            for cid, key, version, paused in session.execute(
                select(Campaign.id, Campaign.key, Campaign.version, Campaign.paused)
            )
        }

    return refcache.cached(session, "campaign_refs", load)


def campaign_ids(session: Session) -> dict[str, int]:
    """Campaign key → id (cached reference data)."""
    return {key: ref.id for key, ref in campaign_refs(session).items()}


_KNOWN = "northstar.known_enrollments"  # account id → {campaign id → Enrollment}, for this transaction


def prefetch_enrollments(session: Session, account_ids: Collection[int]) -> None:
    """Read the enrolments of `account_ids` in one statement, so `enroll_account` and
    `exit_account` need not each ask (the `rules` job decides for a batch of accounts). Kept
    until the transaction ends or any statement that could change enrolments behind the
    session's back (a bulk UPDATE, raw SQL) runs; what they create is added as they go."""
    known: dict[int, dict[int, Enrollment]] = {account_id: {} for account_id in account_ids}
    if not known:
        return
    for enrollment in session.scalars(select(Enrollment).where(Enrollment.account_id.in_(known))):
        known[enrollment.account_id][enrollment.campaign_id] = enrollment
    session.info.setdefault(_KNOWN, {}).update(known)


def _existing(session: Session, account_id: int, campaign_id: int) -> Enrollment | None:
    known: dict[int, Enrollment] | None = session.info.get(_KNOWN, {}).get(account_id)
    if known is not None:
        return known.get(campaign_id)
    return session.scalar(
        select(Enrollment).where(Enrollment.account_id == account_id, Enrollment.campaign_id == campaign_id)
    )


def _forget_known(session: Session, *_: Any) -> None:
    session.info.pop(_KNOWN, None)


@event.listens_for(Session, "do_orm_execute")
def _statement_run(state: ORMExecuteState) -> None:
    if not state.is_select and _KNOWN in state.session.info:
        _forget_known(state.session)


for _name in ("after_commit", "after_rollback", "after_soft_rollback"):
    event.listen(Session, _name, _forget_known)


def enroll_account(
    session: Session, account_id: int, campaign_key: str, *, now: dt.datetime, reason: str
) -> tuple[Enrollment, bool]:
    """Enrol once, on the campaign's current version. An account already in the campaign keeps its
    enrolment (created=False), unless it finished and the campaign lets it re-enter after
    `reentry_days`: then the same row starts over on the current version (entry + 1).
    Held-out accounts (a stable hash share, `holdout_percent`) are enrolled but never messaged.

    A paused campaign enrols no one and lets no one re-enter (logged): an account already in it
    keeps its enrolment, unchanged (created=False); one that is not gets an Enrollment that is
    never stored (state `exited`, `exited_reason` saying the campaign is paused, no id).
    The scheduler holds the running enrolments of a paused campaign (campaigns.scheduler)."""
    ref = campaign_refs(session).get(campaign_key)
    if ref is None:
        raise NotFound(f"no campaign {campaign_key!r}")
    existing = _existing(session, account_id, ref.id)
    if ref.paused:
        log.info(
            "campaign %r is paused: account %s not enrolled (%s)%s",
            ref.key,
            account_id,
            reason,
            "" if existing is None else f"; its enrolment {existing.id} is unchanged",
        )
        return (
            existing if existing is not None else _not_enrolled(session, account_id, ref, now, reason)
        ), False
    if existing is not None:
        reentry = ref.settings.get("reentry_days")
        finished = existing.finished_at
        if (
            reentry is None
            or existing.state in (EnrollmentState.ACTIVE, EnrollmentState.WAITING)
            or finished is None
            or now < finished + dt.timedelta(days=int(reentry))
        ):
            return existing, False
        existing.entry += 1
        existing.campaign_version = ref.version
        existing.state = EnrollmentState.ACTIVE
        existing.current_step = 0
        existing.step_started_at = existing.next_run_at = now
        existing.finished_at = None
        existing.exited_reason = None
        existing.held_out = held_out(account_id, ref.key, int(ref.settings.get("holdout_percent") or 0))
        existing.history = [
            *existing.history,
            log_entry(now, "re-entered", reason=reason, entry=existing.entry, version=ref.version),
        ]
        db.flush(session)
        return existing, True
    holdout = held_out(account_id, ref.key, int(ref.settings.get("holdout_percent") or 0))
    enrollment = Enrollment(
        account_id=account_id,
        campaign_id=ref.id,
        campaign_version=ref.version,
        state=EnrollmentState.ACTIVE,
        current_step=0,
        step_started_at=now,
        next_run_at=now,
        enrolled_at=now,
        held_out=holdout,
        history=[log_entry(now, "enrolled", reason=reason, version=ref.version, held_out=holdout)],
    )
    session.add(enrollment)
    if account_id in session.info.get(_KNOWN, {}):
        session.info[_KNOWN][account_id][ref.id] = enrollment
    db.flush(session)
    return enrollment, True


PAUSED_REASON = "campaign paused: not enrolled"


def _not_enrolled(
    session: Session, account_id: int, ref: CampaignRef, now: dt.datetime, reason: str
) -> Enrollment:
    """What enroll_account answers for a paused campaign the account is not in: a transient
    Enrollment (never added to the session, so never stored) that says why."""
    return Enrollment(
        account_id=account_id,
        campaign_id=ref.id,
        campaign=session.get(Campaign, ref.id),
        campaign_version=ref.version,
        state=EnrollmentState.EXITED,
        current_step=0,
        step_started_at=now,
        next_run_at=None,
        enrolled_at=now,
        finished_at=now,
        exited_reason=PAUSED_REASON,
        held_out=False,
        history=[log_entry(now, "not enrolled", reason=reason, paused=True)],
    )


def exit_account(
    session: Session, account_id: int, campaign_key: str, *, now: dt.datetime, reason: str
) -> Enrollment | None:
    """Take an account out of a campaign (a rule's `exit`); no-op when not in it or already out."""
    campaign_id = campaign_ids(session).get(campaign_key)
    if campaign_id is None:
        raise NotFound(f"no campaign {campaign_key!r}")
    enrollment = _existing(session, account_id, campaign_id)
    if enrollment is None or enrollment.state not in (EnrollmentState.ACTIVE, EnrollmentState.WAITING):
        return None
    enrollment.state = EnrollmentState.EXITED
    enrollment.next_run_at = None
    enrollment.finished_at = now
    enrollment.exited_reason = reason
    enrollment.history = [*enrollment.history, log_entry(now, "exited", reason=reason)]
    db.flush(session)
    return enrollment


def wake_waiting_enrollments(session: Session, account_ids: list[int], *, now: dt.datetime) -> int:
    """A plan signal arrived: let the next tick re-check these accounts' waiting steps now.
    Enrolments of a paused campaign are woken too, but the tick leaves them alone until it is
    resumed (then they re-check at once)."""
    if not account_ids:
        return 0
    result = session.execute(
        update(Enrollment)
        .where(Enrollment.account_id.in_(account_ids), Enrollment.state == EnrollmentState.WAITING)
        .values(next_run_at=now)
        # Core UPDATE: no scan of the session's identity map (ingest calls this per achievement).
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def log_entry(now: dt.datetime, event: str, **details: Any) -> dict[str, Any]:
    return {"at": now.isoformat(), "event": event, **details}
