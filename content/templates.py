"""Message templates: the one entry point that renders user-authored templates (`render_string`), the
documented variables with sample data to check templates against at save time, and saving/finding
templates per locale."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from content.library import best_locale
from content.models import MessageTemplate
from engine.errors import NotFound, ValidationFailed
from engine.templating import TemplateFailed, render_sandboxed

# What a template may use (docs/content.md lists the same). In-app cards get all but
# `unsubscribe_url`, `survey` and `recommended`.
VARIABLES: dict[str, str] = {
    "contact.first_name": "The recipient's first name (or the part of their email before the @)",
    "contact.name": "The recipient's full name",
    "contact.email": "The recipient's email address",
    "account.name": "Their account's name",
    "plan.goal": "Their plan's goal, in their words",
    "plan.url": "A signed link to their plan page (no login needed)",
    "plan.review_date": "The plan's next review, e.g. 'March 02, 2027'",
    "next_milestone.title": "The plan's next milestone that is not achieved yet",
    "next_milestone.due_date": "When it is due, e.g. 'January 15'",
    "content": "The step's content items: each has title, url (signed and tracked), summary, minutes, kind",
    "recommended": "The top recommended item for this recipient: title, url (tracked), summary, minutes, why",
    "campaign.name": "The campaign's name",
    "unsubscribe_url": "The recipient's one-click unsubscribe link (email only; the footer has it already)",
    "survey": "With a step's `survey:` only: title, question and options (value, label, url per option)",
}

SAMPLE_ITEM = {
    "title": "Sample article",
    "url": "https://example.com/sample",
    "summary": "A sample summary.",
    "minutes": 3,
    "kind": "article",
}
SAMPLE_CONTEXT: dict[str, Any] = {
    "contact": {"first_name": "Sam", "name": "Sam Sample", "email": "sam@example.com"},
    "account": {"name": "Sample Inc"},
    "plan": {
        "goal": "A sample goal",
        "url": "https://example.com/p/sample",
        "review_date": "January 01, 2030",
    },
    "next_milestone": {"title": "A sample milestone", "due_date": "January 01"},
    "content": [SAMPLE_ITEM],
    "recommended": {**SAMPLE_ITEM, "why": "matches the plan's next milestone"},
    "campaign": {"name": "Sample campaign"},
    "unsubscribe_url": "https://example.com/u/sample",
    "survey": {
        "title": "Sample survey",
        "question": "Sample question?",
        "options": [{"value": "sample", "label": "Sample", "url": "https://example.com/s/sample"}],
    },
}


def render_string(source: str, context: dict[str, Any], *, field: str = "template", html: bool = True) -> str:
    """Render a user-authored template: sandboxed (ImmutableSandboxedEnvironment), autoescaped when
    `html`, undefined variables are errors, bounded in time and output. TemplateFailed names `field`
    (and the line, for syntax errors) on any problem; nothing the template does runs outside it."""
    return render_sandboxed(source, context, field=field, html=html)


def check_template(kind: str, subject: str, preheader: str, body: str, *, prefix: str = "") -> None:
    """Render every part against the sample data, so a typo in a variable fails at save, not at send.
    Raises TemplateFailed with every broken part (`subject`, `preheader`, `body`)."""
    from content.inapp import check_card_template  # a card is checked as the widget will show it

    errors: dict[str, str] = {}
    parts = (
        [("body", body, True)]
        if kind == "in_app"
        else [("subject", subject, False), ("preheader", preheader, False), ("body", body, True)]
    )
    for name, source, html in parts:
        try:
            if kind == "in_app":
                check_card_template(source, field=f"{prefix}{name}")
            else:
                render_string(source, SAMPLE_CONTEXT, field=f"{prefix}{name}", html=html)
        except TemplateFailed as exc:
            errors.update(exc.errors)
    if kind == "email" and not subject.strip():
        errors[f"{prefix}subject"] = "an email template needs a subject"
    if errors:
        raise TemplateFailed(errors)


def save_template(
    session: Session, data: dict[str, Any], *, template_id: int | None = None
) -> MessageTemplate:
    """Create or update (data loaded by TemplateSchema), checked first; the version goes up on change."""
    check_template(data["kind"], data["subject"], data["preheader"], data["body"])
    existing = session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.key == data["key"], MessageTemplate.locale == data["locale"]
        )
    )
    row = existing
    if template_id is not None:
        row = session.get(MessageTemplate, template_id)
        if row is None:
            raise NotFound(f"no template {template_id}")
        if existing is not None and existing.id != row.id:
            raise ValidationFailed(
                {"key": f"a template {data['key']!r} in locale {data['locale']!r} exists already"}
            )
    if row is None:
        row = MessageTemplate(key=data["key"], locale=data["locale"], version=0)
        session.add(row)
    wanted = (data["key"], data["locale"], data["kind"], data["subject"], data["preheader"], data["body"])
    if (row.key, row.locale, row.kind, row.subject, row.preheader, row.body) != wanted:
        row.key, row.locale, row.kind, row.subject, row.preheader, row.body = wanted
        row.version = (row.version or 0) + 1
    session.flush()
    return row


def find_template(
    session: Session, key: str, locale: str | None = None, *, kind: str | None = None
) -> MessageTemplate:
    """The template `key` in the best locale for `locale` (falling back to the default locale)."""
    stmt = select(MessageTemplate).where(MessageTemplate.key == key)
    if kind is not None:
        stmt = stmt.where(MessageTemplate.kind == kind)
    found: MessageTemplate | None = best_locale(
        session.scalars(stmt.order_by(MessageTemplate.id)), locale
    ).get(key)
    if found is None:
        raise NotFound(f"no {kind + ' ' if kind else ''}message template {key!r}")
    return found
