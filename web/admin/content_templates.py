"""Content admin, message templates: the list, editing (each save renders against sample data),
preview as a contact would see it, and a test send to one address."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from campaigns.mail import (
    AmbiguousSendError,
    BulkEmail,
    PermanentSendError,
    Recipient,
    TransientSendError,
    backend_for,
)
from campaigns.previews import preview_survey
from campaigns.unsubscribe import unsubscribe_token
from content.emails import (
    SurveyQuestion,
    compose_email,
    personalise,
    recipient_substitutions,
    survey_option_path,
)
from content.inapp import CardContent, CardReader, render_card
from content.models import DEFAULT_LOCALE, MessageTemplate
from content.recipients import Links, recipient_values
from content.recommend import Recommendation, next_milestone, recommend
from content.schemas import (
    TEMPLATE_KINDS,
    TemplateSchema,
)
from content.templates import SAMPLE_CONTEXT, VARIABLES, save_template
from engine.accounts import Contact
from engine.errors import NorthstarError, ValidationFailed
from engine.plans.models import PlanStatus, SuccessPlan
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.content import content_crumbs, form_errors, form_page
from web.admin.nav import Crumb
from web.context import db_session, settings, unit_of_work

TEMPLATES = "Message templates"
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; frame-ancestors 'self'; sandbox"
)


@bp.get("/content/templates")
@role_required(*ANY_ROLE)
def content_templates() -> Any:
    rows = list(
        db_session().scalars(select(MessageTemplate).order_by(MessageTemplate.key, MessageTemplate.locale))
    )
    return render_template(
        "admin/content_templates.html",
        section="content",
        breadcrumbs=content_crumbs((TEMPLATES, None)),
        templates=rows,
    )


def template_crumbs(row: MessageTemplate | None, *trail: Crumb) -> list[Crumb]:
    """Content › Message templates › the template (› `trail`, such as its preview)."""
    here = url_for("admin.content_template", template_id=row.id) if row is not None and trail else None
    return content_crumbs(
        (TEMPLATES, url_for("admin.content_templates")), (row.key if row else "New template", here), *trail
    )


def _template_page(
    row: MessageTemplate | None, typed: dict[str, Any], errors: dict[str, str], status: int = 200
) -> Any:
    return form_page(
        "admin/content_template.html",
        typed,
        errors,
        status,
        breadcrumbs=template_crumbs(row),
        template=row,
        kinds=TEMPLATE_KINDS,
        variables=VARIABLES,
    )


def _template_typed(row: MessageTemplate | None) -> dict[str, Any]:
    if row is None:
        return {
            "key": "",
            "kind": "email",
            "locale": DEFAULT_LOCALE,
            "subject": "",
            "preheader": "",
            "body": "",
        }
    return {
        "key": row.key,
        "kind": row.kind,
        "locale": row.locale,
        "subject": row.subject,
        "preheader": row.preheader,
        "body": row.body,
    }


@bp.route("/content/templates/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def content_template_new() -> Any:
    if request.method == "GET":
        return _template_page(None, _template_typed(None), {})
    return _save_template_form(None)


def _template_or_404(template_id: int) -> MessageTemplate:
    row = db_session().get(MessageTemplate, template_id)
    if row is None:
        abort(404, description="There is no such template (it may have been deleted).")
    return row


@bp.route("/content/templates/<int:template_id>", methods=["GET", "POST"])
@role_required(*ANY_ROLE)
def content_template(template_id: int) -> Any:
    row = _template_or_404(template_id)
    if request.method == "GET":
        return _template_page(row, _template_typed(row), {})
    if not current_user.can_edit:
        abort(403)
    return _save_template_form(row)


def _save_template_form(row: MessageTemplate | None) -> Any:
    form = request.form
    typed = {
        name: form.get(name, "").replace("\r\n", "\n")
        for name in ("key", "kind", "locale", "subject", "preheader", "body")
    }
    typed["key"], typed["locale"] = typed["key"].strip(), typed["locale"].strip() or DEFAULT_LOCALE
    try:
        data = TemplateSchema().load(typed)
        with unit_of_work() as session:
            saved = save_template(session, data, template_id=row.id if row else None)
            saved_id, key, version = saved.id, saved.key, saved.version
    except (ValidationError, ValidationFailed) as exc:
        errors = {name.split(".")[-1]: message for name, message in form_errors(exc).items()}
        return _template_page(row, typed, errors, 422)
    flash(f"Saved “{key}” (version {version}). It rendered against the sample data without errors.", "ok")
    return redirect(url_for("admin.content_template", template_id=saved_id), 303)


# -- preview and test send -------------------------------------------------------------------------


@dataclass
class Rendered:
    subject: str = ""
    html: str = ""
    text: str = ""
    recommendations: list[Recommendation] | None = None
    error: str | None = None


def _contacts(session: Session, search: str) -> list[Contact]:
    stmt = select(Contact).options(selectinload(Contact.account)).order_by(Contact.email).limit(50)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(Contact.email.ilike(pattern, escape="\\"), Contact.name.ilike(pattern, escape="\\"))
        )
    return list(session.scalars(stmt))


def _chosen_contact(session: Session) -> Contact | None:
    text = request.values.get("contact", "")
    if text.isdigit() and len(text) < 10:
        return session.get(Contact, int(text))
    return None


def render_for_contact(session: Session, row: MessageTemplate, contact: Contact | None) -> Rendered:
    """The template as `contact` would receive it now (their plan, their recommended content);
    without a contact, as the sample data."""
    config = settings()
    plan = None
    if contact is not None:
        plan = session.scalar(
            select(SuccessPlan).where(
                SuccessPlan.account_id == contact.account_id, SuccessPlan.status == PlanStatus.ACTIVE
            )
        )
    top = recommend(session, plan, contact, 3) if contact is not None else []
    try:
        if row.kind == "in_app":
            return _render_card(row, contact, plan, top)
        survey, survey_links = survey_for_preview(session, row.key)
        email = compose_email(
            session,
            row.key,
            content_keys=[r.item.key for r in top[1:]],  # top[0] is `recommended`, first in the list
            campaign_name="Preview",
            postal_address=config.postal_address,
            survey=survey,
            locale=row.locale,
            recommend=True,
        )
        links = Links(config.public_url, config.secret_key)
        if contact is None:
            values = _sample_values(email)
        else:
            values = recipient_values(
                contact,
                contact.account,
                plan,
                links=links,
                unsubscribe_url=f"{config.public_url}/u/{unsubscribe_token(config.secret_key, contact.id)}",
                email=email,
                message_id=None,
                recommended=top[0] if top else None,
            )
        substitutions = recipient_substitutions({**values, **survey_links})
        return Rendered(
            subject=personalise(email.subject, substitutions),
            html=personalise(email.html, substitutions),
            text=personalise(email.text, substitutions),
            recommendations=top,
        )
    except NorthstarError as exc:
        return Rendered(error=exc.detail, recommendations=top)


def survey_for_preview(
    session: Session, template_key: str, survey_key: str | None = None
) -> tuple[SurveyQuestion, dict[str, str]]:
    """The survey a preview of the template shows (campaigns.previews) and a link per option. A
    real send signs each link for its recipient, and following one answers for them; a preview
    (and a test send to any address) must answer for nobody, so each option opens the survey's
    console preview instead (the sample survey: the sample's url)."""
    survey, key = preview_survey(session, template_key, survey_key)
    url = (
        url_for("admin.preview_survey", key=key, _external=True)
        if key
        else str(SAMPLE_CONTEXT["survey"]["options"][0]["url"])
    )
    return survey, {survey_option_path(option.value): url for option in survey.options}


def _sample_values(email: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    for group in ("contact", "account", "plan", "next_milestone"):
        for name, value in SAMPLE_CONTEXT[group].items():
            values[f"{group}.{name}"] = str(value)
    values["unsubscribe_url"] = SAMPLE_CONTEXT["unsubscribe_url"]
    for name, value in SAMPLE_CONTEXT["recommended"].items():
        values[f"recommended.{name}"] = str(value)
    return values


def _render_card(
    row: MessageTemplate, contact: Contact | None, plan: SuccessPlan | None, top: list[Recommendation]
) -> Rendered:
    config = settings()
    if contact is None:
        from content.inapp import SAMPLE_CONTENT, SAMPLE_READER

        reader, items = SAMPLE_READER, SAMPLE_CONTENT
    else:
        milestone = next_milestone(plan)
        reader = CardReader(
            first_name=contact.first_name,
            name=contact.name or contact.first_name,
            account_name=contact.account.name,
            plan_goal=plan.goal if plan else "",
            plan_url=config.public_url,
            plan_review_date=plan.review_date.strftime("%B %d, %Y") if plan else "",
            next_milestone_title=milestone.title if milestone else "",
            next_milestone_due_date=milestone.due_date.strftime("%B %d") if milestone else "",
            campaign_name="Preview",
        )
        items = [CardContent(r.item.title, r.item.url or "", r.item.summary, r.item.minutes) for r in top]
    card = render_card(row.body, reader, items, field="body")
    page = (
        "<!doctype html><meta charset=utf-8><style>"
        "body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1f2933}"
        ".card{max-width:340px;margin:16px auto;padding:14px 16px;border:1px solid #d8dde6;"
        "border-radius:10px;box-shadow:0 2px 8px rgba(0,0,0,.08)}a{color:#2457d6}"
        f"</style><div class=card>{card}</div>"
    )
    return Rendered(subject="(in-app card)", html=page, text=card, recommendations=top)


@bp.get("/content/templates/<int:template_id>/preview")
@role_required(*ANY_ROLE)
def content_template_preview(template_id: int) -> Any:
    session = db_session()
    row = _template_or_404(template_id)
    search = request.args.get("q", "").strip()[:200]
    contact = _chosen_contact(session)
    rendered = render_for_contact(session, row, contact)
    return render_template(
        "admin/content_preview.html",
        section="content",
        breadcrumbs=template_crumbs(row, ("Preview", None)),
        template=row,
        contacts=_contacts(session, search),
        contact=contact,
        search=search,
        rendered=rendered,
        can_edit=current_user.can_edit,
    ), (422 if rendered.error else 200)


@bp.get("/content/templates/<int:template_id>/render")
@role_required(*ANY_ROLE)
def content_template_render(template_id: int) -> Any:
    """The email alone, for the preview's frames: its own inline styles, no script, nothing fetched."""
    session = db_session()
    rendered = render_for_contact(session, _template_or_404(template_id), _chosen_contact(session))
    body = rendered.html if rendered.error is None else f"<p>{html.escape(rendered.error)}</p>"
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/content/templates/<int:template_id>/test-send")
@role_required(*EDITORS)
def content_template_test_send(template_id: int) -> Any:
    """Send the preview to one address through the mail backend. No Message row is written: a test
    is not part of the campaign ledger (no dedupe key, no frequency cap, no status)."""
    session = db_session()
    row = _template_or_404(template_id)
    contact = _chosen_contact(session)
    address = request.form.get("email", "").strip()
    back = url_for(
        "admin.content_template_preview", template_id=row.id, contact=contact.id if contact else None
    )
    try:
        address = _valid_address(address)
    except ValidationFailed as exc:
        flash(exc.detail.removeprefix("email: "), "error")
        return redirect(back, 303)
    if row.kind != "email":
        flash("Only email templates can be sent; in-app cards show in the product's widget.", "error")
        return redirect(back, 303)
    rendered = render_for_contact(session, row, contact)
    if rendered.error:
        flash(f"Not sent: the template does not render: {rendered.error}", "error")
        return redirect(back, 303)
    config = settings()
    email = BulkEmail(
        config.mail_from,
        rendered.html,
        rendered.text,
        [
            Recipient(
                message_id=0, email=address, name="", subject=f"[Test] {rendered.subject}", substitutions={}
            )
        ],
        category="test",
    )
    try:
        backend_for(config).send(email)
    except (TransientSendError, PermanentSendError, AmbiguousSendError) as exc:
        flash(f"Not sent: the mail service refused it ({exc}).", "error")
        return redirect(back, 303)
    flash(f"Test sent to {address}.", "ok")
    return redirect(back, 303)


def _valid_address(address: str) -> str:
    from marshmallow import fields

    try:
        return str(fields.Email(validate=lambda v: 3 <= len(v) <= 320).deserialize(address))
    except ValidationError:
        raise ValidationFailed({"email": f"“{address[:80]}” is not an email address"}) from None
