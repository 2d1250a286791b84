"""API v1 reports: /api/v1/reports/<name> (JSON) and /api/v1/reports/<name>.csv."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reports_api", __name__)
