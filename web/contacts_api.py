"""API v1 for contacts: why each message was (or was not) sent to one contact. Token auth."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from campaigns.audit import DEFAULT_MESSAGES, MAX_MESSAGES, contact_audit, find_contact
from engine.errors import ValidationFailed
from web.api import token_required
from web.context import db_session

bp = Blueprint("contacts_api", __name__)
MAX_PARAM = 320


@bp.get("/api/v1/contacts/<external_id>/messages")
@token_required
def contact_messages(external_id: str) -> Any:
    """By the contact's external id; `?account=` picks one when two accounts share that id."""
    account = _param("account")
    contact = find_contact(db_session(), external_id=_checked("external_id", external_id), account=account)
    return jsonify(contact_audit(db_session(), contact, limit=_limit()))


@bp.get("/api/v1/contacts/messages")
@token_required
def contact_messages_by_email() -> Any:
    """For contacts without an external id: `?email=` and `?account=` (the account's external id)."""
    email, account = _param("email"), _param("account")
    if email is None:
        raise ValidationFailed({"email": "required (or use /api/v1/contacts/<external_id>/messages)"})
    contact = find_contact(db_session(), email=email, account=account)
    return jsonify(contact_audit(db_session(), contact, limit=_limit()))


def _param(name: str) -> str | None:
    value = request.args.get(name)
    return _checked(name, value) if value is not None else None


def _checked(name: str, value: str) -> str:
    if not value.strip() or len(value) > MAX_PARAM or "\x00" in value:
        raise ValidationFailed({name: f"must be 1 to {MAX_PARAM} characters, without NUL"})
    return value


def _limit() -> int:
    text = request.args.get("limit", str(DEFAULT_MESSAGES))
    if not text.isdigit() or not 1 <= int(text[:7]) <= MAX_MESSAGES:
        raise ValidationFailed({"limit": f"a whole number from 1 to {MAX_MESSAGES}"})
    return int(text)
