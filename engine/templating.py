"""Sandboxed Jinja for every user-authored text (plan goals, emails): autoescaped, no attribute tricks."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import ValidationFailed


class TemplateFailed(ValidationFailed):
    """A template that does not parse or does not render; `errors` names the template field."""


@lru_cache(maxsize=2)
def environment(autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(autoescape=autoescape, undefined=StrictUndefined)


@lru_cache(maxsize=512)
def _compiled(source: str, html: bool) -> Template:
    return environment(html).from_string(source)


def render_text(source: str, context: dict[str, Any], *, field: str = "template", html: bool = False) -> str:
    """Render `source` in the sandbox; raise TemplateFailed naming `field` on any template error."""
    try:
        return _compiled(source, html).render(context)
    except TemplateError as exc:
        raise TemplateFailed({field: str(exc)}) from exc
