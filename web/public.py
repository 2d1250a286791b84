"""Public pages: the account list (demo) and the email preference page behind every unsubscribe link
(the shared plan: web.plan_page).

`/u/<token>`: GET shows the contact's email categories (each can be turned off or on) and a button
to unsubscribe from everything; it never changes anything (mail scanners follow links). POST is one
of exactly two bodies, and there is no cookie anywhere, so CSRF is handled like this:

- The URL token (the contact id signed with the app's key) is the capability, as for shared plans.
  A page on another site can only forge a POST here if it already has the link.
- Unsubscribing from everything accepts the RFC 8058 one-click body, `List-Unsubscribe=One-Click`
  and no other field. Mail providers send it without cookies or a page we rendered, so it cannot
  carry a form token; it only ever takes the contact *out* of mail and is idempotent, so a forged
  one can do no more than the link's owner does with one click. The page's own "Unsubscribe from
  all emails" button posts the same body.
- Changing categories can turn mail back *on*, so it needs a form token signed when the page was
  rendered, bound to this contact and to this link, and at most a week old. A form from another
  link, a forged page or a stale tab gets a 400 page and nothing changes.
- Anything else (no recognised body, an unknown category, more than 8 KB, NUL characters) is a
  400 page; a link that does not verify is a 404 page. Never a 500.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from functools import lru_cache
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask import Response as FlaskResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from campaigns.preferences import MAX_CATEGORIES, Category, email_categories, set_categories
from campaigns.unsubscribe import contact_from_token, unsubscribe
from engine.accounts import Account, Contact
from engine.errors import NotFound, ValidationFailed
from engine.plans.models import SuccessPlan
from engine.plans.sharing import plan_token
from web.context import db_session, now, settings, unit_of_work

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")
FORM_SALT = "northstar.preferences-form"
FORM_MAX_AGE = dt.timedelta(days=7)
MAX_FORM_BYTES = 8192  # the page's form is a few hundred bytes
MAX_LINK_TOKEN = 200  # a real link token is ~30 characters; never sign-check a megabyte


class PreferencesRefused(Exception):
    """A POST that is neither the one-click body nor a valid preferences form."""


@bp.get("/")
def accounts() -> Any:
    session = db_session()
    rows = session.scalars(select(Account).order_by(Account.segment, Account.name).limit(500)).all()
    plans = {
        p.account_id: p
        for p in session.scalars(select(SuccessPlan).options(selectinload(SuccessPlan.milestones)))
    }
    links = {aid: plan_token(settings().secret_key, p) for aid, p in plans.items()}
    return render_template("accounts.html", accounts=rows, plans=plans, links=links)


@bp.after_request
def _private(response: FlaskResponse) -> FlaskResponse:
    if request.path.startswith("/u/"):
        # The URL is the capability: never cache the page, never leak it in a Referer, never index.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


# --- tokens --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _form_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=FORM_SALT)


def _link_ref(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def form_token(contact: Contact, link_token: str) -> str:
    """Binds a rendered preferences form to this contact and the link it was opened with."""
    return str(_form_serializer(settings().secret_key).dumps([contact.id, _link_ref(link_token)]))


def check_form_token(contact: Contact, link_token: str, sent: str) -> None:
    try:
        payload = _form_serializer(settings().secret_key).loads(
            sent, max_age=int(FORM_MAX_AGE.total_seconds())
        )
    except SignatureExpired:
        raise PreferencesRefused(
            "This page was open for more than a week, so nothing was saved. Reload it and save again."
        ) from None
    except BadSignature:
        payload = None
    if payload != [contact.id, _link_ref(link_token)]:
        raise PreferencesRefused("We could not verify this form, so nothing was saved. Please try again.")


def _contact(session: Session, token: str) -> Contact:
    if len(token) > MAX_LINK_TOKEN:
        raise NotFound("this unsubscribe link is not valid")
    return contact_from_token(session, settings().secret_key, token)


# --- the page ------------------------------------------------------------------------------------


@bp.get("/u/<token>")
def unsubscribe_page(token: str) -> Any:
    contact = _contact(db_session(), token)
    return _render(contact, token, saved=request.args.get("saved") == "1")


def _render(
    contact: Contact, token: str, *, saved: bool = False, notice: str | None = None, status: int = 200
) -> Any:
    categories = _categories(db_session(), contact)
    off = set(contact.unsubscribed_categories or [])
    return (
        render_template(
            "unsubscribe.html",
            email=contact.email,
            token=token,
            form_token=form_token(contact, token),
            categories=categories,
            off=off,
            receiving=[c for c in categories if c.key not in off],
            stopped=[c for c in categories if c.key in off],
            unsubscribed_at=contact.unsubscribed_at,
            saved=saved,
            notice=notice,
            postal_address=settings().postal_address,
        ),
        status,
    )


def _categories(session: Session, contact: Contact) -> list[Category]:
    return email_categories(session, also=contact.unsubscribed_categories or [])


@bp.post("/u/<token>")
def unsubscribe_post(token: str) -> Any:
    with unit_of_work() as session:
        contact = _contact(session, token)
        try:
            fields = _form_fields()
            if fields == [ONE_CLICK]:
                if unsubscribe(session, contact, now=now()):
                    log.info("contact %s unsubscribed from all emails", contact.id)
                return render_template(
                    "unsubscribed.html", email=contact.email, postal_address=settings().postal_address
                )
            _save_preferences(session, contact, token, fields)
        except PreferencesRefused as exc:
            session.rollback()
            session.expire_all()
            return _render(_contact(session, token), token, notice=str(exc), status=400)
    return redirect(url_for("public.unsubscribe_page", token=token, saved="1"), 303)


def _form_fields() -> list[tuple[str, str]]:
    """The POSTed fields, in order; the raw body too, for a provider that posts the one-click body
    with a content type other than a form's."""
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise PreferencesRefused("That form was far larger than ours, so nothing was saved.")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = [(k, v) for k, values in request.form.lists() for v in values]
    else:
        raw = request.get_data(cache=True, as_text=False)[: MAX_FORM_BYTES + 1].strip()
        fields = [ONE_CLICK] if raw == b"List-Unsubscribe=One-Click" else []
    if len(fields) > MAX_CATEGORIES + 4 or any("\x00" in k or "\x00" in v for k, v in fields):
        raise PreferencesRefused("We could not read that form, so nothing was saved. Please try again.")
    return fields


def _save_preferences(session: Session, contact: Contact, token: str, fields: list[tuple[str, str]]) -> None:
    names = {k for k, _ in fields}
    if "_form" not in names or not names <= {"_form", "shown", "category"}:
        raise PreferencesRefused(
            "We could not read that form, so nothing was saved. Use the buttons on this page."
        )
    sent = [v for k, v in fields if k == "_form"]
    if len(sent) != 1:
        raise PreferencesRefused("We could not verify this form, so nothing was saved. Please try again.")
    check_form_token(contact, token, sent[0])
    known = {c.key for c in _categories(session, contact)}
    shown = [v for k, v in fields if k == "shown"]
    receive = [v for k, v in fields if k == "category"]
    if not shown or not set(shown) <= known:
        raise PreferencesRefused("This page is out of date: reload it to see the current email types.")
    try:
        changed = set_categories(session, contact, receive, shown)
    except ValidationFailed:
        raise PreferencesRefused("That is not one of our email types, so nothing was saved.") from None
    if changed:
        log.info("contact %s now skips categories %s", contact.id, contact.unsubscribed_categories)
