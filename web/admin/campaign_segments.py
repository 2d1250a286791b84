"""Enrol a segment from a campaign's page: preview the counts (GET), confirm (POST), and an RQ job
enrols the accounts in the background (campaigns.segment_enrollment does the work)."""

from __future__ import annotations

import uuid
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from campaigns import builder
from campaigns.jobs import enroll_segment_job
from campaigns.models import Campaign
from campaigns.segment_enrollment import (
    Segment,
    SegmentPreview,
    preview_segment,
    record_queued,
    segments,
)
from engine.errors import Conflict, ValidationFailed
from engine.plans.models import LIFECYCLE_STAGES
from engine.queue import enqueue_after_commit
from web.admin import bp
from web.admin.auth import EDITORS, role_required
from web.admin.campaigns import campaign_crumbs
from web.context import db_session, now, unit_of_work

MAX_TEXT = 80


def _typed(values: MultiDict[str, str]) -> tuple[Segment | None, dict[str, str], dict[str, str]]:
    """The segment the form asks for, what was typed, and a message per bad field."""
    typed = {name: values.get(name, "").strip() for name in ("segment", "stage")}
    errors: dict[str, str] = {}
    if not typed["segment"]:
        errors["segment"] = "Choose a segment."
    elif len(typed["segment"]) > MAX_TEXT or "\x00" in typed["segment"]:
        errors["segment"] = "That is not a segment."
    if typed["stage"] and typed["stage"] not in LIFECYCLE_STAGES:
        errors["stage"] = f"Lifecycle stage must be one of {', '.join(LIFECYCLE_STAGES)}."
    if errors:
        typed = {k: v[:MAX_TEXT].replace("\x00", "") for k, v in typed.items()}
        return None, typed, errors
    return Segment(typed["segment"], typed["stage"] or None), typed, errors


def _preview(
    campaign: Campaign, segment: Segment | None
) -> tuple[SegmentPreview | None, dict[str, str], int]:
    """The counts, or the errors to show beside the fields and the status to answer with."""
    if segment is None:
        return None, {}, 422
    try:
        return preview_segment(db_session(), campaign.key, segment, now=now()), {}, 200
    except ValidationFailed as exc:
        return None, {k: f"{str(v)[:1].upper()}{str(v)[1:]}." for k, v in exc.errors.items()}, 422
    except Conflict:
        return None, {"campaign": f"{campaign.name} is paused: resume it before enrolling a segment."}, 409


def _page(
    campaign: Campaign, typed: dict[str, str], errors: dict[str, str], preview: Any, status: int
) -> Any:
    db_session().rollback()  # read only
    return render_template(
        "admin/campaign_segment.html",
        section="campaigns",
        breadcrumbs=campaign_crumbs(
            (campaign.name, url_for("admin.campaign", key=campaign.key)), ("Enrol a segment", None)
        ),
        campaign=campaign,
        segments=segments(db_session()),
        stages=LIFECYCLE_STAGES,
        typed=typed,
        errors=errors,
        preview=preview,
    ), status


@bp.get("/campaigns/<key>/enroll-segment")
@role_required(*EDITORS)
def segment_preview(key: str) -> Any:
    """How many accounts the segment has and how many are already in the campaign; nothing changes."""
    campaign = builder.require_campaign(db_session(), key)  # 404 unknown, 409 never published
    segment, typed, errors = _typed(request.args)
    preview, found, status = _preview(campaign, segment)
    return _page(campaign, typed, {**errors, **found}, preview, status if errors or found else 200)


@bp.post("/campaigns/<key>/enroll-segment")
@role_required(*EDITORS)
def enroll_segment(key: str) -> Any:
    campaign = builder.require_campaign(db_session(), key)
    segment, typed, errors = _typed(request.form)
    if not errors and request.form.get("confirm") != "enroll":
        errors = {"confirm": "Check the counts, then confirm on this page."}
    if errors or segment is None:
        return _page(campaign, typed, errors, None, 400 if "confirm" in errors else 422)
    preview, found, status = _preview(campaign, segment)
    if preview is None:
        return _page(campaign, typed, found, None, status)
    name = campaign.name
    run = uuid.uuid4().hex
    with unit_of_work() as session:  # the preview's transaction: the job is queued as it commits
        record_queued(session, campaign.id, segment, preview, run=run)
        enqueue_after_commit(
            session,
            "default",
            enroll_segment_job,
            campaign.key,
            segment.name,
            segment.stage,
            str(current_user.email),
            0,  # after_id: from the segment's first account
            None,  # totals so far
            run,
        )
    flash(
        f"Enrolling {preview.to_enroll:,} accounts in {name} in the background "
        f"(segment {segment}; {preview.already_enrolled:,} already in it stay as they are).",
        "ok",
    )
    return redirect(url_for("admin.campaign", key=key), 303)
