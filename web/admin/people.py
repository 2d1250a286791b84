"""People and permissions: users, invitations, roles; the admin audit log; settings."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
