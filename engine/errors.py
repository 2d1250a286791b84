"""Domain errors: the one vocabulary every layer raises and the web layer maps to HTTP problems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NorthstarError(Exception):
    """Base of every error the domain raises on purpose."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra or {})


class ValidationFailed(NorthstarError):
    """Input broke a rule; `errors` maps a field path (dotted or JSON pointer) to messages."""

    status = 422
    title = "Validation failed"

    def __init__(self, errors: Mapping[str, Any], detail: str | None = None) -> None:
        self.errors: dict[str, Any] = dict(errors)
        first = next(iter(self.errors.items()), ("", ""))
        super().__init__(detail or f"{first[0]}: {_first_message(first[1])}", extra={"errors": self.errors})


class NotFound(NorthstarError):
    status = 404
    title = "Not found"


class Conflict(NorthstarError):
    status = 409
    title = "Conflict"


class ConfigurationError(NorthstarError):
    """A setting is missing or invalid; raised once at start-up."""

    status = 500
    title = "Configuration error"


def _first_message(value: Any) -> str:
    if isinstance(value, list) and value:
        return _first_message(value[0])
    if isinstance(value, dict) and value:
        key, inner = next(iter(value.items()))
        return f"{key}: {_first_message(inner)}"
    return str(value)


def flatten_messages(messages: Any, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"events.1.timestamp": "..."}: the same dotted paths the
    services use (`answers.<key>`, `events.<i>.<field>`), so a client maps every error one way.
    `_schema` messages land on their parent's path."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {path: " ".join(messages)}
    if isinstance(messages, list):
        messages = dict(enumerate(messages))
    if not isinstance(messages, dict):
        return {path: str(messages)}
    flat: dict[str, str] = {}
    for key, inner in messages.items():
        child = path if key == "_schema" else f"{path}.{key}" if path else str(key)
        flat.update(flatten_messages(inner, child))
    return flat
