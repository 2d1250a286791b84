"""Privacy in the console (admins only): export everything held about a contact; erase a contact."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import NotFound as HTTPNotFound

from engine import audit
from engine.accounts import Account, Contact
from engine.privacy import ContactErasure, erase_contact, export_contact, previous_erasure
from web.admin import bp
from web.admin.auth import ADMINS, role_required
from web.admin.nav import Crumb, account_crumbs, breadcrumbs
from web.context import db_session, now, unit_of_work

PAGE = "Privacy requests"


def _contact(contact_id: int) -> Contact | None:
    return db_session().get(Contact, contact_id)


@bp.get("/contacts/<int:contact_id>/privacy")
@role_required(*ADMINS)
def contact_privacy(contact_id: int, *, error: str | None = None, typed: str = "") -> Any:
    contact = _contact(contact_id)
    erasure = previous_erasure(db_session(), contact_id) if contact is None else None
    if contact is None and erasure is None:
        raise HTTPNotFound(f"There is no contact {contact_id}.")
    return render_template(
        "admin/privacy_contact.html",
        section="accounts",
        breadcrumbs=_crumbs(contact, contact_id, erasure),
        contact=contact,
        contact_id=contact_id,
        erasure=erasure,
        error=error,
        typed=typed,
    ), 422 if error else 200


def _crumbs(contact: Contact | None, contact_id: int, erasure: ContactErasure | None) -> list[Crumb]:
    """Back through the contact's account and their audit page; an erased contact has no page left,
    only the account it belonged to (when that account still exists)."""
    if contact is not None:
        audit_page = url_for("admin.contact_audit_page", contact_id=contact.id)
        return account_crumbs(contact.account, (contact.name or contact.email, audit_page), (PAGE, None))
    account = db_session().get(Account, erasure.account_id) if erasure and erasure.account_id else None
    erased = (f"Contact {contact_id} (erased)", None)
    if account is None:
        return breadcrumbs(("Accounts", url_for("admin.accounts")), erased, (PAGE, None))
    return account_crumbs(account, erased, (PAGE, None))


@bp.get("/contacts/<int:contact_id>/privacy/export")
@role_required(*ADMINS)
def export_contact_data(contact_id: int) -> Response:
    with unit_of_work() as session:
        document = export_contact(session, contact_id, now=now())
        audit.record(
            session,
            "export",
            "Contact",
            str(contact_id),
            label=document["contact"]["email"],
            details={"sections": sorted(document)},
        )
    body = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact_id}-export.json"'},
    )


@bp.post("/contacts/<int:contact_id>/privacy/erase")
@role_required(*ADMINS)
def erase_contact_data(contact_id: int) -> Any:
    contact = _contact(contact_id)
    typed = request.form.get("confirm", "").strip()
    if contact is not None and typed.lower() != contact.email.strip().lower():
        return contact_privacy(
            contact_id,
            error=f"Type the contact's email ({contact.email}) exactly to confirm the erasure.",
            typed=typed[:320],
        )
    with unit_of_work() as session:
        result = erase_contact(session, contact_id, by=str(current_user.email), now=now())
        if not result.already:
            audit.record(session, "erase", "Contact", str(contact_id), details=result.summary)
    if result.already:
        flash(f"Contact {contact_id} was already erased; nothing more to do.", "ok")
    else:
        flash(
            f"Contact {contact_id} is erased. Their email is kept only as a salted hash, "
            "so they are never mailed again.",
            "ok",
        )
    return redirect(url_for("admin.contact_privacy", contact_id=contact_id), 303)
