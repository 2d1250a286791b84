"""The SendGrid event webhook's request: its ECDSA signature over timestamp + raw body, its
freshness (300 s), and its body (a JSON array of events)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from engine.config import webhook_public_key
from engine.errors import NorthstarError

SIGNATURE_HEADER: str = EventWebhookHeader.SIGNATURE
TIMESTAMP_HEADER: str = EventWebhookHeader.TIMESTAMP
MAX_CLOCK_SKEW = dt.timedelta(seconds=300)


class WebhookNotConfigured(NorthstarError):
    status = 503
    title = "Service Unavailable"


class SignatureRejected(NorthstarError):
    status = 403
    title = "Forbidden"


@lru_cache(maxsize=4)
def _public_key(value: str) -> ec.EllipticCurvePublicKey:
    return webhook_public_key(value)


def verify_request(
    public_key: str | None,
    raw_body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    now: dt.datetime,
) -> None:
    """SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256; check it with the library's
    EventWebhook helper, and refuse timestamps more than 300 s away (a captured post replayed)."""
    if not public_key:
        raise WebhookNotConfigured(
            "the SendGrid event webhook is not configured: set NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY to"
            " the verification key of SendGrid's Signed Event Webhook; unsigned events are never accepted"
        )
    if not signature or not timestamp:
        raise SignatureRejected(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        signed_at = dt.datetime.fromtimestamp(int(timestamp.strip()), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise NorthstarError(f"{TIMESTAMP_HEADER} must be a Unix time in seconds") from None
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is {int((now - signed_at).total_seconds())} s from the server clock"
            f" (at most {int(MAX_CLOCK_SKEW.total_seconds())} s allowed)"
        )
    try:
        payload = raw_body.decode("utf-8")
        base64.b64decode(signature, validate=True)  # the helper's b64decode would accept junk
        valid = EventWebhook().verify_signature(payload, signature, timestamp, _public_key(public_key))
    except (UnicodeDecodeError, binascii.Error, ValueError):
        valid = False
    if not valid:
        raise SignatureRejected("the event webhook signature does not match the body")


def parse_events(raw_body: bytes) -> list[Any]:
    """The body as SendGrid posts it: a JSON array (of event objects)."""
    try:
        body = json.loads(raw_body, parse_constant=_refuse_constant)
    except RecursionError:
        raise NorthstarError("the request body is nested too deeply") from None
    except ValueError as exc:
        raise NorthstarError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, list):
        raise NorthstarError("the request body must be a JSON array of events")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
