"""Signed one-click unsubscribe links (RFC 8058) and the operation they trigger."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.errors import NotFound

SALT = "northstar.unsubscribe"


@lru_cache(maxsize=8)
def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def unsubscribe_token(secret_key: str, contact_id: int) -> str:
    return str(_serializer(secret_key).dumps(contact_id))


def contact_from_token(session: Session, secret_key: str, token: str) -> Contact:
    try:
        contact_id = _serializer(secret_key).loads(token)
    except BadSignature:
        raise NotFound("this unsubscribe link is not valid") from None
    contact = session.get(Contact, contact_id) if isinstance(contact_id, int) else None
    if contact is None:
        raise NotFound("this unsubscribe link is not valid")
    return contact


def unsubscribe(session: Session, contact: Contact, *, now: dt.datetime) -> bool:
    """Idempotent; returns True when this call unsubscribed the contact."""
    if contact.unsubscribed_at is not None:
        return False
    contact.unsubscribed_at = now
    session.flush()
    return True
