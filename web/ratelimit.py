"""Rate limits (Flask-Limiter on Redis; in-memory only in the Redis-less demo)."""

from __future__ import annotations

import jwt
from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from engine.config import Settings

limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="fixed-window")


def init_app(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    app.config.setdefault("RATELIMIT_ENABLED", settings.rate_limits_enabled)
    limiter.init_app(app)


def respondent_key() -> str:
    """Who is answering, for the per-contact limit: the identity token's subject (unverified: it
    only picks a bucket; the IP limit still applies), else the address. The body is not parsed
    here: this runs before the view validates it."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token and not token.startswith("ns_"):
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            return f"contact:{claims.get('account')}:{claims.get('sub')}"
        except jwt.InvalidTokenError:
            pass
    return f"ip:{get_remote_address()}"


def is_server_call() -> bool:
    """API-token callers are trusted backends: the widget's per-IP and per-contact limits do not
    apply to them (a backend submits for many contacts from one address)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("ns_")
