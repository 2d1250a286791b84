"""Signed, tracked link redirects from emails (records the click, redirects only to registered URLs).

`GET /t/<token>`: the token (content.tracking) names a content item and the message it went out in.
The click is recorded on both (a ContentClick row; the message's `clicked_at` and status), then the
reader goes to the item's registered URL, never to a URL the link itself carries, so the link
cannot be turned into an open redirect. An item without a URL (a Markdown body) is shown here.
A changed, cut-short or expired link gets a friendly page with a 4xx status; nothing is recorded.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request

from campaigns.models import Message, MessageStatus
from campaigns.webhooks import PROGRESS
from content.models import ContentItem
from content.tracking import BadLink, ClickRef, read_click_token, record_click
from engine.errors import NotFound
from web.context import db_session, now, settings, unit_of_work

bp = Blueprint("track", __name__)


@bp.get("/t/<token>")
def follow(token: str) -> Any:
    try:
        ref = read_click_token(settings().secret_key, token)
    except BadLink as exc:
        return _invalid(exc.status, exc.title, exc.detail)
    if request.method == "HEAD":  # link checkers and mail scanners: answer, record nothing
        item = db_session().get(ContentItem, ref.item_id)
        if item is None:
            return _invalid(404, "This item is gone", "it is no longer in our library")
        return _destination(item)
    try:
        with unit_of_work() as session:
            item = _record(session, ref)
            response = _destination(item)
    except NotFound as exc:
        return _invalid(404, "This item is gone", exc.detail)
    return response


def _record(session: Any, ref: ClickRef) -> ContentItem:
    clock = now()
    message = session.get(Message, ref.message_id) if ref.message_id is not None else None
    item = record_click(
        session,
        ref,
        contact_id=message.contact_id if message else None,
        message_id=message.id if message else None,
        now=clock,
    )
    if message is not None:
        message.clicked_at = message.clicked_at or clock
        # A click proves the email arrived: it moves the message forward, never back.
        if message.status in PROGRESS and PROGRESS[message.status] < PROGRESS[MessageStatus.CLICKED]:
            message.status = MessageStatus.CLICKED
        message.updated_at = clock
    return item


def _destination(item: ContentItem) -> Any:
    url = item.url or ""
    if url and urlsplit(url).scheme in ("http", "https"):
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "no-store"  # every click is recorded, not one per browser
        response.headers["Referrer-Policy"] = "no-referrer"  # the token stays ours
        return response
    page = render_template("track_item.html", item=item)
    return page, 200, {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _invalid(status: int, title: str, detail: str) -> Any:
    return render_template("track_invalid.html", status=status, title=title, detail=detail), status
