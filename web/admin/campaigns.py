"""Campaign builder: draft, validate, publish as a new version, pause/resume, live step counts."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns import builder
from campaigns.playbook import ROLES, TRIGGERS
from campaigns.segment_enrollment import recent_runs, segments
from content.emails import compose_email, personalise, recipient_substitutions
from content.inapp import CardReader, render_card
from content.library import best_locale
from content.models import ContentItem, MessageTemplate
from content.templates import find_template
from engine.errors import NorthstarError, NotFound, ValidationFailed
from engine.events.models import EventType
from engine.library import Objective
from engine.plans.models import LIFECYCLE_STAGES, PlanTemplate
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.campaign_form import (
    BLANK_STEPS,
    KIND_LABELS,
    ROLE_LABELS,
    STATE_ORDER,
    TRIGGER_LABELS,
    WAIT_FOR,
    BuilderForm,
    condition_errors,
    condition_text,
    content_options,
    enters_by_trigger,
    error_summary,
    extra_of,
    field_text,
    parse_builder_form,
    settings_text,
    step_text,
    wait_mode,
    without_none,
)
from web.admin.content_templates import survey_for_preview
from web.admin.nav import Crumb, breadcrumbs
from web.admin.rules_form import describe, field_choices
from web.context import db_session, now, settings, unit_of_work

# A segment run with no result after this long lost its job (campaigns.segment_enrollment.recent_runs).
SEGMENT_RUN_STALLED = dt.timedelta(hours=1)

SAMPLE = {
    "contact.first_name": "Alex",
    "contact.name": "Alex Rivera",
    "contact.email": "alex@example.com",
    "account.name": "Acme Staffing",
    "plan.goal": "Hire 5 field technicians by March",
    "plan.url": "#",
    "plan.review_date": "2026-12-15",
    "next_milestone.title": "First job posted",
    "next_milestone.due_date": "2026-12-05",
    "unsubscribe_url": "#",
}


# -- list, new, detail -------------------------------------------------------------------------------


def campaign_crumbs(*trail: Crumb) -> list[Crumb]:
    return breadcrumbs(("Campaigns", url_for("admin.campaigns")), *trail)


@bp.get("/campaigns")
@role_required(*ANY_ROLE)
def campaigns() -> Any:
    rows = builder.campaign_summaries(db_session())
    return render_template(
        "admin/campaigns.html", section="campaigns", breadcrumbs=breadcrumbs(("Campaigns", None)), rows=rows
    )


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def new_campaign() -> Any:
    typed = {"key": "", "name": "", "description": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        typed = {name: field_text(request.form.get(name)) for name in typed}
        try:
            with unit_of_work() as session:
                builder.create_campaign(
                    session,
                    typed["key"],
                    typed["name"],
                    typed["description"],
                    user=current_user.email,
                    now=now(),
                )
        except ValidationFailed as exc:
            errors = {k: str(v) for k, v in exc.errors.items()}
        else:
            flash(f"Campaign {typed['name']!r} created as a draft. Add its steps, then publish it.", "ok")
            return redirect(url_for("admin.edit_campaign", key=typed["key"]), 303)
    status = 422 if errors else 200
    return render_template(
        "admin/campaign_new.html",
        section="campaigns",
        breadcrumbs=campaign_crumbs(("New campaign", None)),
        typed=typed,
        errors=errors,
    ), status


@bp.get("/campaigns/<key>")
@role_required(*ANY_ROLE)
def campaign(key: str) -> Any:
    session = db_session()
    found = builder.find_campaign(session, key)
    draft = builder.get_draft(session, key)  # 404 for an unknown campaign
    if found is None:
        return _unpublished_page(session, draft)
    stats = builder.campaign_stats(session, found)
    current = next((v for v in stats if v.current), None)
    return render_template(
        "admin/campaign.html",
        section="campaigns",
        breadcrumbs=campaign_crumbs((found.name, None)),
        campaign=found,
        draft=draft,
        stats=stats,
        current=current,
        settings_text=settings_text(current.settings if current else {}),
        by_trigger=enters_by_trigger(current.settings if current else {}),
        entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, key)],
        kind_labels=KIND_LABELS,
        step_text=step_text,
        state_order=STATE_ORDER,
        segments=segments(session) if current_user.can_edit else [],
        segment_runs=recent_runs(session, found.id),
        stale_before=now() - SEGMENT_RUN_STALLED,
        stages=LIFECYCLE_STAGES,
    )


def _unpublished_page(session: Session, draft: builder.DraftView) -> Any:
    """A campaign never published: its draft, read-only (what viewers can see of it)."""
    document = without_none(draft.document)
    steps = [
        builder.StepCount(
            i, str(s.get("key")), str(s.get("kind")), {k: v for k, v in s.items() if k not in ("key", "kind")}
        )
        for i, s in enumerate(document.get("steps") or [])
    ]
    preview = builder.VersionStats(0, True, None, "", {}, steps, {})
    name = document.get("name") or draft.key
    return render_template(
        "admin/campaign.html",
        section="campaigns",
        breadcrumbs=campaign_crumbs((name, None)),
        campaign=None,
        draft=draft,
        name=name,
        stats=[],
        current=preview,
        settings_text=settings_text(document),
        by_trigger=enters_by_trigger(document),
        entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, draft.key)],
        kind_labels=KIND_LABELS,
        step_text=step_text,
        state_order=STATE_ORDER,
    )


@bp.get("/campaigns/<key>/counts")
@role_required(*ANY_ROLE)
def campaign_counts(key: str) -> Any:
    """The detail page's live counts, refreshed in place by campaign-builder.js."""
    session = db_session()
    body = builder.stats_document(session, builder.require_campaign(session, key))
    session.rollback()  # read only
    return jsonify(body)


@bp.post("/campaigns/<key>/pause")
@role_required(*EDITORS)
def pause_campaign(key: str) -> Any:
    return _set_paused(key, True)


@bp.post("/campaigns/<key>/resume")
@role_required(*EDITORS)
def resume_campaign(key: str) -> Any:
    return _set_paused(key, False)


def _set_paused(key: str, paused: bool) -> Any:
    with unit_of_work() as session:
        found = builder.set_paused(session, key, paused)
        name = found.name
    flash(
        f"{name} is paused: no new enrolments from its triggers until you resume it."
        if paused
        else f"{name} is running again.",
        "ok",
    )
    return redirect(url_for("admin.campaign", key=key), 303)


@bp.post("/campaigns/<key>/discard")
@role_required(*EDITORS)
def discard_campaign_draft(key: str) -> Any:
    with unit_of_work() as session:
        published = builder.find_campaign(session, key) is not None
        dropped = builder.discard_draft(session, key)
    if not dropped:
        flash("There was no draft to discard.", "warn")
    elif not published:
        flash("The unpublished campaign was discarded.", "ok")
        return redirect(url_for("admin.campaigns"), 303)
    else:
        flash("Draft discarded. The builder shows the published version again.", "ok")
    return redirect(url_for("admin.campaign", key=key), 303)


# -- the builder -------------------------------------------------------------------------------------


@bp.get("/campaigns/<key>/edit")
@role_required(*EDITORS)
def edit_campaign(key: str) -> Any:
    session = db_session()
    draft = builder.get_draft(session, key)
    form = BuilderForm(draft.document, draft.etag)
    return _builder_page(session, draft, form, {})


@bp.post("/campaigns/<key>/edit")
@role_required(*EDITORS)
def save_campaign(key: str) -> Any:
    session = db_session()
    draft = builder.get_draft(session, key)  # 404 for an unknown campaign
    form = parse_builder_form(request.form, key)
    publish = request.form.get("action") == "publish"
    errors: dict[str, str] = {}
    conflict: str | None = None
    if form.parse_errors:
        _, found = builder.validate_document(session, form.document, key=key)
        errors = {**found, **form.parse_errors}
    else:
        try:
            with unit_of_work() as session:
                saved = builder.save_draft(
                    session, key, form.document, expected=form.etag, user=current_user.email, now=now()
                )
                version: int | None = None
                if publish and saved.has_draft:
                    version = builder.publish_draft(
                        session, key, expected=saved.etag, note=form.note, user=current_user.email, now=now()
                    ).version
        except builder.StaleDraft as exc:
            conflict = exc.detail
        except ValidationFailed as exc:
            errors = {k: str(v) for k, v in exc.errors.items()}
        else:
            return _after_save(key, draft, saved, publish, version)
    session = db_session()
    draft = builder.get_draft(session, key)
    if conflict is not None:
        form.etag = draft.etag  # having seen the message, saving again replaces theirs on purpose
    return _builder_page(session, draft, form, errors, conflict=conflict, status=409 if conflict else 422)


def _after_save(
    key: str, before: builder.DraftView, saved: builder.DraftView, publish: bool, version: int | None
) -> Any:
    if not saved.has_draft:
        flash(
            f"Nothing changed since version {before.based_on_version}, so there is no draft to publish.", "ok"
        )
        return redirect(url_for("admin.campaign", key=key), 303)
    if not publish:
        flash("Draft saved. Nothing changes for customers until you publish it.", "ok")
        return redirect(url_for("admin.edit_campaign", key=key), 303)
    if version == before.based_on_version:
        flash(
            f"Saved the new name and description; the steps and settings are those of version {version}.",
            "ok",
        )
    else:
        flash(f"Published version {version}. New enrolments run it; running ones finish theirs.", "ok")
    return redirect(url_for("admin.campaign", key=key), 303)


def _builder_page(
    session: Session,
    draft: builder.DraftView,
    form: BuilderForm,
    errors: Mapping[str, str],
    *,
    conflict: str | None = None,
    status: int = 200,
) -> Any:
    document = without_none(form.document)
    steps = [s if isinstance(s, dict) else {} for s in document.get("steps") or []]
    # One choice per key (its default-locale row; a key is unique per locale).
    templates = sorted(
        best_locale(session.scalars(select(MessageTemplate).order_by(MessageTemplate.id)), None).values(),
        key=lambda t: (t.kind, t.key),
    )
    plan_milestones = sorted(
        {
            (m["key"], m.get("title", m["key"]))
            for t in session.scalars(select(PlanTemplate))
            for m in t.milestones
        }
    )
    return (
        render_template(
            "admin/campaign_edit.html",
            section="campaigns",
            breadcrumbs=campaign_crumbs(
                (
                    draft.campaign.name if draft.campaign else draft.document.get("name") or draft.key,
                    url_for("admin.campaign", key=draft.key),
                ),
                ("Builder", None),
            ),
            draft=draft,
            form=form,
            doc=document,
            steps=steps,
            slots=steps + [{} for _ in range(BLANK_STEPS)],
            first_blank=len(steps),
            errors=dict(errors),
            summary=error_summary(errors, steps),
            conflict=conflict,
            kind_labels=KIND_LABELS,
            wait_for=WAIT_FOR,
            roles=ROLES,
            role_labels=ROLE_LABELS,
            triggers=TRIGGERS,
            trigger_labels=TRIGGER_LABELS,
            email_templates=[t for t in templates if t.kind == "email"],
            in_app_templates=[t for t in templates if t.kind == "in_app"],
            content_options=content_options(
                list(session.scalars(select(ContentItem).order_by(ContentItem.title)))
            ),
            milestones=plan_milestones,
            event_names=list(session.scalars(select(EventType.name).order_by(EventType.name))),
            objectives=list(session.scalars(select(Objective.key).order_by(Objective.key))),
            fields=field_choices(session),
            condition_text=condition_text,
            condition_errors=condition_errors,
            wait_mode=wait_mode,
            extra_of=extra_of,
            caps=(settings().cap_account_per_week, settings().cap_contact_per_week),
            entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, draft.key)],
        ),
        status,
    )


# -- template preview --------------------------------------------------------------------------------


@bp.get("/campaigns/templates/<key>/preview")
@role_required(*ANY_ROLE)
def campaign_template_preview(key: str) -> Any:
    session = db_session()
    # `?locale=de`: that locale's version, else the default locale's (as a contact would get it).
    locale = request.args.get("locale", "").strip()[:16] or None
    # `?survey=outcomes`: the builder step's survey (a step with `survey:` gets `survey.*`).
    survey_key = request.args.get("survey", "").strip()[:80] or None
    try:
        template = find_template(session, key, locale)
    except NotFound:
        abort(404, description=f"There is no message template {key[:80]!r}.")
    try:
        if template.kind == "email":
            survey, survey_links = survey_for_preview(session, key, survey_key)
            email = compose_email(
                session,
                key,
                content_keys=[],
                campaign_name="Preview",
                postal_address=settings().postal_address,
                survey=survey,
                locale=template.locale,
            )
            substitutions = recipient_substitutions({**SAMPLE, **survey_links})
            body = personalise(email.html, substitutions)
        else:
            reader = CardReader("Alex", "Alex Rivera", "Acme Staffing", campaign_name="Preview")
            card = render_card(template.body, reader, [], field=f"templates.{key}.body")
            body = (
                f"<!doctype html><meta charset=utf-8><title>{html.escape(key)}</title>"
                f"<div style='max-width:360px;margin:2rem auto;font-family:sans-serif'>{card}</div>"
            )
    except NorthstarError as exc:
        abort(422, description=f"The template {key!r} cannot be previewed: {exc.detail}")
    response = Response(body, mimetype="text/html")
    # The email's own inline styles, nothing else: no script, no form, no outside fetch but images.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; sandbox"
    )
    return response
