"""Tracked links: a signed token names the content item (and the message it went out in); the
redirect (web.track) records the click and goes only to that item's registered URL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from content.models import ContentClick, ContentItem, ContentSend
from engine.errors import NorthstarError, NotFound

SALT = "northstar.content-click"
MAX_AGE_DAYS = 365  # an old email's links keep working for a year


class BadLink(NorthstarError):
    """The link was changed, cut short, or is too old."""

    status = 400
    title = "This link does not work"


class ExpiredLink(BadLink):
    status = 410
    title = "This link has expired"


@dataclass(frozen=True)
class ClickRef:
    item_id: int
    message_id: int | None  # None: a preview or a test send


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def click_token(secret_key: str, item_id: int, message_id: int | None) -> str:
    return _serializer(secret_key).dumps([item_id, message_id])


def click_url(public_url: str, secret_key: str, item_id: int, message_id: int | None) -> str:
    return f"{public_url.rstrip('/')}/t/{click_token(secret_key, item_id, message_id)}"


def read_click_token(secret_key: str, token: str, *, max_age_days: int = MAX_AGE_DAYS) -> ClickRef:
    if len(token) > 500:
        raise BadLink("the link is longer than any link we send; it may have been changed")
    try:
        value = _serializer(secret_key).loads(token, max_age=max_age_days * 86400)
    except SignatureExpired:
        raise ExpiredLink(f"links in our emails work for {MAX_AGE_DAYS} days; this one is older") from None
    except BadSignature:
        raise BadLink("the link was changed or cut short; copy the whole link from the email") from None
    valid = (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and (value[1] is None or isinstance(value[1], int))
    )
    if not valid:
        raise BadLink("the link was changed or cut short; copy the whole link from the email")
    return ClickRef(value[0], value[1])


def record_click(
    session: Session, ref: ClickRef, *, contact_id: int | None, message_id: int | None, now: dt.datetime
) -> ContentItem:
    """One ContentClick row; the item (a deleted item: NotFound, nothing recorded)."""
    item = session.get(ContentItem, ref.item_id)
    if item is None:
        raise NotFound("this item is no longer in our library")
    session.add(
        ContentClick(content_item_id=item.id, message_id=message_id, contact_id=contact_id, clicked_at=now)
    )
    session.flush()
    return item


def record_sends(session: Session, sends: list[tuple[int, int, int]], *, now: dt.datetime) -> None:
    """(message_id, content_item_id, contact_id) that went out; a repeat of a pair is ignored.

    One `INSERT … ON CONFLICT DO NOTHING` for the whole batch (a delivery job records ~3 items per
    message for up to 1,000 messages: a lookup and an insert each cost more than the send)."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for message_id, item_id, contact_id in sends:
        rows.setdefault(
            (message_id, item_id),
            {"message_id": message_id, "content_item_id": item_id, "contact_id": contact_id, "sent_at": now},
        )
    if not rows:
        return
    session.flush()
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(ContentSend).on_conflict_do_nothing(index_elements=["message_id", "content_item_id"])
    session.execute(stmt, list(rows.values()))
