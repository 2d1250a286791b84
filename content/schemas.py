"""marshmallow schemas for content items and message templates (playbook YAML, CSV rows, API, admin)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates

from content.markdown import MAX_BODY_CHARS, unsafe_markdown
from content.models import DEFAULT_LOCALE

CONTENT_KINDS = ("article", "video", "checklist", "webinar", "template", "community")
KIND_LABELS = {
    "article": "Article",
    "video": "Video",
    "checklist": "Checklist",
    "webinar": "Webinar",
    "template": "Template download",
    "community": "Community thread",
}
STAGES = ("onboarding", "enablement", "adoption", "optimisation", "renewal")
ROLES = ("exec_sponsor", "champion", "power_user", "other")
TAG_GROUPS = ("outcomes", "objectives", "milestones", "stages", "roles")
TEMPLATE_KINDS = ("email", "in_app")
KEY = validate.Regexp(
    r"^[a-z][a-z0-9_\-]{0,119}$", error="lowercase letters, digits, '-' and '_', from a letter"
)
LOCALE_PATTERN = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
LOCALE = validate.Regexp(LOCALE_PATTERN, error="a language tag such as en, de or pt-BR")


class TagsSchema(Schema):
    outcomes = fields.List(fields.String(), load_default=list)
    objectives = fields.List(fields.String(), load_default=list)
    milestones = fields.List(fields.String(), load_default=list)
    stages = fields.List(fields.String(validate=validate.OneOf(STAGES)), load_default=list)
    roles = fields.List(fields.String(validate=validate.OneOf(ROLES)), load_default=list)


class ContentItemSchema(Schema):
    key = fields.String(required=True, validate=KEY)
    kind = fields.String(required=True, validate=validate.OneOf(CONTENT_KINDS))
    title = fields.String(required=True, validate=validate.Length(1, 200))
    url = fields.Url(
        load_default=None, allow_none=True, schemes={"http", "https"}, validate=validate.Length(max=2000)
    )
    summary = fields.String(load_default="", validate=validate.Length(max=2000))
    body = fields.String(load_default="", validate=validate.Length(max=MAX_BODY_CHARS))
    minutes = fields.Integer(load_default=5, validate=validate.Range(1, 600))
    locale = fields.String(load_default=DEFAULT_LOCALE, validate=LOCALE)
    tags = fields.Nested(TagsSchema, load_default=dict)

    @validates("body")
    def _safe_body(self, value: str, **_: Any) -> None:
        problem = unsafe_markdown(value)
        if problem:
            raise ValidationError(problem)


class TemplateSchema(Schema):
    key = fields.String(required=True, validate=KEY)
    kind = fields.String(load_default="email", validate=validate.OneOf(TEMPLATE_KINDS))
    locale = fields.String(load_default=DEFAULT_LOCALE, validate=LOCALE)
    subject = fields.String(load_default="", validate=validate.Length(max=300))
    preheader = fields.String(load_default="", validate=validate.Length(max=300))
    body = fields.String(required=True, validate=validate.Length(1, 100_000))
