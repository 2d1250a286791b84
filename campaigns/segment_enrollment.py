"""Enrolling a segment: every account of a segment (optionally one lifecycle stage) in a campaign,
a few hundred accounts per transaction, through `enroll_account` so every guard stays as it is."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from campaigns.enrollment import CampaignRef, campaign_refs, enroll_account, prefetch_enrollments
from campaigns.models import Enrollment, EnrollmentState
from engine import audit
from engine.accounts import Account
from engine.db import Database
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.plans.models import LIFECYCLE_STAGES

log = logging.getLogger(__name__)

BATCH_SIZE = 500  # accounts per transaction: short locks, and a crash loses at most one batch
MAX_SEGMENTS = 500  # choices in the console's list (as on the accounts list)
# A run's two audit entries on its campaign (engine.audit: durable, and in the audit log): queued
# from the console with the preview's counts, and finished by the job with the totals.
QUEUED, FINISHED = "enrol", "enrolled"
RECENT_RUNS = 5


@dataclass(frozen=True)
class Segment:
    """Which accounts: a segment and, when `stage` is set, only those in that lifecycle stage."""

    name: str
    stage: str | None = None

    def __str__(self) -> str:
        return self.name if self.stage is None else f"{self.name}, {self.stage}"


@dataclass(frozen=True)
class SegmentPreview:
    matched: int
    already_enrolled: int  # accounts `enroll_account` would leave as they are

    @property
    def to_enroll(self) -> int:
        return self.matched - self.already_enrolled


@dataclass(frozen=True)
class SegmentResult:
    matched: int
    enrolled: int  # new enrolments and re-entries
    already_enrolled: int  # in the campaign already: counted, not enrolled twice
    refused: int  # the campaign was paused when their batch ran
    last_account_id: int  # where a continuation starts (`after_id`)
    done: bool  # False when `limit` stopped it before the segment's end


def segments(session: Session) -> list[str]:
    """The distinct segments accounts have, by name."""
    return list(
        session.scalars(select(Account.segment).distinct().order_by(Account.segment).limit(MAX_SEGMENTS))
    )


def _members(segment: Segment) -> ColumnElement[bool]:
    condition = Account.segment == segment.name
    if segment.stage is not None:
        condition = and_(condition, Account.lifecycle_stage == segment.stage)
    return condition


def _unchanged_by_enrolling(ref: CampaignRef, now: dt.datetime) -> ColumnElement[bool]:
    """An enrolment `enroll_account` leaves as it is: still running, or finished and not (yet)
    allowed to re-enter (the same test as enroll_account's, in SQL, for the preview)."""
    running = Enrollment.state.in_((EnrollmentState.ACTIVE, EnrollmentState.WAITING))
    reentry = ref.settings.get("reentry_days")
    if reentry is None:
        return Enrollment.id.is_not(None)
    return or_(
        running,
        Enrollment.finished_at.is_(None),
        Enrollment.finished_at > now - dt.timedelta(days=int(reentry)),
    )


def validate_segment(session: Session, campaign_key: str, segment: Segment) -> CampaignRef:
    """The campaign's reference, or a domain error naming what is wrong (the console's 4xx)."""
    errors: dict[str, str] = {}
    if not session.scalar(select(exists().where(Account.segment == segment.name))):
        errors["segment"] = f"no account is in a segment called {segment.name[:80]!r}"
    if segment.stage is not None and segment.stage not in LIFECYCLE_STAGES:
        errors["stage"] = f"lifecycle stage must be one of {', '.join(LIFECYCLE_STAGES)}"
    ref = campaign_refs(session).get(campaign_key)
    if ref is None:
        raise NotFound(f"no campaign {campaign_key[:80]!r}")
    if errors:
        raise ValidationFailed(errors)
    return ref


def preview_segment(
    session: Session, campaign_key: str, segment: Segment, *, now: dt.datetime
) -> SegmentPreview:
    """How many accounts match and how many of them are already in the campaign: two counts.
    Refuses an unknown campaign or segment, and a paused campaign (it would enrol no one)."""
    ref = validate_segment(session, campaign_key, segment)
    if ref.paused:
        raise Conflict(f"campaign {campaign_key!r} is paused: resume it before enrolling a segment")
    matched = session.scalar(select(func.count()).select_from(Account).where(_members(segment))) or 0
    already = (
        session.scalar(
            select(func.count())
            .select_from(Account)
            .where(
                _members(segment),
                exists().where(
                    Enrollment.account_id == Account.id,
                    Enrollment.campaign_id == ref.id,
                    _unchanged_by_enrolling(ref, now),
                ),
            )
        )
        or 0
    )
    return SegmentPreview(int(matched), int(already))


def enroll_segment(
    database: Database,
    campaign_key: str,
    segment: Segment,
    *,
    now: dt.datetime,
    reason: str,
    after_id: int = 0,
    limit: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> SegmentResult:
    """Enrol the segment's accounts with an id above `after_id` (by id; at most `limit`), one
    transaction per `batch_size` accounts, each through `enroll_account`: holdouts, re-entry and
    the pause apply as for one account, and running it twice enrols no one twice.

    A campaign paused when a batch starts enrols no one from there on: the rest of the accounts
    are counted as refused (logged once, not once per account)."""
    matched = enrolled = already = refused = 0
    last = after_id
    while limit is None or matched < limit:
        size = batch_size if limit is None else min(batch_size, limit - matched)
        with database.transaction() as session:
            ref = campaign_refs(session).get(campaign_key)
            if ref is None:
                raise NotFound(f"no campaign {campaign_key!r}")
            if ref.paused:
                rest = session.scalar(
                    select(func.count()).select_from(Account).where(_members(segment), Account.id > last)
                )
                refused += int(rest or 0)
                matched += int(rest or 0)
                log.info(
                    "campaign %r is paused: %s accounts of segment %s not enrolled (%s)",
                    campaign_key,
                    rest,
                    segment,
                    reason,
                )
                return SegmentResult(matched, enrolled, already, refused, last, True)
            ids = list(
                session.scalars(
                    select(Account.id)
                    .where(_members(segment), Account.id > last)
                    .order_by(Account.id)
                    .limit(size)
                )
            )
            if not ids:
                return SegmentResult(matched, enrolled, already, refused, last, True)
            prefetch_enrollments(session, ids)
            for account_id in ids:
                _, created = enroll_account(session, account_id, campaign_key, now=now, reason=reason)
                if created:
                    enrolled += 1
                else:
                    already += 1
            matched += len(ids)
            last = ids[-1]
        if len(ids) < size:
            return SegmentResult(matched, enrolled, already, refused, last, True)
    return SegmentResult(matched, enrolled, already, refused, last, False)


@dataclass(frozen=True)
class SegmentRun:
    """One "enrol a segment" as the campaign page lists it: asked for, and (once done) what it did."""

    run: str
    segment: str
    by: str
    queued_at: dt.datetime
    to_enroll: int  # the preview's count when it was confirmed
    finished_at: dt.datetime | None = None
    totals: dict[str, int] | None = None  # matched, enrolled, already_enrolled, refused


def record_queued(
    session: Session, campaign_id: int, segment: Segment, preview: SegmentPreview, *, run: str
) -> None:
    """The run as queued, by the current actor (the console user), in the request's transaction."""
    audit.record(
        session,
        QUEUED,
        "Campaign",
        str(campaign_id),
        label=f"segment {segment}",
        details={"run": run, "segment": str(segment), "to_enroll": preview.to_enroll},
    )


def record_finished(
    session: Session, campaign_key: str, segment: Segment, totals: dict[str, int], *, run: str, actor: str
) -> None:
    """The run's totals, as the console user who asked for it (the job has no request)."""
    ref = campaign_refs(session).get(campaign_key)
    if ref is None:
        return
    with audit.acting_as(actor, "console"):
        audit.record(
            session,
            FINISHED,
            "Campaign",
            str(ref.id),
            label=f"segment {segment}",
            details={"run": run, "segment": str(segment), **totals},
        )


def recent_runs(session: Session, campaign_id: int, *, limit: int = RECENT_RUNS) -> list[SegmentRun]:
    """The campaign's latest segment runs, newest first: each queued run with its totals when done."""
    entries = session.scalars(
        select(audit.AuditEntry)
        .where(
            audit.AuditEntry.object_type == "Campaign",  # ix_audit_log_object
            audit.AuditEntry.object_id == str(campaign_id),
            audit.AuditEntry.action.in_((QUEUED, FINISHED)),
        )
        .order_by(audit.AuditEntry.id.desc())
        .limit(limit * 10)  # a run's end among later runs' starts
    ).all()
    done: dict[str, audit.AuditEntry] = {}
    runs = []
    for entry in reversed(entries):  # oldest first: a run's end comes after its start
        after = {key: value[1] for key, value in entry.changes.items() if isinstance(value, list)}
        run = str(after.get("run", ""))
        if entry.action == FINISHED:
            done[run] = entry
        elif entry.action == QUEUED:
            runs.append((run, entry, after))
    listed = []
    for run, entry, after in reversed(runs[-limit:]):
        end = done.get(run)
        totals = None
        if end is not None:
            totals = {
                key: int(value[1])
                for key, value in end.changes.items()
                if key in ("matched", "enrolled", "already_enrolled", "refused")
            }
        listed.append(
            SegmentRun(
                run=run,
                segment=str(after.get("segment", entry.label)),
                by=entry.actor,
                queued_at=entry.at,
                to_enroll=int(after.get("to_enroll") or 0),
                finished_at=end.at if end is not None else None,
                totals=totals,
            )
        )
    return listed
