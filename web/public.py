"""Public pages: the account list (demo) and one-click unsubscribe (the shared plan: web.plan_page)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from campaigns.unsubscribe import contact_from_token, unsubscribe
from engine.accounts import Account
from engine.plans.models import SuccessPlan
from engine.plans.sharing import plan_token
from web.context import db_session, now, settings, unit_of_work

bp = Blueprint("public", __name__)


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


@bp.route("/u/<token>", methods=["GET", "POST"])
def unsubscribe_page(token: str) -> Any:
    with unit_of_work() as session:
        contact = contact_from_token(session, settings().secret_key, token)
        if request.method == "POST":
            # RFC 8058 one-click POSTs come from mail providers: no cookie, no CSRF token.
            unsubscribe(session, contact, now=now())
            return render_template("unsubscribed.html", email=contact.email)
        return render_template("unsubscribe.html", email=contact.email, token=token)
