"""Email composition for batch sending: render once per step, personalise per recipient by tokens.

SendGrid sends one body per request and personalises it with substitutions, so a template is
rendered once per batch with each per-recipient field replaced by a token (`%ns:contact.name%`
in HTML, `%nst:contact.name%` in text); each recipient then gets the token values (HTML-escaped
for the HTML part). The outbox backend applies the same substitutions itself. Content links are
tokens too (`content.0.url`): each recipient's is a signed, tracked link naming their message.

The body goes into the responsive base layout (content/layouts/email.html, with the preheader),
its CSS is inlined by css-inline (media queries stay in a <style> block), and the plain-text part
is generated from the rendered body.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Protocol

import css_inline
from jinja2 import Environment, Template
from markupsafe import Markup
from sqlalchemy.orm import Session

from content.library import items_by_key
from content.models import ContentItem
from content.plaintext import html_to_text
from content.templates import SAMPLE_CONTEXT, find_template, render_string
from engine.errors import NotFound
from surveys.links import OneClickOption

RECIPIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "contact": ("first_name", "name", "email"),
    "account": ("name",),
    "plan": ("goal", "url", "review_date"),
    "next_milestone": ("title", "due_date"),
}
LINK_FIELDS = ("unsubscribe_url",)
RECOMMENDED_FIELDS = ("title", "url", "summary", "minutes", "kind", "why")


def html_token(path: str) -> str:
    return f"%ns:{path}%"


def text_token(path: str) -> str:
    return f"%nst:{path}%"


def content_url_path(index: int) -> str:
    return f"content.{index}.url"


@dataclass(frozen=True)
class ComposedEmail:
    template_key: str
    subject: str
    html: str
    text: str
    locale: str = "en"
    # The step's items in template order: content.<i>.url is a tracked link to content_ids[i].
    content_ids: list[int] = field(default_factory=list)
    # Whether the recipients need a `recommended.*` value (the template or the step asks for one).
    uses_recommended: bool = False


def survey_option_path(value: str) -> str:
    return f"survey.option.{value}"


class SurveyQuestion(Protocol):
    """What an email shows of a survey: a send gets `surveys.links.OneClickQuestion`, a preview
    without a survey to show gets SAMPLE_SURVEY."""

    @property
    def survey_title(self) -> str: ...

    @property
    def question_title(self) -> str: ...

    @property
    def options(self) -> tuple[OneClickOption, ...]: ...


@dataclass(frozen=True)
class SampleSurvey:
    survey_title: str
    question_title: str
    options: tuple[OneClickOption, ...]


# The survey check_template renders against, as a question: what a preview shows when no campaign
# step names a survey for the template.
SAMPLE_SURVEY = SampleSurvey(
    survey_title=SAMPLE_CONTEXT["survey"]["title"],
    question_title=SAMPLE_CONTEXT["survey"]["question"],
    options=tuple(OneClickOption(o["value"], o["label"]) for o in SAMPLE_CONTEXT["survey"]["options"]),
)


def survey_placeholders(survey: SurveyQuestion | None, token: Any) -> dict[str, Any]:
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
    context["recommended"] = {name: token(f"recommended.{name}") for name in RECOMMENDED_FIELDS}
    return context


def _content_context(items: list[ContentItem], token: Any, recommend: bool) -> list[dict[str, Any]]:
    entries = [
        {
            "title": i.title,
            "url": token(content_url_path(n)),
            "summary": i.summary,
            "minutes": i.minutes,
            "kind": i.kind,
        }
        for n, i in enumerate(items)
    ]
    if recommend:  # "send the top recommended item": it leads the step's list
        entries.insert(0, {name: token(f"recommended.{name}") for name in RECOMMENDED_FIELDS})
    return entries


def compose_email(
    session: Session,
    template_key: str,
    *,
    content_keys: list[str],
    campaign_name: str,
    postal_address: str,
    survey: SurveyQuestion | None = None,
    locale: str | None = None,
    recommend: bool = False,
) -> ComposedEmail:
    """The template (in `locale`, else the default locale) rendered once for a batch."""
    template = find_template(session, template_key, locale, kind="email")
    items = _content(session, content_keys, locale)
    field_ = f"templates.{template_key}"
    contexts = {}
    for kind, token in (("html", html_token), ("text", text_token)):
        contexts[kind] = {
            "content": _content_context(items, token, recommend),
            "campaign": {"name": campaign_name},
            **placeholders(token),
            **survey_placeholders(survey, token),
        }
    body_html = render_string(template.body, contexts["html"], field=f"{field_}.body", html=True)
    body_text_source = render_string(template.body, contexts["text"], field=f"{field_}.body", html=True)
    subject = render_string(template.subject, contexts["text"], field=f"{field_}.subject", html=False)
    preheader = render_string(template.preheader, contexts["text"], field=f"{field_}.preheader", html=False)
    page = email_page(
        subject=subject, preheader=preheader, body=body_html, postal=postal_address, lang=template.locale
    )
    text = (
        html_to_text(body_text_source)
        + f"\n--\nUnsubscribe: {text_token('unsubscribe_url')}\n{postal_address}\n"
    )
    asked = "%ns:recommended." in body_html or "%nst:recommended." in subject + preheader
    uses_recommended = recommend or asked
    return ComposedEmail(
        template_key, subject, page, text, template.locale, [i.id for i in items], uses_recommended
    )


def email_page(*, subject: str, preheader: str, body: str, postal: str, lang: str = "en") -> str:
    """The base layout around a rendered body, CSS inlined (media queries kept for small screens)."""
    page = _layout().render(
        subject=subject,
        preheader=preheader,
        body=Markup(body),  # already rendered by the sandbox, autoescaped  # noqa: S704
        unsubscribe=html_token("unsubscribe_url"),
        postal=postal,
        lang=lang,
    )
    return _inliner().inline(page)


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


def _content(session: Session, keys: list[str], locale: str | None) -> list[ContentItem]:
    found = items_by_key(session, keys, locale)
    missing = [k for k in keys if k not in found]
    if missing:
        raise NotFound(f"no content item {missing[0]!r}")
    return [found[k] for k in keys]


@cache
def _layout() -> Template:
    """The responsive base layout every email body is placed in (trusted: ours, not user-authored)."""
    source = (resources.files("content") / "layouts" / "email.html").read_text(encoding="utf-8")
    return Environment(autoescape=True, keep_trailing_newline=True).from_string(source)


@cache
def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
