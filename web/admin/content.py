"""Content library admin: items (CRUD, search, filters, CSV import), templates, preview, test send."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
