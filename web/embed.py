"""The embed surface: the widget script, the survey as the widget needs it, dismissals, iframe mode,
and the in-app inbox (the identified contact's in-app messages).

Every JSON answer carries CORS headers for the workspace's allowed origins only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_from_directory

from campaigns.inapp import Links, inbox_strings, open_inbox, record_action
from engine.errors import NorthstarError, NotFound
from surveys.display import dismiss, presentation, respondent_state
from surveys.identity import Identity, IdentityRejected, known_contact, resolve_identity, verify_identity
from surveys.reports import record_reach
from surveys.service import get_survey, published_version
from web.context import db_session, now, settings, unit_of_work
from web.cors import check_origin, request_workspace, with_cors

bp = Blueprint("embed", __name__)

# The one-line stub a host page puts before the widget's script (docs/surveys.md): calls made
# before the async script loads are queued and run once it arrives.
STUB = (
    "window.Northstar=window.Northstar||{q:[],"
    'identify:function(){this.q.push(["identify",arguments])},'
    "show:function(){var a=arguments,q=this.q;"
    'return new Promise(function(r){q.push(["show",a,r])})}};'
)


def embed_snippet(public_url: str, workspace_key: str) -> str:
    """The two lines a host page's <head> needs for `workspace_key`'s widget."""
    return (
        f"<script>{STUB}</script>\n"
        f'<script src="{public_url}/embed/v1/widget.js" data-workspace="{workspace_key}" async></script>'
    )


@bp.get("/embed/v1/widget.js")
def widget_script() -> Response:
    response = send_from_directory(current_app.static_folder or "static", "embed/widget.js", max_age=300)
    response.headers["Content-Type"] = "application/javascript; charset=utf-8"
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script, like any CDN asset
    return response


@bp.route("/embed/v1/surveys/<survey_key>", methods=["OPTIONS"])
@bp.route("/embed/v1/surveys/<survey_key>/dismiss", methods=["OPTIONS"])
@bp.route("/embed/v1/messages", methods=["OPTIONS"])
@bp.route("/embed/v1/messages/<int:message_id>/<any(clicked, dismissed):action>", methods=["OPTIONS"])
def embed_preflight(**_: object) -> Response:
    """Answered for any origin, so the browser sends the request and the widget can read and show
    its refusal (a host whose origin is missing learns why). The view checks the origin before it
    reads or changes anything."""
    return with_cors(Response(status=204), request.headers.get("Origin"))


@bp.after_app_request
def _problems_readable_by_the_widget(response: Response) -> Response:
    """A browser hides a cross-origin error body without CORS headers, so the widget could not show
    a 401's detail or a 422's `errors` next to the question. The embed endpoints' problems only
    explain a refusal: readable by any origin. The response endpoint's: allowed origins only."""
    origin = request.headers.get("Origin")
    if response.status_code < 400 or not origin or "Access-Control-Allow-Origin" in response.headers:
        return response
    if request.blueprint == "embed":
        return with_cors(response, origin)
    if request.endpoint == "surveys_api.create_response":
        try:
            allowed = request_workspace().allows_origin(origin)
        except NorthstarError:
            allowed = False
        if allowed:
            return with_cors(response, origin)
    return response


def _identified_contact(required: bool) -> Any:
    origin, identity = _identity(required)
    if identity is None:
        return origin, None
    _account, contact = resolve_identity(db_session(), identity)
    return origin, contact


def _identity(required: bool) -> tuple[str | None, Identity | None]:
    workspace = request_workspace()
    origin = check_origin(workspace)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        if required:
            raise IdentityRejected("call Northstar.identify({token}) first")
        return origin, None
    return origin, verify_identity(workspace, token.strip(), now=now())


@bp.get("/embed/v1/surveys/<survey_key>")
def embed_survey(survey_key: str) -> Response:
    """The published survey, the outcome/objective library, UI strings in the asked locale, and
    this contact's state (resume a partial response; the display rule)."""
    with unit_of_work() as session:
        origin, contact = _identified_contact(required=False)
        survey = get_survey(session, survey_key)
        version = published_version(survey, None)
        body = presentation(session, survey, version, request.args.get("locale", "en"))
        body["state"] = respondent_state(session, survey, contact, now=now())
        if contact is not None and body["state"]["show"]:  # the widget will show it: reached
            record_reach(session, survey.id, contact.account_id, contact.id, "in_app", now=now())
        body["identified"] = contact is not None
    return with_cors(jsonify(body), origin)


@bp.post("/embed/v1/surveys/<survey_key>/dismiss")
def embed_dismiss(survey_key: str) -> Response:
    with unit_of_work() as session:
        origin, contact = _identified_contact(required=True)
        survey = get_survey(session, survey_key)
        until = dismiss(session, survey, contact, now=now())
    return with_cors(jsonify(dismissed_until=until.isoformat()), origin)


@bp.get("/embed/v1/messages")
def embed_messages() -> Response:
    """The identified contact's in-app messages (queued or seen), newest first; this fetch marks
    them seen. `status` says how each was before it: `queued` is new to the reader."""
    with unit_of_work() as session:
        # Runs alongside the widget's survey request after identify(): look the contact up, never
        # create it (a contact new to us has no messages yet).
        origin, identity = _identity(required=True)
        contact = known_contact(session, identity) if identity else None
        config = settings()
        links = Links(public_url=config.public_url, secret_key=config.secret_key)
        shown = open_inbox(session, contact, links=links, now=now()) if contact else []
    body = {
        "messages": [
            {"id": m.id, "html": m.html, "created_at": m.created_at.isoformat(), "status": m.status.value}
            for m in shown
        ],
        "strings": inbox_strings(request.args.get("locale", "en")),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return with_cors(response, origin)


@bp.post("/embed/v1/messages/<int:message_id>/<any(clicked, dismissed):action>")
def embed_message_action(message_id: int, action: str) -> Response:
    """The contact clicked a link in a card, or dismissed it (only their own messages; idempotent)."""
    with unit_of_work() as session:
        origin, identity = _identity(required=True)
        contact = known_contact(session, identity) if identity else None
        if contact is None:
            raise NotFound(f"no in-app message {message_id} for this contact")
        message = record_action(session, contact, message_id, action, now=now())
        body = {"id": message.id, "status": message.status.value}
    return with_cors(jsonify(body), origin)


@bp.get("/embed/v1/frame/<survey_key>")
def embed_frame(survey_key: str) -> str:
    """Iframe mode: a page on our origin that runs the same widget inline, for hosts that want
    full isolation. The host passes identity to it with postMessage."""
    return render_template(
        "embed_frame.html",
        survey_key=survey_key,
        workspace=request.args.get("workspace", "default"),
        locale=request.args.get("locale", "en"),
    )
