"""Signed, tracked link redirects from emails (records the click, redirects only to registered URLs)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("track", __name__)
