"""Survey responses from every channel, and a contact's latest answers (API v1).

The response endpoint identifies the respondent one of three ways: an API token (a server names
the account), the widget's JWT signed by the host's backend, or nothing at all, which only an
anonymous survey accepts (the respondent leaves an email).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.apitokens import TOKEN_PREFIX, verify_token
from engine.errors import NotFound
from engine.plans.service import active_plan
from engine.plans.sharing import plan_token
from surveys.identity import Identity
from surveys.models import Response as SurveyResponse
from surveys.models import ResponseStatus
from surveys.plan_link import response_plan_token
from surveys.schemas import ResponseInSchema
from surveys.service import ContactRef, Respondent, ResponseIn, submit_response
from web.api import Unauthorized, load, token_required
from web.context import db_session, json_body, now, settings, unit_of_work
from web.cors import check_origin, preflight, request_identity, request_workspace, with_cors
from web.ratelimit import is_server_call, is_vouched_for, limiter, respondent_key

bp = Blueprint("surveys_api", __name__)
# Built once: a marshmallow schema keeps no per-load state, and building one costs more than a load.
RESPONSE_IN = ResponseInSchema()


def _limit_per_ip() -> str:
    return settings().response_limit_per_ip


def _limit_per_contact() -> str:
    return settings().response_limit_per_contact


@bp.route("/api/v1/surveys/<survey_key>/responses", methods=["OPTIONS"])
def response_preflight(survey_key: str) -> Response:
    return preflight()


@bp.post("/api/v1/surveys/<survey_key>/responses")
@limiter.limit(_limit_per_ip, exempt_when=is_vouched_for)
@limiter.limit(_limit_per_contact, key_func=respondent_key, exempt_when=is_server_call)
def create_response(survey_key: str) -> Any:
    data = load(RESPONSE_IN, json_body())
    payload = ResponseIn(
        client_response_id=data["client_response_id"],
        account=data["account"],
        answers=data["answers"],
        channel=data["channel"],
        contact=ContactRef(**data["contact"]) if data["contact"] else None,
        version=data["version"],
        complete=data["complete"],
    )
    origin = None
    identity: Identity | None = None
    with unit_of_work() as session:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token.startswith(TOKEN_PREFIX):
            if verify_token(session, token) is None:
                raise Unauthorized("the bearer token is not valid")
            respondent = None  # a trusted server names the account in the payload
        elif scheme.lower() == "bearer" and token:
            origin = check_origin(request_workspace())
            identity = request_identity()
            if identity is None:  # cannot be: the same header reads as an identity token there
                raise Unauthorized("the bearer token is not an identity token")
            if payload.account not in (None, identity.account_external_id):
                raise Unauthorized("'account' differs from the identity token's account")
            respondent = None  # submit_response finds the identity's account and contact
        else:
            origin = check_origin(request_workspace())
            if payload.account is not None:
                raise Unauthorized("naming an account needs an API token or the widget's identity token")
            email = payload.contact.email.strip().lower() if payload.contact else None
            respondent = Respondent(None, None, email)
        # The rules go to the `rules` job (ADR 0009); with no Redis (the demo) jobs would run in
        # this process right after commit anyway, so run them in the request and answer with the plan.
        deferred = not current_app.extensions["northstar.jobs"].synchronous
        result = submit_response(
            session,
            survey_key,
            payload,
            now=now(),
            respondent=respondent,
            identity=identity,
            defer_rules=deferred,
        )
        answer = result.response
        body = {
            "id": answer.id,
            "client_response_id": answer.client_response_id,
            "survey": survey_key,
            "version": result.version,
            "status": answer.status.value,
            "replayed": result.replayed,
            "plan": _plan_body(session, answer),
        }
    response = jsonify(body)
    response.status_code = 201 if result.created else 200
    return with_cors(response, origin)


def _plan_body(session: Session, answer: SurveyResponse) -> dict[str, Any] | None:
    """The plan the response made; while the `rules` job has yet to run, a link that opens it
    once it exists (surveys.plan_link): `status` says which."""
    base = settings().public_url
    if answer.rules_queued_at is not None:
        token = response_plan_token(settings().secret_key, answer.id)
        return {"status": "pending", "share_url": f"{base}/p/r/{token}"}
    plan = active_plan(session, answer.account_id) if answer.account_id else None
    if plan is None:
        return None
    token = plan_token(settings().secret_key, plan)
    return {"status": "ready", "id": plan.id, "goal": plan.goal, "share_url": f"{base}/p/{token}"}


@bp.get("/api/v1/contacts/<external_id>/answers")
@token_required
def contact_answers(external_id: str) -> Any:
    """The contact's latest answers per survey (a completed response wins over a partial one)."""
    session = db_session()
    contacts = session.scalars(select(Contact).where(Contact.external_id == external_id)).all()
    if not contacts:
        raise NotFound(f"no contact with external id {external_id!r}")
    rows = session.scalars(
        select(SurveyResponse)
        .where(SurveyResponse.contact_id.in_([c.id for c in contacts]))
        .order_by(SurveyResponse.id)
    ).all()
    latest: dict[str, SurveyResponse] = {}
    for row in rows:
        key = row.version.survey.key
        current = latest.get(key)
        if (
            current is None
            or row.status == ResponseStatus.COMPLETED
            or current.status != ResponseStatus.COMPLETED
        ):
            latest[key] = row
    return jsonify(
        contact=external_id,
        surveys={
            key: {
                "version": r.version.version,
                "status": r.status.value,
                "channel": r.channel.value,
                "answers": r.answers,
                "completed_at": r.completed_at.isoformat() if r.completed_at else None,
            }
            for key, r in sorted(latest.items())
        },
    )
