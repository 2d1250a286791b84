"""CORS for the widget: only the workspace's configured origins, answered per request."""

from __future__ import annotations

from flask import Response, g, request

from engine.apitokens import TOKEN_PREFIX
from engine.errors import NorthstarError, NotFound
from engine.workspaces import DEFAULT_WORKSPACE, WorkspaceKeys, workspace_keys
from surveys.identity import Identity, verify_identity
from web.context import db_session, now

WORKSPACE_HEADER = "X-Northstar-Workspace"
ALLOWED_HEADERS = f"Authorization, Content-Type, {WORKSPACE_HEADER}"


class OriginNotAllowed(NorthstarError):
    status = 403
    title = "Origin not allowed"


def request_workspace() -> WorkspaceKeys:
    """The workspace a widget request is for: header, then `?workspace=`, then the default."""
    key = request.headers.get(WORKSPACE_HEADER) or request.args.get("workspace") or DEFAULT_WORKSPACE
    try:
        return workspace_keys(db_session(), key)
    except NotFound:
        raise NotFound(
            f"no workspace {key!r}: check the data-workspace attribute of the script tag"
        ) from None


def request_identity() -> Identity | None:
    """The widget's identity token (`Authorization: Bearer <JWT>`), verified once per request: the
    per-contact rate limit keys on it before the view runs, and the view takes the same answer.
    None without one (or with an API token); a bad token raises IdentityRejected, each time asked."""
    if "identity" not in g:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token.startswith(TOKEN_PREFIX):
            g.identity = None
        else:
            try:
                g.identity = verify_identity(request_workspace(), token, now=now())
            except NorthstarError as exc:  # rejected token, unknown workspace: the view reports it
                g.identity = exc
    if isinstance(g.identity, NorthstarError):
        raise g.identity
    identity: Identity | None = g.identity
    return identity


def check_origin(workspace: WorkspaceKeys) -> str | None:
    """The request's Origin if the workspace allows it; None for same-origin/server requests."""
    origin = request.headers.get("Origin")
    if origin is None or origin == request.host_url.rstrip("/"):
        return None
    if not workspace.allows_origin(origin):
        raise OriginNotAllowed(
            f"{origin} is not an allowed origin of workspace {workspace.key!r} "
            f"(add it: northstar workspace set {workspace.key} --origin {origin})"
        )
    return origin


def with_cors(response: Response, origin: str | None) -> Response:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Max-Age"] = "600"
    response.headers.add("Vary", "Origin")
    return response


def preflight() -> Response:
    """Answer an OPTIONS preflight: 204 with the CORS headers, or 403 for a foreign origin."""
    origin = check_origin(request_workspace())
    return with_cors(Response(status=204), origin)
