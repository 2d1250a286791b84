"""Rate limits (Flask-Limiter on Redis; in-memory only in the Redis-less demo)."""

from __future__ import annotations

import time

from flask import Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from engine.config import Settings
from engine.errors import NorthstarError
from web.cors import request_identity

limiter = Limiter(key_func=get_remote_address, default_limits=[], strategy="fixed-window")


def init_app(app: Flask, settings: Settings) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or "memory://"
    # Flask-Limiter's own headers read the window back from Redis on every response (a GET and a
    # TTL per limited request, on top of the increments); only a refused request gets them here.
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    app.config.setdefault("RATELIMIT_ENABLED", settings.rate_limits_enabled)
    limiter.init_app(app)
    app.after_request(_headers_on_refusal)


def _headers_on_refusal(response: Response) -> Response:
    """A 429 says which limit was hit and when to try again (Retry-After, X-RateLimit-*)."""
    if response.status_code != 429:
        return response
    current = limiter.current_limit
    if current is not None:
        reset_at = int(current.reset_at)
        response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(current.remaining)
        response.headers["X-RateLimit-Reset"] = str(reset_at)
        response.headers["Retry-After"] = str(max(1, reset_at - int(time.time())))
    return response


def respondent_key() -> str:
    """Who is answering, for the per-contact limit: the verified identity token's account and
    subject (web.cors.request_identity: verified once, the view reuses it), else the address: a
    forged or expired token cannot pick another contact's bucket, and still meets the IP limit."""
    try:
        identity = request_identity()
    except NorthstarError:
        identity = None
    if identity is not None:
        return f"contact:{identity.account_external_id}:{identity.contact_external_id}"
    return f"ip:{get_remote_address()}"


def is_vouched_for() -> bool:
    """Exempt from the per-IP limit: an API-token call (a trusted backend submits for many contacts
    from one address) or a verified widget identity, which the per-contact limit covers. A
    customer's office behind one NAT address can then answer a company-wide prompt at once;
    unsigned (anonymous) requests and bad tokens still meet the per-IP limit."""
    if is_server_call():
        return True
    try:
        return request_identity() is not None
    except NorthstarError:
        return False


def is_server_call() -> bool:
    """API-token callers are trusted backends: the widget's per-IP and per-contact limits do not
    apply to them (a backend submits for many contacts from one address)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("ns_")
