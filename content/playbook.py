"""The playbook sections content owns: `content` (library items) and `templates` (messages)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from content.emails import html_token, placeholders, text_token
from content.inapp import check_card_template
from content.models import ContentItem, MessageTemplate
from engine.playbook import Section, register_section
from engine.templating import render_text

CONTENT_KINDS = ("article", "video", "checklist", "webinar", "template", "community")
STAGES = ("onboarding", "enablement", "adoption", "optimisation", "renewal")
ROLES = ("exec_sponsor", "champion", "power_user", "other")


class TagsSchema(Schema):
    outcomes = fields.List(fields.String(), load_default=list)
    objectives = fields.List(fields.String(), load_default=list)
    milestones = fields.List(fields.String(), load_default=list)
    stages = fields.List(fields.String(validate=validate.OneOf(STAGES)), load_default=list)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), load_default=list)


class ContentItemSchema(Schema):
    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_\-]{0,119}$"))
    kind = fields.String(required=True, validate=validate.OneOf(CONTENT_KINDS))
    title = fields.String(required=True, validate=validate.Length(1, 200))
    url = fields.Url(load_default=None, schemes={"http", "https"})
    summary = fields.String(load_default="")
    body = fields.String(load_default="")
    minutes = fields.Integer(load_default=5, validate=validate.Range(1, 600))
    locale = fields.String(load_default="en")
    tags = fields.Nested(TagsSchema, load_default=dict)


class TemplateSchema(Schema):
    key = fields.String(required=True, validate=validate.Regexp(r"^[a-z][a-z0-9_\-]{0,119}$"))
    kind = fields.String(load_default="email", validate=validate.OneOf(["email", "in_app"]))
    subject = fields.String(load_default="", validate=validate.Length(max=300))
    preheader = fields.String(load_default="", validate=validate.Length(max=300))
    body = fields.String(required=True, validate=validate.Length(1, 100_000))


SAMPLE_CONTENT = [{"title": "Sample", "url": "https://example.com", "summary": "", "minutes": 3}]
# What a campaign step with `survey:` gives its template (content.emails.survey_placeholders).
SAMPLE_SURVEY = {
    "title": "Sample survey",
    "question": "Sample question?",
    "options": [{"value": "sample", "label": "Sample", "url": "https://example.com"}],
}


def _load_content(session: Session, items: list[dict[str, Any]]) -> int:
    for item in items:
        row = session.scalar(select(ContentItem).where(ContentItem.key == item["key"]))
        if row is None:
            row = ContentItem(key=item["key"])
            session.add(row)
        for name in ("kind", "title", "url", "summary", "body", "minutes", "locale", "tags"):
            setattr(row, name, item[name])
    return len(items)


def _load_templates(session: Session, items: list[dict[str, Any]]) -> int:
    for i, item in enumerate(items):
        # Render against sample data now so a broken template fails the import, not a send.
        sample = {"content": SAMPLE_CONTENT, "campaign": {"name": "Sample"}, "survey": SAMPLE_SURVEY}
        if item["kind"] == "in_app":  # a card: no unsubscribe link, no survey; sanitized and short
            check_card_template(item["body"], field=f"templates[{i}].body")
        else:
            render_text(
                item["body"],
                {**sample, **placeholders(html_token)},
                field=f"templates[{i}].body",
                html=True,
            )
        render_text(item["subject"], {**sample, **placeholders(text_token)}, field=f"templates[{i}].subject")
        row = session.scalar(select(MessageTemplate).where(MessageTemplate.key == item["key"]))
        if row is None:
            row = MessageTemplate(key=item["key"], version=0)
            session.add(row)
        changed = (row.kind, row.subject, row.preheader, row.body) != (
            item["kind"],
            item["subject"],
            item["preheader"],
            item["body"],
        )
        if changed:
            row.kind, row.subject = item["kind"], item["subject"]
            row.preheader, row.body = item["preheader"], item["body"]
            row.version = (row.version or 0) + 1
    return len(items)


def _dump_content(session: Session) -> list[dict[str, Any]]:
    fields_ = ("key", "kind", "title", "url", "summary", "body", "minutes", "locale", "tags")
    rows = session.scalars(select(ContentItem).order_by(ContentItem.id))
    return [{name: getattr(row, name) for name in fields_} for row in rows]


def _dump_templates(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(MessageTemplate).order_by(MessageTemplate.id))
    return [
        {"key": r.key, "kind": r.kind, "subject": r.subject, "preheader": r.preheader, "body": r.body}
        for r in rows
    ]


def connect() -> None:
    register_section(Section("content", 40, ContentItemSchema, _load_content, _dump_content))
    register_section(Section("templates", 41, TemplateSchema, _load_templates, _dump_templates))
