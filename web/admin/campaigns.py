"""Campaign builder: draft, validate, publish as a new version, pause/resume, live step counts."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from campaigns import builder
from campaigns.playbook import ROLES, TRIGGERS
from content.emails import compose_email, personalise, recipient_substitutions
from content.inapp import CardReader, render_card
from content.library import best_locale
from content.models import ContentItem, MessageTemplate
from content.templates import find_template
from engine.errors import NorthstarError, NotFound, ValidationFailed
from engine.events.models import EventType
from engine.library import Objective
from engine.plans.models import PlanTemplate
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.rules_form import describe, field_choices
from web.context import db_session, now, settings, unit_of_work

STEP_FIELD = re.compile(r"^step-(\d{1,3})-kind$")
MAX_STEPS = 50
BLANK_STEPS = 1  # empty step slots: how the form adds a step when JavaScript is off
KIND_LABELS = {
    "email": "Email",
    "in_app": "In-app card",
    "wait": "Wait",
    "wait_until": "Wait until",
    "branch": "Branch",
    "exit": "Exit",
}
WAIT_FOR = {
    "milestone": "a milestone is achieved",
    "due": "N days before a milestone is due",
    "event": "an event happens",
    "kr": "a key result reaches a value",
}
TRIGGER_LABELS = {
    "rule": "a rule's enrol action (see the rules below)",
    "milestone_due_soon": "a milestone is due soon",
    "milestone_slipped": "a milestone slipped",
    "milestone_achieved": "a milestone was achieved",
    "kr_stalled": "a key result stalled",
    "review_near": "the plan review is near",
}
ROLE_LABELS = {
    "exec_sponsor": "Exec sponsor",
    "champion": "Champion",
    "power_user": "Power user",
    "other": "Other",
}
FIELD_LABELS = {
    "key": "Step key",
    "kind": "Kind",
    "template": "Template",
    "to": "To",
    "content": "Content",
    "survey": "Survey",
    "days": "Days",
    "milestone": "Milestone",
    "days_before_due": "Days before due",
    "event": "Event",
    "count": "Times",
    "kr": "Key result",
    "reaches": "Reaches",
    "timeout_days": "Time out after (days)",
    "on_timeout": "On time-out go to",
    "condition": "Condition",
    "then": "Then go to",
    "else": "Else go to",
}
STATE_ORDER = ("active", "waiting", "completed", "exited", "failed")
# What the step form edits; anything else a step carries (a playbook option the form does not show
# yet) rides along in a hidden field, so editing in the console never drops it.
FORM_KEYS = frozenset(FIELD_LABELS) | {"recommend", "wait_for"}
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


@dataclass
class BuilderForm:
    """The builder as posted (or loaded): the campaign document and anything that did not parse."""

    document: dict[str, Any]
    etag: str
    note: str = ""
    parse_errors: dict[str, str] = field(default_factory=dict)


# -- list, new, detail -------------------------------------------------------------------------------


@bp.get("/campaigns")
@role_required(*ANY_ROLE)
def campaigns() -> Any:
    rows = builder.campaign_summaries(db_session())
    return render_template("admin/campaigns.html", section="campaigns", rows=rows)


@bp.route("/campaigns/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def new_campaign() -> Any:
    typed = {"key": "", "name": "", "description": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        typed = {name: _text(request.form.get(name)) for name in typed}
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
    return render_template("admin/campaign_new.html", section="campaigns", typed=typed, errors=errors), status


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
        campaign=found,
        draft=draft,
        stats=stats,
        current=current,
        settings_text=_settings_text(current.settings if current else {}),
        entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, key)],
        kind_labels=KIND_LABELS,
        step_text=_step_text,
        state_order=STATE_ORDER,
    )


def _unpublished_page(session: Session, draft: builder.DraftView) -> Any:
    """A campaign never published: its draft, read-only (what viewers can see of it)."""
    document = _without_none(draft.document)
    steps = [
        builder.StepCount(
            i, str(s.get("key")), str(s.get("kind")), {k: v for k, v in s.items() if k not in ("key", "kind")}
        )
        for i, s in enumerate(document.get("steps") or [])
    ]
    preview = builder.VersionStats(0, True, None, "", {}, steps, {})
    return render_template(
        "admin/campaign.html",
        section="campaigns",
        campaign=None,
        draft=draft,
        name=document.get("name") or draft.key,
        stats=[],
        current=preview,
        settings_text=_settings_text(document),
        entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, draft.key)],
        kind_labels=KIND_LABELS,
        step_text=_step_text,
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
    document = _without_none(form.document)
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
            draft=draft,
            form=form,
            doc=document,
            steps=steps,
            slots=steps + [{} for _ in range(BLANK_STEPS)],
            first_blank=len(steps),
            errors=dict(errors),
            summary=_summary(errors, steps),
            conflict=conflict,
            kind_labels=KIND_LABELS,
            wait_for=WAIT_FOR,
            roles=ROLES,
            role_labels=ROLE_LABELS,
            triggers=TRIGGERS,
            trigger_labels=TRIGGER_LABELS,
            email_templates=[t for t in templates if t.kind == "email"],
            in_app_templates=[t for t in templates if t.kind == "in_app"],
            content_options=_content_options(
                list(session.scalars(select(ContentItem).order_by(ContentItem.title)))
            ),
            milestones=plan_milestones,
            event_names=list(session.scalars(select(EventType.name).order_by(EventType.name))),
            objectives=list(session.scalars(select(Objective.key).order_by(Objective.key))),
            fields=field_choices(session),
            condition_text=_condition_text,
            condition_errors=_condition_errors,
            wait_mode=_wait_mode,
            extra_of=_extra,
            caps=(settings().cap_account_per_week, settings().cap_contact_per_week),
            entry_rules=[(r, describe(r.condition)) for r in builder.entry_rules(session, draft.key)],
        ),
        status,
    )


def _without_none(value: Any) -> Any:
    """The document for display: settings stored with null members show as empty fields."""
    if isinstance(value, dict):
        return {k: v if k == "condition" else _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 7, not 7.0
    return value


def parse_builder_form(posted: MultiDict[str, str], key: str) -> BuilderForm:
    """The posted builder as a campaign document; values that do not parse stay as typed, with a
    message in `parse_errors` (so the page shows them again, marked)."""
    parse_errors: dict[str, str] = {}
    rows: list[tuple[float, int, dict[str, Any]]] = []
    indexes = sorted({int(m[1]) for name in posted if (m := STEP_FIELD.match(name))})
    for index in indexes:
        prefix = f"step-{index}-"
        kind = _text(posted.get(prefix + "kind"))
        if not kind or posted.get(prefix + "remove"):
            continue
        position_text = _text(posted.get(prefix + "position"))
        try:
            position = float(position_text) if position_text else float(index + 1)
        except ValueError:
            position = float(index + 1)
        rows.append((position, index, _step_from_form(posted, prefix, kind)))
    rows.sort(key=lambda r: (r[0], r[1]))
    steps = [row[2] for row in rows][: MAX_STEPS + 1]
    for i, step in enumerate(steps):
        text = step.pop("_condition_text", None)
        if text is not None:
            parsed, problem = _json(text, required=True)
            step["condition"] = parsed if problem is None else text
            if problem:
                parse_errors[f"steps.{i}.condition"] = problem
    document: dict[str, Any] = {
        "key": key,
        "name": _text(posted.get("name")),
        "description": _text(posted.get("description"), multiline=True),
    }
    document["steps"] = steps
    signal = _text(posted.get("trigger_signal")) or "rule"
    if signal != "rule" or _text(posted.get("trigger_days")) or _text(posted.get("trigger_milestone")):
        trigger: dict[str, Any] = {"signal": signal}
        if _text(posted.get("trigger_days")):
            trigger["days"] = _text(posted.get("trigger_days"))
        if _text(posted.get("trigger_milestone")):
            trigger["milestone"] = _text(posted.get("trigger_milestone"))
        document["trigger"] = trigger
    exit_when: dict[str, Any] = {"plan_completed": posted.get("exit_plan_completed") == "on"}
    segments = [s.strip() for s in _text(posted.get("exit_segments")).split(",") if s.strip()]
    if segments:
        exit_when["segments"] = segments
    exit_text = _text(posted.get("exit_condition"), multiline=True)
    parsed, problem = _json(exit_text, required=False)
    if problem:
        exit_when["condition"] = exit_text
        parse_errors["exit_when.condition"] = problem
    elif parsed is not None:
        exit_when["condition"] = parsed
    if exit_when != {"plan_completed": True}:
        document["exit_when"] = exit_when
    if posted.get("reentry") == "after":
        document["reentry_days"] = _text(posted.get("reentry_days")) or None
        if document["reentry_days"] is None:
            parse_errors["reentry_days"] = (
                "how many days after the last run ended may an account start again?"
            )
    holdout = _text(posted.get("holdout_percent"))
    if holdout and holdout != "0":
        document["holdout_percent"] = holdout
    category = _text(posted.get("category"))
    if category and category != "nurture":
        document["category"] = category
    if posted.get("window_on") == "on":
        document["send_window"] = {
            "start_hour": _text(posted.get("window_start")) or 8,
            "end_hour": _text(posted.get("window_end")) or 20,
            "weekdays_only": posted.get("window_weekdays") == "on",
        }
    if posted.get("caps") != "on":
        document["caps"] = False
    return BuilderForm(
        document,
        _text(posted.get("etag")),
        note=_text(posted.get("note"), multiline=True)[: builder.MAX_NOTE],
        parse_errors=parse_errors,
    )


def _step_from_form(posted: MultiDict[str, str], prefix: str, kind: str) -> dict[str, Any]:
    def value(name: str) -> str:
        return _text(posted.get(prefix + name))

    step: dict[str, Any] = {"key": value("key") or None, "kind": kind}
    if kind in ("email", "in_app"):
        step["template"] = value("template") or None
        step["to"] = [r for r in posted.getlist(prefix + "to") if r]
        step["content"] = [c for c in posted.getlist(prefix + "content") if c]
        if kind == "email" and value("survey"):
            step["survey"] = value("survey")
    elif kind == "wait":
        step["days"] = value("days") or None
    elif kind == "wait_until":
        mode = value("wait_for") or "milestone"
        if mode in ("milestone", "due"):
            step["milestone"] = value("milestone") or None
        if mode == "due":
            step["days_before_due"] = value("days_before_due") or None
        if mode == "event":
            step["event"] = value("event") or None
            step["count"] = value("count") or None
        if mode == "kr":
            step["kr"] = value("kr") or None
            reaches = value("reaches")
            step["reaches"] = (
                reaches if reaches in ("", "target") or not _is_number(reaches) else float(reaches)
            )
            step["reaches"] = step["reaches"] or None
        step["timeout_days"] = value("timeout_days") or None
        step["on_timeout"] = value("on_timeout") or None
    elif kind == "branch":
        step["_condition_text"] = _text(posted.get(prefix + "condition"), multiline=True)
        step["then"] = value("then") or None
        step["else"] = value("else") or None
    if kind == "email" and value("recommend"):
        step["recommend"] = value("recommend")
    try:
        extra = json.loads(posted.get(prefix + "extra") or "{}")
    except ValueError:
        extra = {}
    if isinstance(extra, dict):
        step.update({k: v for k, v in extra.items() if isinstance(k, str) and k not in FORM_KEYS})
    return {k: v for k, v in step.items() if v is not None and v != []}


def _content_options(items: list[ContentItem]) -> Any:
    """(key, label, chosen) for a step's content picker: its items first, in their order."""
    labels = {item.key: f"{item.title} ({item.kind})" for item in items}

    def options(picked: list[str]) -> list[tuple[str, str, bool]]:
        chosen = [(key, labels.get(key, f"{key} (missing)"), True) for key in picked]
        return chosen + [(key, label, False) for key, label in labels.items() if key not in picked]

    return options


def _extra(step: Mapping[str, Any]) -> str:
    """The step's settings the form does not edit, as JSON for its hidden field."""
    return json.dumps({k: v for k, v in step.items() if k not in FORM_KEYS}, ensure_ascii=False)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json(text: str, *, required: bool) -> tuple[Any, str | None]:
    """A condition typed as JSON: (value, None), or (None, why not). An empty builder group
    (`{"and": []}`) counts as no condition."""
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"
    if value in ({"and": []}, {"or": []}):
        value = None
    if value is None and required:
        return None, "a branch needs a condition: add at least one"
    return value, None


def _text(value: Any, *, multiline: bool = False) -> str:
    text = str(value or "").replace("\x00", "")
    if multiline:
        return text.replace("\r\n", "\n").strip()
    return " ".join(text.split())


def _condition_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _condition_errors(errors: Mapping[str, str], path: str) -> dict[str, str]:
    """The errors under one condition, re-rooted at `/condition` as the rules builder expects."""
    return {
        "/condition" + key[len(path) :]: message
        for key, message in errors.items()
        if key == path or key.startswith(path + "/")
    }


def _wait_mode(step: Mapping[str, Any]) -> str:
    if step.get("event"):
        return "event"
    if step.get("kr"):
        return "kr"
    if step.get("days_before_due") is not None:
        return "due"
    return "milestone"


def _summary(errors: Mapping[str, str], steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(label, message, anchor) for every error, naming the step by its number and key."""
    found = []
    for path, message in errors.items():
        parts = re.split(r"[./]", path, maxsplit=3)
        if parts[0] == "steps" and len(parts) > 1 and parts[1].isdigit():
            i = int(parts[1])
            name = steps[i].get("key") if i < len(steps) else None
            label = f"Step {i + 1}" + (f" ({name})" if name else "")
            if len(parts) > 2:
                label += f" · {FIELD_LABELS.get(parts[2], parts[2])}"
            anchor = f"step-{i}"
        elif path.startswith("exit_when"):
            label, anchor = "Exit criteria", "settings"
        elif path:
            label, anchor = parts[0].replace("_", " ").capitalize(), "settings"
        else:
            label, anchor = "Campaign", "settings"
        found.append((label, message, anchor))
    return found


def _step_text(step: Any) -> str:
    """One line saying what a step does (the detail page's flow)."""
    c = step.config
    kind = step.kind
    if kind in ("email", "in_app"):
        to = ", ".join(c.get("to") or []) or "every contact"
        extra = f" + {len(c['content'])} content" if c.get("content") else ""
        return f"{c.get('template')} → {to}{extra}"
    if kind == "wait":
        return f"{c.get('days'):g} days"
    if kind == "wait_until":
        if c.get("milestone"):
            what = (
                f"{c['days_before_due']} days before {c['milestone']} is due"
                if c.get("days_before_due") is not None
                else f"{c['milestone']} achieved"
            )
        elif c.get("event"):
            what = f"{c['event']} × {c.get('count') or 1}"
        else:
            what = f"{c.get('kr')} reaches {c.get('reaches')}"
        timeout = f", at most {c['timeout_days']:g} days" if c.get("timeout_days") is not None else ""
        jump = f" (then {c['on_timeout']})" if c.get("on_timeout") else ""
        return what + timeout + jump
    if kind == "branch":
        return (
            f"if {describe(c.get('condition'))} → {c.get('then') or 'next'}, else {c.get('else') or 'next'}"
        )
    return "ends the enrolment"


def _settings_text(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    trigger = values.get("trigger") or {}
    signal = trigger.get("signal", "rule")
    entry = TRIGGER_LABELS.get(signal, signal)
    if trigger.get("milestone"):
        entry += f" ({trigger['milestone']})"
    if trigger.get("days") is not None:
        entry += f", {trigger['days']} days"
    exit_when = values.get("exit_when") or {}
    leaves = []
    if exit_when.get("plan_completed", True):
        leaves.append("the plan is completed")
    if exit_when.get("segments"):
        leaves.append("the account leaves " + ", ".join(exit_when["segments"]))
    if exit_when.get("condition") is not None:
        leaves.append(describe(exit_when["condition"]))
    leaves.append("every contact unsubscribed")
    window = values.get("send_window")
    return [
        ("Entry", entry),
        ("Exit when", "; ".join(leaves)),
        ("Re-entry", f"after {values['reentry_days']} days" if values.get("reentry_days") else "never"),
        ("Holdout", f"{values.get('holdout_percent') or 0} % of accounts"),
        ("Frequency caps", "apply" if values.get("caps", True) else "never hold this campaign back"),
        (
            "Send window",
            f"{window['start_hour']}:00–{window['end_hour']}:00"
            + (", weekdays only" if window.get("weekdays_only") else "")
            + " in the contact's time zone"
            if window
            else "any time",
        ),
        ("Category", str(values.get("category") or "nurture")),
    ]


# -- template preview --------------------------------------------------------------------------------


@bp.get("/campaigns/templates/<key>/preview")
@role_required(*ANY_ROLE)
def campaign_template_preview(key: str) -> Any:
    session = db_session()
    # `?locale=de`: that locale's version, else the default locale's (as a contact would get it).
    locale = request.args.get("locale", "").strip()[:16] or None
    try:
        template = find_template(session, key, locale)
    except NotFound:
        abort(404, description=f"There is no message template {key[:80]!r}.")
    try:
        if template.kind == "email":
            email = compose_email(
                session,
                key,
                content_keys=[],
                campaign_name="Preview",
                postal_address=settings().postal_address,
                locale=template.locale,
            )
            substitutions = recipient_substitutions(SAMPLE)
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
