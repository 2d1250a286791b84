"""API v1 for the content library and templates (token auth)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("content_api", __name__)
