"""OpenAPI paths for the people API (merged into web.openapi.document)."""

from __future__ import annotations

from typing import Any


def paths() -> dict[str, Any]:
    return {}
