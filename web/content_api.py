"""API v1 for the content library (token auth): list/search, get (with locale fallback), create, update."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from content.library import ItemFilter, find_item, find_row, save_item, search_items
from content.models import ContentItem
from content.schemas import CONTENT_KINDS, LOCALE_PATTERN, ContentItemSchema
from engine.errors import Conflict, NotFound, ValidationFailed
from web.api import load, token_required
from web.context import db_session, json_body, unit_of_work

bp = Blueprint("content_api", __name__)
MAX_PER_PAGE = 100
FILTERS = ("q", "kind", "locale", "stage", "role", "outcome", "objective", "milestone")


def item_json(item: ContentItem) -> dict[str, Any]:
    return {
        "key": item.key,
        "locale": item.locale,
        "kind": item.kind,
        "title": item.title,
        "url": item.url,
        "summary": item.summary,
        "body": item.body,
        "body_html": item.body_html,
        "minutes": item.minutes,
        "tags": item.tags,
        "updated_at": item.updated_at.isoformat(),
    }


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name, str(default)).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValidationFailed({name: f"a whole number from {low} to {high}"})
    return int(text)


@bp.get("/api/v1/content")
@token_required
def list_items() -> Any:
    values = {name: (request.args.get(name) or "").strip() or None for name in FILTERS}
    for name, value in values.items():
        if value is not None and (len(value) > 200 or "\x00" in value):
            raise ValidationFailed({name: "at most 200 characters, no NUL"})
    if values["kind"] and values["kind"] not in CONTENT_KINDS:
        raise ValidationFailed({"kind": f"one of {', '.join(CONTENT_KINDS)}"})
    page = _int_arg("page", 1, 1, 1_000_000)
    per_page = _int_arg("per_page", 25, 1, MAX_PER_PAGE)
    chosen = ItemFilter(
        search=values["q"],
        kind=values["kind"],
        locale=values["locale"],
        stage=values["stage"],
        role=values["role"],
        outcome=values["outcome"],
        objective=values["objective"],
        milestone=values["milestone"],
    )
    found = search_items(db_session(), chosen, page=page, per_page=per_page)
    more = page < found.pages
    return jsonify(
        items=[item_json(i) for i in found.items],
        total=found.total,
        page=page,
        per_page=per_page,
        next=_next_url(page + 1) if more else None,
    )


def _next_url(page: int) -> str:
    kept: dict[str, Any] = {**request.args.to_dict(), "page": page}
    return url_for("content_api.list_items", **kept)


def _locale_arg() -> str | None:
    locale = request.args.get("locale")
    if locale is not None and LOCALE_PATTERN.match(locale) is None:
        raise ValidationFailed({"locale": "a language tag such as en, de or pt-BR"})
    return locale


@bp.get("/api/v1/content/<key>")
@token_required
def get_item(key: str) -> Any:
    """The item in `?locale=` (else its language, else the default locale)."""
    return jsonify(item_json(find_item(db_session(), key[:120], _locale_arg())))


@bp.post("/api/v1/content")
@token_required
def create_item() -> Any:
    data = load(ContentItemSchema(), json_body())
    with unit_of_work() as session:
        if find_row(session, data["key"], data["locale"]) is not None:
            raise Conflict(
                f"an item {data['key']!r} in locale {data['locale']!r} exists; PUT it to change it"
            )
        item = save_item(session, data)
        body = item_json(item)
    location = url_for("content_api.get_item", key=body["key"], locale=body["locale"])
    return jsonify(body), 201, {"Location": location}


@bp.put("/api/v1/content/<key>")
@token_required
def update_item(key: str) -> Any:
    """Replace the item `key` in `?locale=` (default: the body's locale, else the default locale)."""
    body = json_body()
    locale = _locale_arg() or body.get("locale") or "en"
    data = load(ContentItemSchema(), {**body, "key": key[:120], "locale": locale})
    with unit_of_work() as session:
        row = find_row(session, data["key"], data["locale"])
        if row is None:
            raise NotFound(f"no content item {key[:120]!r} in locale {locale!r}; POST to create it")
        item = save_item(session, data, item_id=row.id)
        result = item_json(item)
    return jsonify(result)
