"""API v1 (JSON): survey responses, accounts, events; token auth except the widget's endpoint."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, g, jsonify, request
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as SchemaError
from redis.exceptions import RedisError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from engine import audit, queue
from engine.accounts import Account, ContactRole, upsert_account, upsert_contact
from engine.apitokens import verify_token
from engine.errors import NorthstarError, ValidationFailed, flatten_messages
from engine.events.service import EventIn, ingest_events
from engine.plans.service import active_plan
from engine.plans.updates import refresh_for_stage
from engine.users import Role
from web.context import database, db_session, json_body, now, settings, unit_of_work

bp = Blueprint("api", __name__)
F = TypeVar("F", bound=Callable[..., Any])


class Unauthorized(NorthstarError):
    status = 401
    title = "Unauthorized"


class Forbidden(NorthstarError):
    status = 403
    title = "Forbidden"


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Data feeds from the host's systems: the plan changes they cause follow from data, not from a
# person's edit, so they stay out of the admin audit log (like the scheduler's writes).
DATA_FEEDS = frozenset({"api.post_events", "api.put_account", "surveys_api.create_response"})


def token_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "send 'Authorization: Bearer <token>' (create one: northstar api-token create NAME)"
            )
        found = verify_token(db_session(), token.strip())
        if found is None:
            raise Unauthorized("the bearer token is not valid")
        if found.role == Role.VIEWER and request.method not in READ_METHODS:
            raise Forbidden(
                f"the token {found.name!r} has the viewer role: it can read, not change "
                "(create one that can: northstar api-token create NAME --role editor)"
            )
        g.api_caller = f"api-token:{found.name}"
        g.api_role = found.role
        person = None if request.endpoint in DATA_FEEDS else audit.Actor(g.api_caller, "api")
        actor = audit.set_actor(person)  # engine.audit logs what this call changes as the token's
        try:
            return view(*args, **kwargs)
        finally:
            audit.reset_actor(actor)

    return cast(F, wrapper)


def load(schema: Schema, body: dict[str, Any]) -> dict[str, Any]:
    # Query arguments arrive here unchecked (json_body() already refuses NUL anywhere in a body):
    # PostgreSQL's text refuses NUL, so a filter holding one would fail its query, not find nothing.
    nul = {
        key: "must not contain NUL characters"
        for key, value in body.items()
        if isinstance(value, str) and "\x00" in value
    }
    if nul:
        raise ValidationFailed(nul)
    try:
        return cast(dict[str, Any], schema.load(body))
    except SchemaError as exc:
        raise ValidationFailed(field_errors(exc.messages)) from exc


def field_errors(messages: Any, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"events.1.timestamp": "..."} (see `flatten_messages`)."""
    return flatten_messages(messages, path)


class ContactInSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    name = fields.String(load_default="", validate=validate.Length(max=200))
    role = fields.String(load_default="other", validate=validate.OneOf([r.value for r in ContactRole]))
    external_id = fields.String(load_default=None, validate=validate.Length(max=200))
    timezone = fields.String(load_default=None, validate=validate.Length(max=64))


class AccountInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    segment = fields.String(load_default="default", validate=validate.Length(1, 80))
    plan_tier = fields.String(load_default=None, validate=validate.Length(max=80))
    lifecycle_stage = fields.String(load_default="onboarding", validate=validate.Length(1, 40))
    timezone = fields.String(load_default="UTC", validate=validate.Length(1, 64))
    traits = fields.Dict(keys=fields.String(), load_default=dict)
    contacts = fields.List(
        fields.Nested(ContactInSchema), load_default=list, validate=validate.Length(max=500)
    )


@bp.put("/api/v1/accounts/<external_id>")
@token_required
def put_account(external_id: str) -> Any:
    if len(external_id) > 200:
        raise ValidationFailed({"external_id": "at most 200 characters"})
    data = load(AccountInSchema(), json_body())
    contacts = data.pop("contacts")
    with unit_of_work() as session:
        created = session.scalar(select(Account.id).where(Account.external_id == external_id)) is None
        account = upsert_account(session, external_id, **data)
        for contact in contacts:
            upsert_contact(
                session,
                account,
                contact["email"],
                name=contact["name"],
                role=ContactRole(contact["role"]),
                external_id=contact["external_id"],
                timezone=contact["timezone"],
            )
        plan = active_plan(session, account.id)
        if plan is not None:
            refresh_for_stage(session, account, plan, now=now())
        body = {
            "external_id": account.external_id,
            "id": account.id,
            "contacts": len(account.contacts),
        }
    return jsonify(body), 201 if created else 200


class EventInSchema(Schema):
    account = fields.String(required=True, validate=validate.Length(1, 200))
    contact = fields.String(load_default=None)
    name = fields.String(required=True, validate=validate.Length(1, 120))
    properties = fields.Dict(keys=fields.String(), load_default=dict)
    timestamp = fields.AwareDateTime(required=True, default_timezone=dt.UTC)
    idempotency_key = fields.String(required=True, validate=validate.Length(1, 200))


class EventBatchSchema(Schema):
    events = fields.List(fields.Nested(EventInSchema), required=True, validate=validate.Length(1, 1000))


@bp.post("/api/v1/events")
@token_required
def post_events(*_: Any) -> Any:
    data = load(EventBatchSchema(), json_body())
    events = [
        EventIn(
            account=e["account"],
            contact=e["contact"],
            name=e["name"],
            properties=e["properties"],
            occurred_at=e["timestamp"],
            idempotency_key=e["idempotency_key"],
        )
        for e in data["events"]
    ]
    with unit_of_work() as session:
        result = ingest_events(session, events, now=now())
    return jsonify(
        accepted=result.accepted,
        duplicates=result.duplicates,
        milestones_achieved=len(result.milestones_achieved),
    ), 202


@bp.get("/healthz")
def healthz() -> Any:
    checks: dict[str, dict[str, Any]] = {}
    try:
        with database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except SQLAlchemyError as exc:
        checks["database"] = {"ok": False, "error": str(exc).splitlines()[0]}
    runner = queue.current()
    if runner.redis is None:
        checks["redis"] = {"ok": False, "error": "not configured (NORTHSTAR_REDIS_URL unset)"}
    else:
        try:
            runner.redis.ping()
            checks["redis"] = {"ok": True}
        except RedisError as exc:
            checks["redis"] = {"ok": False, "error": str(exc)}
    healthy = all(c["ok"] for c in checks.values())
    return jsonify(status="ok" if healthy else "degraded", checks=checks), 200 if healthy else 503


@bp.get("/api/v1/openapi.json")
def openapi() -> Any:
    from web.openapi import document

    return jsonify(document(settings().public_url))
