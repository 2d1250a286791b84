"""Admin sign-in: Flask-Login sessions, roles, a per-session CSRF token, and the console's cookies."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Flask, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers.response import Response as BaseResponse

from engine import audit
from engine.errors import NorthstarError
from engine.users import MAX_FAILED_LOGINS, Role, User, authenticate
from web.admin import bp
from web.context import db_session, now, unit_of_work
from web.ratelimit import limiter

F = TypeVar("F", bound=Callable[..., Any])
EDITORS = (Role.ADMIN, Role.EDITOR)
ADMINS = (Role.ADMIN,)
ANY_ROLE = tuple(Role)
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.invite_accept"})
# Pages about people, settings and privacy: their 403 says the admin role is needed.
ADMIN_PATHS = ("/admin/people", "/admin/settings", "/admin/audit")
ADMIN_SUFFIXES = ("/privacy", "/privacy/export", "/privacy/erase")
MAX_CREDENTIAL = 1024  # longer emails or passwords are never right; do not spend Argon2 time on them
BAD_CREDENTIALS = "That email and password do not match an account."

login_manager = LoginManager()


class CsrfFailed(BadRequest):
    description = "the form's CSRF token is missing or does not match this session"


class ConsoleUser(UserMixin):  # type: ignore[misc]
    """The signed-in user as the request sees it (the ORM row stays in the request's session)."""

    def __init__(self, user: User) -> None:
        self.user_id = user.id
        self.email = user.email
        self.name = user.name
        self.role = Role(user.role)
        self.stamp = password_stamp(user.password_hash, user.session_epoch)

    def get_id(self) -> str:
        # The stamp signs the session out everywhere when the password changes.
        return f"{self.user_id}.{self.stamp}"

    @property
    def can_edit(self) -> bool:
        return self.role in EDITORS


def password_stamp(password_hash: str, epoch: int = 0) -> str:
    """Changes with the password and with every deactivation (sessions signed before then end)."""
    seed = password_hash if epoch == 0 else f"{password_hash}:{epoch}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def init_app(app: Flask) -> None:
    public_url = app.extensions["northstar.settings"].public_url
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=public_url.startswith("https://"),
    )
    login_manager.init_app(app)
    app.add_template_global(csrf_token)


def _load_user(user_id: str) -> ConsoleUser | None:
    number, _, stamp = user_id.partition(".")
    if not number.isdigit() or len(number) > 18:
        return None
    user = db_session().get(User, int(number))
    if user is None or not hmac.compare_digest(password_stamp(user.password_hash, user.session_epoch), stamp):
        return None
    if user.deactivated_at is not None:  # deactivated: every open session ends on its next request
        return None
    return ConsoleUser(user)


def _to_login() -> BaseResponse:
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("admin.login", next=safe_next(target)), 303)


login_manager.user_loader(_load_user)
login_manager.unauthorized_handler(_to_login)


def csrf_token() -> str:
    """This session's CSRF token, made on first use; every admin form posts it back."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


@bp.before_request
def _protect() -> BaseResponse | None:
    if request.method not in SAFE_METHODS:
        expected = session.get(CSRF_FIELD)
        sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
        if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise CsrfFailed()
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return cast(BaseResponse, login_manager.unauthorized())
    if current_user.is_authenticated:
        # What this request changes in audited models is logged as this user's (engine.audit).
        audit.set_actor(audit.Actor(str(current_user.email), "console"))
    return None


@bp.teardown_request
def _forget_actor(_exc: BaseException | None) -> None:
    audit.set_actor(None)


@bp.after_request
def _console_headers(response: Response) -> Response:
    # Everything the console loads is served from here (vendored assets, no inline script or style).
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# What a viewer can look at in each console section (the 403 page names it).
SECTION_NOUNS = (
    ("/admin/rules", "rules and account tests"),
    ("/admin/plans", "plans and their history"),
    ("/admin/surveys", "surveys and their previews"),
    ("/admin/campaigns", "campaigns, their versions and live counts"),
    ("/admin/content", "the content library, templates and their previews"),
    ("/admin/accounts", "accounts, their plans, messages and events"),
    ("/admin/reports", "every report"),
    ("/admin/contacts", "contacts and why each message was or was not sent"),
)


def role_required(*roles: Role) -> Callable[[F], F]:
    """Signed in with one of `roles`; anyone else signed in gets the friendly 403 page."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path inside the console, else None: never a redirect off the site."""
    if not target or len(target) > 2000 or not target.startswith("/admin"):
        return None
    if any(ch in target for ch in "\\\r\n\t\x00") or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login() -> Any:
    target = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(target or url_for("admin.dashboard"), 303)
    if request.method == "GET":
        return render_template("admin/login.html", next=target or "", email="", error=None)
    email = request.form.get("email", "").strip()
    password = request.form.get("password", "")
    error = _sign_in(email, password)
    if error is None:
        return redirect(target or url_for("admin.dashboard"), 303)
    return render_template("admin/login.html", next=target or "", email=email, error=error), 401


def _sign_in(email: str, password: str) -> str | None:
    """Signs the user in and returns None, or returns what to tell them."""
    if not email or not password:
        return "Enter your email and password."
    if len(email) > MAX_CREDENTIAL or len(password) > MAX_CREDENTIAL or "\x00" in email:
        return BAD_CREDENTIALS
    clock = now()
    with unit_of_work() as session_:  # commits the failure count too
        user = authenticate(session_, email, password, now=clock)
        if user is None:
            return _failure_message(email, clock)
        identity = ConsoleUser(user)
    session.clear()  # a fresh session (and CSRF token) for the signed-in user
    login_user(identity)
    return None


def _failure_message(email: str, clock: dt.datetime) -> str:
    # Saying that an account is locked reveals that its email exists; people need to know why
    # a right password fails, and the per-IP limit on this form slows anyone probing emails.
    user = db_session().scalar(select(User).where(User.email == email.lower()))
    if user is not None and user.locked_until is not None and user.locked_until > clock:
        minutes = max(1, math.ceil((user.locked_until - clock).total_seconds() / 60))
        return (
            f"Too many failed attempts ({MAX_FAILED_LOGINS} in a row): sign-in for this account is "
            f"paused for {minutes} minute{'s' if minutes != 1 else ''}. Try again later or ask an admin."
        )
    return BAD_CREDENTIALS


@bp.post("/logout")
def logout() -> BaseResponse:
    logout_user()
    session.clear()
    flash("You are signed out.", "ok")
    return redirect(url_for("admin.login"), 303)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if isinstance(exc, CsrfFailed):
        title, detail = (
            "This form has expired",
            (
                "The page was open too long or was sent from somewhere else, so nothing was changed. "
                "Go back, reload the page and try again."
            ),
        )
    elif status == 403:
        title = "You can look, but not change"
        role = getattr(current_user, "role", "viewer")
        if request.path.startswith(ADMIN_PATHS) or request.path.endswith(ADMIN_SUFFIXES):
            title = "Only admins can do this"
            detail = (
                f"Your role ({role}) cannot manage people, settings, the audit log or privacy "
                "requests. Ask an admin if you need this done."
            )
            return render_template("admin/error.html", status=403, title=title, detail=detail), 403
        what = next(
            (label for prefix, label in SECTION_NOUNS if request.path.startswith(prefix)),
            "this page",
        )
        detail = (
            f"Your role ({role}) can view {what}, but editing and publishing "
            "needs the editor or admin role. Ask an admin if you need it."
        )
    elif status == 429:
        title, detail = "Too many attempts", "Wait a minute, then try again."
    else:
        title, detail = exc.name, exc.description or exc.name
    return render_template("admin/error.html", status=status, title=title, detail=detail), status


@bp.errorhandler(NorthstarError)
def _domain_error(exc: NorthstarError) -> Any:
    return render_template("admin/error.html", status=exc.status, title=exc.title, detail=exc.detail), (
        exc.status
    )
