"""The console dashboard: the numbers CS leaders open first, each linking to its report."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
