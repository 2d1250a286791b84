"""API v1 for privacy requests: export everything held about a contact, erase a contact.

Both need an admin token: an export is personal data, an erasure cannot be undone."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from engine import audit
from engine.privacy import erase_contact, export_contact, iso
from engine.users import Role
from web.api import Forbidden, token_required
from web.context import now, unit_of_work

bp = Blueprint("people_api", __name__)


def _admin_token() -> None:
    if g.api_role != Role.ADMIN:
        raise Forbidden(
            f"the token has the {g.api_role} role; privacy requests need an admin token "
            "(northstar api-token create NAME --role admin)"
        )


@bp.get("/api/v1/contacts/<int:contact_id>/export")
@token_required
def export(contact_id: int) -> Any:
    _admin_token()
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
    return jsonify(document)


@bp.post("/api/v1/contacts/<int:contact_id>/erase")
@token_required
def erase(contact_id: int) -> Any:
    _admin_token()
    with unit_of_work() as session:
        result = erase_contact(session, contact_id, by=str(g.api_caller), now=now())
        if not result.already:
            audit.record(session, "erase", "Contact", str(contact_id), details=result.summary)
    return jsonify(
        contact_id=result.contact_id,
        erased_at=iso(result.erased_at),
        erased_by=result.erased_by,
        already_erased=result.already,
        summary=result.summary,
    )
