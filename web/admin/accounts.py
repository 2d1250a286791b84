"""Account 360 and global search: traits, contacts, answers, plan, enrollments, messages, events."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
