"""The playbook sections content owns: `content` (library items) and `templates` (messages).

Both are checked as the admin and the API check them: item tags must name outcomes, objectives and
milestones that exist (plan templates load first), bodies must be safe Markdown, and templates
must render against the documented sample data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from content.library import known_tags, normalised_tags, save_item
from content.models import DEFAULT_LOCALE, ContentItem, MessageTemplate
from content.schemas import (  # noqa: F401  (re-exported: older imports name them here)
    CONTENT_KINDS,
    ROLES,
    STAGES,
    ContentItemSchema,
    TagsSchema,
    TemplateSchema,
)
from content.templates import check_template
from engine.errors import ValidationFailed
from engine.playbook import Section, register_section
from engine.templating import TemplateFailed


def _load_content(session: Session, items: list[dict[str, Any]]) -> int:
    known = known_tags(session)
    for i, item in enumerate(items):
        try:
            save_item(session, item, known=known)
        except ValidationFailed as exc:
            raise ValidationFailed(
                {f"content[{i}].{name}": message for name, message in exc.errors.items()}
            ) from exc
    return len(items)


def _load_templates(session: Session, items: list[dict[str, Any]]) -> int:
    for i, item in enumerate(items):
        # Render against sample data now so a broken template fails the import, not a send.
        check_template(
            item["kind"], item["subject"], item["preheader"], item["body"], prefix=f"templates[{i}]."
        )
        row = session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.key == item["key"], MessageTemplate.locale == item["locale"]
            )
        )
        if row is None:
            row = MessageTemplate(key=item["key"], locale=item["locale"], version=0)
            session.add(row)
        wanted = (item["kind"], item["subject"], item["preheader"], item["body"])
        if (row.kind, row.subject, row.preheader, row.body) != wanted:
            row.kind, row.subject, row.preheader, row.body = wanted
            row.version = (row.version or 0) + 1
    return len(items)


def _dump_content(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(ContentItem).order_by(ContentItem.id))
    dumped = []
    for row in rows:
        item: dict[str, Any] = {
            "key": row.key,
            "kind": row.kind,
            "title": row.title,
            "url": row.url,
            "summary": row.summary,
            "body": row.body,
            "minutes": row.minutes,
            "locale": row.locale,
            "tags": normalised_tags(row.tags or {}),
        }
        dumped.append(item)
    return dumped


def _dump_templates(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(MessageTemplate).order_by(MessageTemplate.id))
    dumped = []
    for r in rows:
        item: dict[str, Any] = {"key": r.key, "kind": r.kind}
        if r.locale != DEFAULT_LOCALE:
            item["locale"] = r.locale
        item.update({"subject": r.subject, "preheader": r.preheader, "body": r.body})
        dumped.append(item)
    return dumped


def connect() -> None:
    register_section(Section("content", 40, ContentItemSchema, _load_content, _dump_content))
    register_section(Section("templates", 41, TemplateSchema, _load_templates, _dump_templates))


__all__ = ["TemplateFailed", "connect"]
