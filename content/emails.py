"""Email composition for batch sending: render once per step, personalise per recipient by tokens.

SendGrid sends one body per request and personalises it with substitutions, so a template is
rendered once per batch with each per-recipient field replaced by a token (`%ns:contact.name%`
in HTML, `%nst:contact.name%` in text); each recipient then gets the token values (HTML-escaped
for the HTML part). The outbox backend applies the same substitutions itself.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from content.models import ContentItem, MessageTemplate
from content.plaintext import html_to_text
from engine.errors import NotFound
from engine.templating import render_text
from surveys.links import OneClickQuestion

RECIPIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "name", "email"),
    "account": ("name",),
    "plan": ("goal", "url", "review_date"),
    "next_milestone": ("title", "due_date"),
}
LINK_FIELDS = ("unsubscribe_url",)


def html_token(path: str) -> str:
    return f"%ns:{path}%"


def text_token(path: str) -> str:
    return f"%nst:{path}%"


@dataclass(frozen=True)
class ComposedEmail:
    template_key: str
    subject: str
    html: str
    text: str


def survey_option_path(value: str) -> str:
    return f"survey.option.{value}"


def survey_placeholders(survey: OneClickQuestion | None, token: Any) -> dict[str, Any]:
    """`survey.title`, `survey.question` and `survey.options` (value, label, url): the urls are
    per-recipient tokens, since each recipient's answer links are signed for them."""
    if survey is None:
        return {}
    options = [
        {"value": o.value, "label": o.label, "url": token(survey_option_path(o.value))}
        for o in survey.options
    ]
    return {"survey": {"title": survey.survey_title, "question": survey.question_title, "options": options}}


def placeholders(token: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        group: {name: token(f"{group}.{name}") for name in names} for group, names in RECIPIENT_FIELDS.items()
    }
    context.update({name: token(name) for name in LINK_FIELDS})
    return context


def compose_email(
    session: Session,
    template_key: str,
    *,
    content_keys: list[str],
    campaign_name: str,
    postal_address: str,
    survey: OneClickQuestion | None = None,
) -> ComposedEmail:
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.key == template_key))
    if template is None:
        raise NotFound(f"no message template {template_key!r}")
    items = _content(session, content_keys)
    shared: dict[str, Any] = {
        "content": [
            {"title": i.title, "url": i.url or "", "summary": i.summary, "minutes": i.minutes} for i in items
        ],
        "campaign": {"name": campaign_name},
    }
    field = f"templates.{template_key}"
    html_context = {**shared, **placeholders(html_token), **survey_placeholders(survey, html_token)}
    text_context = {**shared, **placeholders(text_token), **survey_placeholders(survey, text_token)}
    body_html = render_text(template.body, html_context, field=f"{field}.body", html=True)
    body_text_source = render_text(template.body, text_context, field=f"{field}.body", html=True)
    subject = render_text(template.subject, text_context, field=f"{field}.subject")
    page = _layout().format(
        subject=html.escape(subject),
        preheader=html.escape(template.preheader),
        body=body_html,
        unsubscribe=html_token("unsubscribe_url"),
        postal=html.escape(postal_address),
    )
    text = html_to_text(body_text_source) + (
        f"\n--\nUnsubscribe: {text_token('unsubscribe_url')}\n{postal_address}\n"
    )
    return ComposedEmail(template_key, subject, page, text)


def recipient_substitutions(values: dict[str, str]) -> dict[str, str]:
    """Token → value for one recipient: escaped for the HTML part, raw for text and subject."""
    substitutions: dict[str, str] = {}
    for path, value in values.items():
        substitutions[html_token(path)] = html.escape(value)
        substitutions[text_token(path)] = value
    return substitutions


_TOKEN = re.compile(r"%nst?:[A-Za-z0-9_.\-]+%")  # survey option values may hold digits and '-'


def used_substitution_tokens(email: ComposedEmail) -> frozenset[str]:
    """The tokens a composed email actually contains (only those are sent per recipient)."""
    return frozenset(_TOKEN.findall(email.html) + _TOKEN.findall(email.text) + _TOKEN.findall(email.subject))


def personalise(text: str, substitutions: dict[str, str]) -> str:
    """Apply substitutions the way SendGrid does (the outbox backend and subjects use this)."""
    return _TOKEN.sub(lambda match: substitutions.get(match.group(0), match.group(0)), text)


def _content(session: Session, keys: list[str]) -> list[ContentItem]:
    if not keys:
        return []
    found = {c.key: c for c in session.scalars(select(ContentItem).where(ContentItem.key.in_(keys)))}
    missing = [k for k in keys if k not in found]
    if missing:
        raise NotFound(f"no content item {missing[0]!r}")
    return [found[k] for k in keys]


@cache
def _layout() -> str:
    """The responsive base layout every email body is placed in (content/layouts/email.html)."""
    return (resources.files("content") / "layouts" / "email.html").read_text(encoding="utf-8")
