"""One contact's audit page: why each message was (or was not) sent to them. Every role can read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from werkzeug.exceptions import NotFound as HTTPNotFound

from campaigns.audit import contact_audit
from engine.accounts import Contact
from web.admin import bp
from web.admin.auth import ANY_ROLE, role_required
from web.admin.nav import account_crumbs
from web.context import db_session

STATUS_TONE = {
    "sent": "ok",
    "delivered": "ok",
    "opened": "ok",
    "clicked": "ok",
    "seen": "ok",
    "suppressed": "warn",
    "bounced": "bad",
    "dropped": "bad",
    "failed": "bad",
}
DEFERRED_UNTIL = "deferred until "  # campaigns.steps.ledger_fields: the send window's guard result


@bp.get("/contacts/<int:contact_id>/audit")
@role_required(*ANY_ROLE)
def contact_audit_page(contact_id: int) -> Any:
    session = db_session()
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise HTTPNotFound(f"There is no contact {contact_id}. They may have been removed.")
    audit = contact_audit(session, contact)
    return render_template(
        "admin/contact_audit.html",
        section="accounts",
        breadcrumbs=account_crumbs(contact.account, (contact.name or contact.email, None)),
        audit=audit,
        tone=STATUS_TONE,
        when=audit_time,
        guard_result=guard_result,
    )


def guard_result(result: str) -> str:
    """A guard's result as the console writes it: the send window's "deferred until" moment (stored
    as ISO in the message's trace) as "Dec 18, 2026 07:00 UTC"."""
    head, found, moment = result.partition(DEFERRED_UNTIL)
    if head or not found:
        return result
    try:
        return f"{DEFERRED_UNTIL}{audit_time(moment)}"
    except ValueError:  # not a moment: say what was stored
        return result


def audit_time(text: str | None) -> str:
    """An ISO moment from the audit as the console writes times: "Mar 2, 2026 09:30 UTC"."""
    if not text:
        return ""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%b} {moment.day}, {moment.year} {moment:%H:%M} UTC"
