"""Item bodies: Markdown → HTML (markdown-it, CommonMark) → sanitized by nh3; unsafe input is refused.

Sanitizing alone would quietly drop a `<script>`; an author should hear that it was refused and
where, so `unsafe_markdown` names the line first, and nh3 still cleans whatever is stored.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "hr", "i",
        "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th",
        "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_BODY_CHARS = 100_000

_UNSAFE = (
    (re.compile(r"<\s*(script|style|iframe|object|embed|form|input|button|link|meta|base|svg|math)\b", re.I),
     "raw <{0}> is not allowed in an item body"),
    (re.compile(r"<[^>]*\son[a-z]+\s*=", re.I), "event-handler attributes (on…=) are not allowed"),
    # a link target or attribute value (prose such as "your data: …" is fine)
    (re.compile(r"(?:\(|<|=\s*[\"']?)\s*(javascript|vbscript|data)\s*:", re.I),
     "{0}: URLs are not allowed (use http, https or mailto)"),
)  # fmt: skip

_markdown = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


def unsafe_markdown(source: str) -> str | None:
    """'line N: why' for the first unsafe construct in `source`, or None."""
    for number, line in enumerate(source.splitlines(), start=1):
        for pattern, message in _UNSAFE:
            found = pattern.search(line)
            if found:
                return f"line {number}: " + message.format(found.group(1).lower() if found.groups() else "")
    return None


def render_markdown(source: str) -> str:
    """Sanitized HTML for a Markdown body (links get rel="noopener noreferrer")."""
    if not source.strip():
        return ""
    return nh3.clean(
        _markdown.render(source),
        tags=set(ALLOWED_TAGS),
        attributes={"*": set(), **{tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()}},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer",
    )
