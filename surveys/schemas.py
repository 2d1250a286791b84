"""marshmallow schemas: survey definitions (playbook/admin) and response payloads (API)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from engine.db import MAX_ID
from engine.playbook.sections import JsonLogic

QUESTION_KINDS = (
    "outcome_pick",
    "objective_pick",
    "key_result",
    "single_choice",
    "multi_choice",
    "nps",
    "csat",
    "text",
)
CHANNELS = ("in_app", "email", "hosted", "api")
MAX_TEXT = 2000


class OptionSchema(Schema):
    value = fields.String(required=True, validate=validate.Length(1, 80))
    label = fields.String(required=True, validate=validate.Length(1, 200))


class QuestionSchema(Schema):
    key = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,59}$",
            error="Use lower-case letters, digits and _, starting with a letter (at most 60 characters).",
        ),
    )
    kind = fields.String(required=True, validate=validate.OneOf(QUESTION_KINDS))
    title = fields.String(required=True, validate=validate.Length(1, 300))
    help = fields.String(load_default="")
    required = fields.Boolean(load_default=False)
    max = fields.Integer(load_default=None, validate=validate.Range(1, 20))
    max_length = fields.Integer(load_default=500, validate=validate.Range(1, MAX_TEXT))
    options = fields.List(fields.Nested(OptionSchema), load_default=list)
    show_if = JsonLogic(load_default=None)

    @validates_schema
    def _choices_have_options(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] in ("single_choice", "multi_choice") and not data["options"]:
            raise ValidationError("choice questions need options", "options")


class SurveyDefinitionSchema(Schema):
    key = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_\-]{0,79}$",
            error="Use lower-case letters, digits, _ and -, starting with a letter (at most 80 characters).",
        ),
    )
    title = fields.String(required=True, validate=validate.Length(1, 200))
    anonymous = fields.Boolean(load_default=False)
    intro = fields.String(load_default="")
    redisplay_days = fields.Integer(load_default=30, validate=validate.Range(0, 3650))
    # UI strings per language, overriding the built-in ones: {"de": {"next": "Weiter"}}
    strings = fields.Dict(
        keys=fields.String(
            validate=validate.Regexp(r"^[a-z]{2}$", error="Use a two-letter language code, such as de.")
        ),
        values=fields.Dict(keys=fields.String(), values=fields.String(validate=validate.Length(max=300))),
        load_default=dict,
    )
    questions = fields.List(fields.Nested(QuestionSchema), required=True, validate=validate.Length(1, 30))

    @validates_schema
    def _unique_keys(self, data: dict[str, Any], **_: Any) -> None:
        keys = [q["key"] for q in data.get("questions", [])]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValidationError(f"duplicate question keys: {', '.join(duplicates)}", "questions")


class ContactRefSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))  # the column's width
    name = fields.String(load_default="", validate=validate.Length(max=200))


class ResponseInSchema(Schema):
    client_response_id = fields.String(required=True, validate=validate.Length(8, 100))
    account = fields.String(load_default=None, validate=validate.Length(1, 200))
    contact = fields.Nested(ContactRefSchema, load_default=None)
    channel = fields.String(load_default="api", validate=validate.OneOf(CHANNELS))
    version = fields.Integer(load_default=None, validate=validate.Range(1, MAX_ID))
    complete = fields.Boolean(load_default=True)
    answers = fields.Dict(keys=fields.String(), required=True)
