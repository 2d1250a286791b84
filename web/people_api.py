"""API v1 for people and privacy: contact export and erasure, users."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("people_api", __name__)
