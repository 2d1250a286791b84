"""Helpers the OpenAPI path modules share (web.openapi imports those modules, so they can't import it)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _op(
    summary: str, *codes: str, body: dict[str, Any] | None = None, params: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """One bearer-secured operation: `codes` answer "ok", any 4XX is a problem."""
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {**{code: {"description": "ok"} for code in codes}, "4XX": PROBLEM},
    }
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation
