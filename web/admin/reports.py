"""Segment reports: charts with their tables, filters, CSV download, digests."""

from __future__ import annotations

from web.admin import bp  # noqa: F401
