"""Privacy in the console: export everything held about a contact; erase a contact."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
