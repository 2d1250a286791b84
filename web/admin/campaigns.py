"""Campaign builder: draft, validate, publish as a new version, pause/resume, live step counts."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
