"""OpenAPI paths for the campaigns API (merged into web.openapi.document)."""

from __future__ import annotations

from typing import Any

from web.openapi_common import _op as common_op

KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": True,
    "description": "the draft's ETag from GET .../draft: a save based on an older draft is refused (412); "
    "`*` overwrites whatever is current, on purpose",
    "schema": {"type": "string"},
}
STEP = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "key": {"type": "string", "pattern": "^[a-z][a-z0-9_\\-]{0,79}$"},
        "kind": {"type": "string", "enum": ["email", "in_app", "wait", "wait_until", "branch", "exit"]},
        "template": {"type": "string", "description": "email and in_app: a message template key"},
        "to": {"type": "array", "items": {"type": "string"}, "description": "contact roles; empty: everyone"},
        "content": {"type": "array", "items": {"type": "string"}, "description": "content item keys"},
        "survey": {"type": "string"},
        "days": {"type": "number", "description": "wait"},
        "milestone": {"type": "string", "description": "wait_until: achieved, or days_before_due"},
        "days_before_due": {"type": "integer"},
        "event": {"type": "string"},
        "count": {"type": "integer"},
        "kr": {"type": "string", "description": "wait_until: an objective key"},
        "reaches": {"description": 'a number or "target"'},
        "timeout_days": {"type": "number"},
        "on_timeout": {"type": "string", "description": "a later step's key"},
        "condition": {"type": "object", "description": "branch: JSON Logic over the rules' facts"},
        "then": {"type": "string"},
        "else": {"type": "string", "description": 'a later step\'s key or "exit"'},
    },
}
DOCUMENT = {
    "type": "object",
    "required": ["name", "steps"],
    "description": "The playbook's campaign shape (docs/campaigns.md); 422 errors are keyed "
    "`steps.<i>.<field>`, `steps.<i>.condition/<JSON pointer>`, `send_window.<field>`...",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "steps": {"type": "array", "items": STEP, "minItems": 1, "maxItems": 50},
        "trigger": {"type": "object"},
        "exit_when": {"type": "object"},
        "reentry_days": {"type": "integer"},
        "holdout_percent": {"type": "integer", "minimum": 0, "maximum": 50},
        "category": {"type": "string"},
        "send_window": {"type": "object"},
        "caps": {"type": "boolean"},
    },
}


def _op(
    summary: str, *codes: str, body: dict[str, Any] | None = None, params: tuple[Any, ...] = (KEY,)
) -> dict[str, Any]:
    """`openapi_common._op`, but every campaign path carries `{key}` unless the caller says otherwise."""
    return common_op(summary, *codes, body=body, params=params)


def _optional_body(operation: dict[str, Any]) -> dict[str, Any]:
    operation["requestBody"]["required"] = False
    return operation


def paths() -> dict[str, Any]:
    return {
        "/api/v1/campaigns": {
            "get": _op(
                "Every campaign: status, version, paused, draft pending, enrolments by state",
                "200",
                params=(),
            ),
            "post": _op(
                "Create a campaign as a draft (publish it to make version 1)",
                "201",
                params=(),
                body={
                    "type": "object",
                    "required": ["key", "name"],
                    "properties": {
                        "key": {"type": "string"},
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                    },
                },
            ),
        },
        "/api/v1/campaigns/{key}/draft": {
            "get": _op("The draft (or the current version, as the next draft) with its ETag", "200"),
            "put": _op(
                "Replace the draft; validated (422 keyed by step and field); 412 when If-Match is stale, "
                "428 without it",
                "200",
                body=DOCUMENT,
                params=(KEY, IF_MATCH),
            ),
            "delete": _op("Discard the draft (a campaign never published goes with it)", "200"),
        },
        "/api/v1/campaigns/{key}/publish": {
            "post": _optional_body(
                _op(
                    "Publish the draft as the next version; running enrolments stay on theirs "
                    "(If-Match optional: 412 when stale)",
                    "200",
                    body={"type": "object", "properties": {"note": {"type": "string"}}},
                    params=(KEY, dict(IF_MATCH, required=False)),
                )
            ),
        },
        "/api/v1/campaigns/{key}/pause": {"post": _op("Pause: its triggers enrol no one", "200")},
        "/api/v1/campaigns/{key}/resume": {"post": _op("Resume a paused campaign", "200")},
        "/api/v1/campaigns/{key}/stats": {
            "get": _op("Live counts: enrolments per version, step and state", "200"),
        },
    }
