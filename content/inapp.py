"""In-app cards: an `in_app` template rendered for one reader into a small, sanitized HTML fragment.

The widget inserts the fragment into its shadow root as HTML, so the fragment is rebuilt here from
an allowlist (a few text tags, links to http(s)/mailto only, no attributes but `href`) whatever the
template wrote: the sandboxed, autoescaped Jinja keeps variables from injecting markup, and the
allowlist keeps the template itself from carrying scripts, handlers, styles or forms.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from content.library import best_locale
from content.models import ContentItem, MessageTemplate
from content.templates import render_string
from engine.errors import NotFound
from engine.templating import TemplateFailed

ALLOWED_TAGS = frozenset({"p", "br", "strong", "b", "em", "i", "ul", "ol", "li", "a", "span", "small"})
VOID_TAGS = frozenset({"br"})
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "noscript", "title"})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_FRAGMENT_CHARS = 4000  # a card, not a page: a longer template is refused when it renders


@dataclass(frozen=True)
class CardReader:
    """What a card may say about the person reading it (the email variables that fit in-app)."""

    first_name: str
    name: str
    account_name: str
    plan_goal: str = ""
    plan_url: str = ""
    plan_review_date: str = ""
    next_milestone_title: str = ""
    next_milestone_due_date: str = ""
    campaign_name: str = ""


@dataclass(frozen=True)
class CardContent:
    title: str
    url: str
    summary: str
    minutes: int


def card_context(reader: CardReader, content: list[CardContent]) -> dict[str, Any]:
    return {
        "contact": {"first_name": reader.first_name, "name": reader.name},
        "account": {"name": reader.account_name},
        "plan": {"goal": reader.plan_goal, "url": reader.plan_url, "review_date": reader.plan_review_date},
        "next_milestone": {"title": reader.next_milestone_title, "due_date": reader.next_milestone_due_date},
        "content": [
            {"title": c.title, "url": c.url, "summary": c.summary, "minutes": c.minutes} for c in content
        ],
        "campaign": {"name": reader.campaign_name},
    }


SAMPLE_READER = CardReader(
    first_name="Sample",
    name="Sample Reader",
    account_name="Sample Inc",
    plan_goal="Sample goal",
    plan_url="https://example.com/p/sample",
    plan_review_date="January 01, 2030",
    next_milestone_title="Sample milestone",
    next_milestone_due_date="January 01",
    campaign_name="Sample",
)
SAMPLE_CONTENT = [CardContent("Sample", "https://example.com", "", 3)]


def render_card(source: str, reader: CardReader, content: list[CardContent], *, field: str) -> str:
    """The template `source` for one reader, sanitized; TemplateFailed names `field` on any error."""
    fragment = sanitize_fragment(render_string(source, card_context(reader, content), field=field, html=True))
    if len(fragment) > MAX_FRAGMENT_CHARS:
        detail = f"renders to {len(fragment)} characters; an in-app card must stay under {MAX_FRAGMENT_CHARS}"
        raise TemplateFailed({field: detail})
    return fragment


def check_card_template(source: str, *, field: str) -> None:
    """Render against sample data at import, so a broken in-app template fails the import, not a fetch."""
    render_card(source, SAMPLE_READER, SAMPLE_CONTENT, field=field)


def in_app_templates(
    session: Session, keys: set[str], locale: str | None = None
) -> dict[str, MessageTemplate]:
    """key → the in-app template in the best locale for `locale` (default: the default locale)."""
    if not keys:
        return {}
    rows = session.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.key.in_(keys), MessageTemplate.kind == "in_app")
        .order_by(MessageTemplate.id)
    )
    return best_locale(rows, locale)


def card_content(session: Session, keys: set[str], locale: str | None = None) -> dict[str, CardContent]:
    """The content items the steps name, by key (a step's list is looked up in this)."""
    if not keys:
        return {}
    rows = session.scalars(select(ContentItem).where(ContentItem.key.in_(keys)).order_by(ContentItem.id))
    return {
        key: CardContent(row.title, row.url or "", row.summary, row.minutes)
        for key, row in best_locale(rows, locale).items()
    }


def step_content(found: dict[str, CardContent], keys: list[str]) -> list[CardContent]:
    missing = [k for k in keys if k not in found]
    if missing:
        raise NotFound(f"no content item {missing[0]!r}")
    return [found[k] for k in keys]


class _Sanitizer(HTMLParser):
    """Re-emits only allowlisted tags; text is re-escaped, so nothing the parser saw passes raw."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skip += 1
            return
        if self.skip or tag not in ALLOWED_TAGS:
            return
        if tag == "a":
            href = _safe_href(dict(attrs).get("href"))
            # Links open in a new tab: the card sits inside the customer's product, which stays open.
            extra = f' href="{html.escape(href)}" target="_blank" rel="noopener noreferrer"' if href else ""
            self.out.append(f"<a{extra}>")
        else:
            self.out.append(f"<{tag}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS and not self.skip:
            self.out.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip or tag not in self.open:
            return
        while self.open:  # close what the template left open inside it, as a browser would
            closing = self.open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(html.escape(data, quote=False))

    def fragment(self) -> str:
        self.close()
        self.out.extend(f"</{tag}>" for tag in reversed(self.open))
        self.open = []
        return re.sub(r"\n\s*\n+", "\n", "".join(self.out)).strip()


def _safe_href(href: str | None) -> str | None:
    if not href:
        return None
    href = href.strip()
    try:
        scheme = urlsplit(href).scheme.lower()
    except ValueError:
        return None
    return href if scheme in LINK_SCHEMES else None


def sanitize_fragment(markup: str) -> str:
    """Only ALLOWED_TAGS survive, links only with an http(s)/mailto `href`; all else becomes text or goes."""
    sanitizer = _Sanitizer()
    sanitizer.feed(markup)
    return sanitizer.fragment()
