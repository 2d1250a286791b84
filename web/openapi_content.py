"""OpenAPI paths for the content API (merged into web.openapi.document)."""

from __future__ import annotations

from typing import Any

from content.schemas import CONTENT_KINDS, ROLES, STAGES

PROBLEM = {
    "description": "problem+json (RFC 7807); validation errors name each field in `errors`",
    "content": {"application/problem+json": {"schema": {"type": "object"}}},
}
TAG_LIST = {"type": "array", "items": {"type": "string"}}
ITEM = {
    "type": "object",
    "required": ["key", "kind", "title"],
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_\\-]{0,119}$"},
        "locale": {"type": "string", "default": "en", "example": "de"},
        "kind": {"type": "string", "enum": list(CONTENT_KINDS)},
        "title": {"type": "string", "maxLength": 200},
        "url": {"type": "string", "format": "uri", "nullable": True},
        "summary": {"type": "string"},
        "body": {
            "type": "string",
            "description": "Markdown; raw <script>, on…= handlers and javascript: URLs are refused",
        },
        "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
        "tags": {
            "type": "object",
            "description": "outcomes, objectives and milestones must exist in the playbook",
            "properties": {
                "outcomes": TAG_LIST,
                "objectives": TAG_LIST,
                "milestones": TAG_LIST,
                "stages": {"type": "array", "items": {"type": "string", "enum": list(STAGES)}},
                "roles": {"type": "array", "items": {"type": "string", "enum": list(ROLES)}},
            },
        },
    },
}


def _param(name: str, where: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string", **schema},
    }


def _op(summary: str, *codes: str, body: bool = False, params: tuple[Any, ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": ["content"],
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {**{code: {"description": "ok"} for code in codes}, "4XX": PROBLEM},
    }
    if params:
        operation["parameters"] = list(params)
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ITEM}}}
    return operation


def paths() -> dict[str, Any]:
    key = _param("key", "path", "the item's key")
    locale = _param("locale", "query", "a language tag; missing translations fall back to the default locale")
    filters = (
        _param("q", "query", "text in the title, key or summary"),
        _param("kind", "query", "one kind", enum=list(CONTENT_KINDS)),
        _param("locale", "query", "only this locale"),
        _param("stage", "query", "tagged with this lifecycle stage"),
        _param("role", "query", "tagged with this role"),
        _param("outcome", "query", "tagged with this outcome"),
        _param("objective", "query", "tagged with this objective"),
        _param("milestone", "query", "tagged with this milestone"),
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {
            "name": "per_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25},
        },
    )
    return {
        "/api/v1/content": {
            "get": _op("Search the content library (paginated: total, next)", "200", params=filters),
            "post": _op("Add an item (409 if the key exists in that locale)", "201", body=True),
        },
        "/api/v1/content/{key}": {
            "get": _op("One item, in the asked locale or its fallback", "200", params=(key, locale)),
            "put": _op("Replace an item (key from the path)", "200", body=True, params=(key, locale)),
        },
    }
