"""The content library: save, find (with locale fallback), search and delete items; tags checked
against the outcomes, objectives and milestones that exist."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from content.markdown import render_markdown
from content.models import DEFAULT_LOCALE, ContentItem
from content.schemas import ROLES, STAGES, TAG_GROUPS
from engine.errors import NotFound, ValidationFailed
from engine.library import Objective, Outcome
from engine.plans.models import PlanTemplate

ITEM_FIELDS = ("kind", "title", "url", "summary", "body", "minutes", "tags")


@dataclass(frozen=True)
class KnownTags:
    """Every tag value an item may carry, by group."""

    groups: dict[str, frozenset[str]]

    def unknown(self, tags: dict[str, Any], prefix: str = "tags") -> dict[str, str]:
        errors: dict[str, str] = {}
        for group in TAG_GROUPS:
            wrong = [value for value in tags.get(group) or [] if value not in self.groups[group]]
            if wrong:
                what = group[:-1]
                errors[f"{prefix}.{group}"] = f"unknown {what} {wrong[0]!r}" + (
                    f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
                )
        return errors


def known_tags(session: Session) -> KnownTags:
    session.flush()
    milestones = {m["key"] for t in session.scalars(select(PlanTemplate)) for m in t.milestones if "key" in m}
    return KnownTags(
        {
            "outcomes": frozenset(session.scalars(select(Outcome.key))),
            "objectives": frozenset(session.scalars(select(Objective.key))),
            "milestones": frozenset(milestones),
            "stages": frozenset(STAGES),
            "roles": frozenset(ROLES),
        }
    )


def normalised_tags(tags: dict[str, Any]) -> dict[str, list[str]]:
    """Every group present, values de-duplicated in their given order."""
    return {group: list(dict.fromkeys(tags.get(group) or [])) for group in TAG_GROUPS}


def item_values(data: dict[str, Any]) -> dict[str, Any]:
    """A loaded ContentItemSchema dict as the row's values (tags normalised, body rendered)."""
    values = {name: data.get(name) for name in ITEM_FIELDS}
    values["url"] = data.get("url") or None
    values["summary"] = data.get("summary") or ""
    values["body"] = data.get("body") or ""
    values["tags"] = normalised_tags(data.get("tags") or {})
    return values


def item_changes(row: ContentItem | None, data: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Field → (stored, new) for what saving `data` would change ({} when nothing would)."""
    values = item_values(data)
    if row is None:
        return {name: (None, value) for name, value in values.items()}
    stored = {name: getattr(row, name) for name in ITEM_FIELDS}
    stored["tags"] = normalised_tags(stored["tags"] or {})
    return {name: (stored[name], value) for name, value in values.items() if stored[name] != value}


def find_row(session: Session, key: str, locale: str) -> ContentItem | None:
    return session.scalar(select(ContentItem).where(ContentItem.key == key, ContentItem.locale == locale))


def save_item(
    session: Session, data: dict[str, Any], *, known: KnownTags | None = None, item_id: int | None = None
) -> ContentItem:
    """Create or update the item (`data` loaded by ContentItemSchema); unknown tags are refused.

    With `item_id`, that row is updated (its key and locale may change, unless another row has them)."""
    errors = (known or known_tags(session)).unknown(data.get("tags") or {})
    if errors:
        raise ValidationFailed(errors)
    existing = find_row(session, data["key"], data["locale"])
    if item_id is not None:
        row = session.get(ContentItem, item_id)
        if row is None:
            raise NotFound(f"no content item {item_id}")
        if existing is not None and existing.id != row.id:
            raise ValidationFailed(
                {"key": f"an item {data['key']!r} in locale {data['locale']!r} exists already"}
            )
    else:
        row = existing
    if row is None:
        row = ContentItem(key=data["key"], locale=data["locale"])
        session.add(row)
    row.key, row.locale = data["key"], data["locale"]
    for name, value in item_values(data).items():
        setattr(row, name, value)
    row.body_html = render_markdown(row.body)
    session.flush()
    return row


def delete_item(session: Session, item_id: int) -> str:
    row = session.get(ContentItem, item_id)
    if row is None:
        raise NotFound(f"no content item {item_id}")
    key = row.key
    session.delete(row)
    session.flush()
    return key


def locale_chain(locale: str | None, default: str = DEFAULT_LOCALE) -> list[str]:
    """Which locales to try, best first: 'pt-BR' → ['pt-BR', 'pt', 'en']."""
    chain: list[str] = []
    for candidate in (locale or "", (locale or "").split("-")[0], default):
        if candidate and candidate not in chain:
            chain.append(candidate)
    return chain


def best_locale(rows: Iterable[Any], locale: str | None) -> dict[str, Any]:
    """key → the row in the best locale for `locale` (rows with none of the chain's locales: any)."""
    chain = locale_chain(locale)
    rank = {name: i for i, name in enumerate(chain)}
    best: dict[str, Any] = {}
    for row in rows:
        current = best.get(row.key)
        if current is None or rank.get(row.locale, len(chain)) < rank.get(current.locale, len(chain)):
            best[row.key] = row
    return best


def items_by_key(session: Session, keys: Sequence[str], locale: str | None) -> dict[str, ContentItem]:
    if not keys:
        return {}
    rows = session.scalars(select(ContentItem).where(ContentItem.key.in_(set(keys))).order_by(ContentItem.id))
    return best_locale(rows, locale)


def find_item(session: Session, key: str, locale: str | None = None) -> ContentItem:
    found = items_by_key(session, [key], locale).get(key)
    if found is None:
        raise NotFound(f"no content item {key!r}")
    return found


@dataclass(frozen=True)
class ItemFilter:
    search: str | None = None
    kind: str | None = None
    locale: str | None = None
    stage: str | None = None
    role: str | None = None
    outcome: str | None = None
    objective: str | None = None
    milestone: str | None = None


@dataclass(frozen=True)
class ItemPage:
    items: list[ContentItem]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


TAG_FILTERS = {"stage": "stages", "role": "roles", "outcome": "outcomes", "objective": "objectives"}


def search_items(session: Session, chosen: ItemFilter, *, page: int = 1, per_page: int = 25) -> ItemPage:
    """Items matching every filter, by title. Text search is in SQL; tag filters run over the matches
    in Python (a library is hundreds of items, and tags are JSON on both PostgreSQL and SQLite)."""
    stmt = select(ContentItem).order_by(ContentItem.title, ContentItem.locale, ContentItem.id)
    if chosen.search:
        pattern = "%" + chosen.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                ContentItem.title.ilike(pattern, escape="\\"),
                ContentItem.key.ilike(pattern, escape="\\"),
                ContentItem.summary.ilike(pattern, escape="\\"),
            )
        )
    if chosen.kind:
        stmt = stmt.where(ContentItem.kind == chosen.kind)
    if chosen.locale:
        stmt = stmt.where(ContentItem.locale == chosen.locale)
    rows = list(session.scalars(stmt))
    wanted = {group: getattr(chosen, name) for name, group in TAG_FILTERS.items() if getattr(chosen, name)}
    if chosen.milestone:
        wanted["milestones"] = chosen.milestone
    if wanted:
        rows = [r for r in rows if all(value in ((r.tags or {}).get(g) or []) for g, value in wanted.items())]
    start = (page - 1) * per_page
    return ItemPage(rows[start : start + per_page], len(rows), page, per_page)
