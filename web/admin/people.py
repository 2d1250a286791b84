"""People and permissions: users, invitations, roles; the admin audit log; workspace settings."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers.response import Response as BaseResponse

from campaigns.mail import (
    AmbiguousSendError,
    BulkEmail,
    PermanentSendError,
    Recipient,
    TransientSendError,
    backend_for,
)
from engine import audit
from engine.apitokens import ApiToken, create_token
from engine.errors import Conflict, NorthstarError, ValidationFailed
from engine.users import (
    INVITE_TTL,
    Invitation,
    Role,
    User,
    accept_invitation,
    change_role,
    deactivate_user,
    find_invitation,
    invite_user,
    reactivate_user,
    revoke_invitation,
)
from engine.workspaces import Workspace, normalise_origin, rotate_secret
from web.admin import bp
from web.admin.auth import ADMINS, role_required
from web.admin.nav import Crumb, breadcrumbs
from web.context import db_session, now, settings, unit_of_work
from web.embed import embed_snippet
from web.ratelimit import limiter

log = logging.getLogger(__name__)
ROLE_HELP = {
    Role.ADMIN: "everything, plus people, settings, the audit log and privacy requests",
    Role.EDITOR: "create, edit and publish surveys, rules, plans, campaigns and content",
    Role.VIEWER: "read everything, change nothing",
}
AUDIT_PAGE = 100
AUDIT_FOLDED = 120  # characters: a longer value (a rule's condition, a campaign's document) is folded


def _role(value: str | None) -> Role:
    if value not in {r.value for r in Role}:
        raise ValidationFailed({"role": "choose admin, editor or viewer"})
    return Role(value)


def settings_crumbs(*trail: Crumb) -> list[Crumb]:
    return breadcrumbs(("Settings", url_for("admin.settings")), *trail)


def _people_page(
    *, errors: dict[str, Any] | None = None, form: dict[str, str] | None = None, status: int = 422
) -> Any:
    session = db_session()
    users = session.scalars(select(User).order_by(User.deactivated_at.is_not(None), User.email)).all()
    invitations = session.scalars(
        select(Invitation).where(Invitation.accepted_at.is_(None)).order_by(Invitation.id.desc()).limit(50)
    ).all()
    return render_template(
        "admin/people.html",
        section="settings",
        breadcrumbs=settings_crumbs(("People", None)),
        users=users,
        invitations=invitations,
        roles=list(Role),
        role_help=ROLE_HELP,
        errors=errors or {},
        form=form or {"email": "", "role": Role.EDITOR.value},
        clock=now(),
        me=current_user.user_id,
    ), status if errors else 200


@bp.get("/people")
@role_required(*ADMINS)
def people() -> Any:
    return _people_page()


@bp.post("/people/invite")
@role_required(*ADMINS)
def invite() -> Any:
    form = {"email": request.form.get("email", "").strip(), "role": request.form.get("role", "")}
    try:
        with unit_of_work() as session:
            invitation, token = invite_user(
                session,
                form["email"],
                _role(form["role"]),
                invited_by=str(current_user.email),
                secret=settings().secret_key,
                now=now(),
            )
            email, role = invitation.email, invitation.role
    except ValidationFailed as exc:
        return _people_page(errors=exc.errors, form=form)
    link = url_for("admin.invite_accept", token=token, _external=False)
    sent = _send_invitation(email, role, settings().public_url + link)
    if sent:
        flash(f"Invitation sent to {email} ({role}). The link works once, for {INVITE_TTL.days} days.", "ok")
    else:
        flash(
            f"The invitation for {email} was created but the email could not be sent; give them this "
            f"link yourself (it works once, for {INVITE_TTL.days} days): {settings().public_url}{link}",
            "warn",
        )
    return redirect(url_for("admin.people"), 303)


def _send_invitation(email: str, role: Role, link: str) -> bool:
    """The invitation email, through the configured mail backend (SendGrid or the outbox)."""
    inviter = current_user.name or current_user.email
    subject = f"{inviter} invited you to the Northstar console"
    text = (
        f"{inviter} invited you to the Northstar console as {role.value} "
        f"({ROLE_HELP[role]}).\n\nSet your name and password here (the link works once, for "
        f"{INVITE_TTL.days} days):\n{link}\n"
    )
    body = (
        f"<p>{html.escape(inviter)} invited you to the Northstar console as "
        f"<strong>{role.value}</strong> ({html.escape(ROLE_HELP[role])}).</p>"
        f'<p><a href="{html.escape(link)}">Set your name and password</a> '
        f"(the link works once, for {INVITE_TTL.days} days).</p>"
    )
    try:
        backend_for(settings()).send(
            BulkEmail(
                settings().mail_from,
                body,
                text,
                [Recipient(message_id=0, email=email, name="", subject=subject, substitutions={})],
                category="invitation",
            )
        )
    except (TransientSendError, PermanentSendError, AmbiguousSendError, OSError) as exc:
        log.warning("invitation email to %s failed: %s", email, exc)
        return False
    return True


@bp.post("/people/invitations/<int:invitation_id>/revoke")
@role_required(*ADMINS)
def revoke(invitation_id: int) -> BaseResponse:
    with unit_of_work() as session:
        found = revoke_invitation(session, invitation_id, now=now())
        flash(f"The invitation for {found.email} no longer works.", "ok")
    return redirect(url_for("admin.people"), 303)


@bp.post("/people/<int:user_id>/role")
@role_required(*ADMINS)
def change_user_role(user_id: int) -> Any:
    try:
        with unit_of_work() as session:
            user = change_role(session, user_id, _role(request.form.get("role")))
            flash(f"{user.email} is now {user.role}.", "ok")
    except ValidationFailed as exc:
        return _people_page(errors={"row": {user_id: exc.errors.get("role", exc.detail)}})
    except Conflict as exc:  # the last admin: said beside them, on the page, not on an error page
        return _people_page(errors={"row": {user_id: _sentence(exc.detail)}}, status=409)
    return redirect(url_for("admin.people"), 303)


@bp.post("/people/<int:user_id>/deactivate")
@role_required(*ADMINS)
def deactivate(user_id: int) -> Any:
    try:
        with unit_of_work() as session:
            user = deactivate_user(session, user_id, now=now())
            flash(f"{user.email} is deactivated: they cannot sign in, and their open sessions ended.", "ok")
    except Conflict as exc:
        return _people_page(errors={"row": {user_id: _sentence(exc.detail)}}, status=409)
    return redirect(url_for("admin.people"), 303)


def _sentence(text: str) -> str:
    """A domain message ("x is the last admin: …") as a sentence for the page; emails keep their case."""
    return text if text.endswith(".") else text + "."


@bp.post("/people/<int:user_id>/reactivate")
@role_required(*ADMINS)
def reactivate(user_id: int) -> BaseResponse:
    with unit_of_work() as session:
        user = reactivate_user(session, user_id)
        flash(f"{user.email} can sign in again.", "ok")
    return redirect(url_for("admin.people"), 303)


@bp.route("/invite/<token>", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def invite_accept(token: str) -> Any:
    """The invitee's page (no sign-in): set a name and a password, then sign in."""
    keys = [settings().secret_key, *settings().old_secret_keys]
    session = db_session()
    try:
        invitation = find_invitation(session, token[:500], secrets_=keys, now=now())
    except NorthstarError as exc:
        session.rollback()
        return render_template("admin/invite_accept.html", invitation=None, problem=exc.detail), 404
    errors: dict[str, Any] = {}
    name = ""
    if request.method == "POST":
        name = request.form.get("name", "")
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            errors["confirm"] = "the two passwords differ"
        else:
            try:
                # The invitee is not signed in yet: their own account's creation is logged as theirs.
                with unit_of_work(), audit.acting_as(invitation.email, "console"):
                    accept_invitation(session, invitation, name=name, password=password, now=now())
            except ValidationFailed as exc:
                errors = exc.errors
            else:
                flash("Your account is ready: sign in with your email and new password.", "ok")
                return redirect(url_for("admin.login"), 303)
    return render_template(
        "admin/invite_accept.html",
        invitation=invitation,
        problem=None,
        errors=errors,
        name=name,
        role_help=ROLE_HELP,
        token=token,
    ), 422 if errors else 200


# --- settings --------------------------------------------------------------------------------


def _settings_page(
    *,
    new_token: str | None = None,
    errors: dict[Any, Any] | None = None,
    typed: dict[Any, dict[str, str]] | None = None,
) -> Any:
    """The settings page; after a refused save, `typed` holds what was submitted (by workspace id,
    or "token") so the form shows it again beside its errors, not the stored values."""
    session = db_session()
    configured = settings()
    env = [
        ("Public URL", "NORTHSTAR_PUBLIC_URL", configured.public_url),
        ("Mail backend", "NORTHSTAR_MAIL_BACKEND", configured.mail_backend),
        ("Sender", "NORTHSTAR_MAIL_FROM", configured.mail_from),
        ("Postal address (email footer)", "built in, not configurable yet", configured.postal_address),
        ("Ops email (plan changes)", "NORTHSTAR_OPS_EMAIL", configured.ops_email or "not set"),
        ("Nudges per account per week", "NORTHSTAR_CAP_ACCOUNT_PER_WEEK", configured.cap_account_per_week),
        ("Messages per contact per week", "NORTHSTAR_CAP_CONTACT_PER_WEEK", configured.cap_contact_per_week),
        ("Redis", "NORTHSTAR_REDIS_URL", "configured" if configured.redis_url else "not set"),
        ("Rate limits", "NORTHSTAR_RATE_LIMITS", "on" if configured.rate_limits_enabled else "off"),
    ]
    return render_template(
        "admin/settings.html",
        section="settings",
        breadcrumbs=breadcrumbs(("Settings", None)),
        env=env,
        workspaces=session.scalars(select(Workspace).order_by(Workspace.key)).all(),
        tokens=session.scalars(
            select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.name)
        ).all(),
        roles=list(Role),
        new_token=new_token,
        errors=errors or {},
        typed=typed or {},
        embed_snippet=lambda key: embed_snippet(configured.public_url, key),
    ), 422 if errors else 200


@bp.get("/settings", endpoint="settings")  # the function's name would shadow web.context.settings
@role_required(*ADMINS)
def settings_page() -> Any:
    return _settings_page()


@bp.post("/settings/workspaces/<int:workspace_id>")
@role_required(*ADMINS)
def save_workspace(workspace_id: int) -> Any:
    typed = {"name": request.form.get("name", ""), "origins": request.form.get("origins", "")}
    name = typed["name"].strip()
    lines = [line.strip() for line in typed["origins"].splitlines() if line.strip()]
    errors: dict[str, str] = {}
    if not name or len(name) > 200:
        errors["name"] = "a name of 1 to 200 characters"
    origins = []
    for line in lines[:100]:
        try:
            origins.append(normalise_origin(line))
        except ValidationFailed as exc:
            errors["origins"] = str(exc.errors["origin"])
    if errors:
        return _settings_page(errors={workspace_id: errors}, typed={workspace_id: typed})
    with unit_of_work() as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            raise HTTPNotFound("There is no such workspace.")
        workspace.name = name
        workspace.allowed_origins = sorted(set(origins))
        flash(f"Workspace {workspace.key} saved.", "ok")
    return redirect(url_for("admin.settings"), 303)


@bp.post("/settings/workspaces/<int:workspace_id>/rotate")
@role_required(*ADMINS)
def rotate_workspace_secret(workspace_id: int) -> BaseResponse:
    with unit_of_work() as session:
        workspace = session.get(Workspace, workspace_id)
        if workspace is None:
            raise HTTPNotFound("There is no such workspace.")
        rotate_secret(session, workspace, now=now())
        flash(
            f"Workspace {workspace.key} has a new widget secret (under “Embed the widget” below); "
            "tokens signed with the old one work for 7 more days.",
            "ok",
        )
    return redirect(url_for("admin.settings"), 303)


@bp.post("/settings/tokens")
@role_required(*ADMINS)
def create_api_token() -> Any:
    typed = {"name": request.form.get("name", "")[:120], "role": request.form.get("role", "")}
    try:
        with unit_of_work() as session:
            token = create_token(session, typed["name"], _role(typed["role"]))
    except NorthstarError as exc:
        return _settings_page(errors={"token": exc.detail}, typed={"token": typed})
    return _settings_page(new_token=token)


@bp.post("/settings/tokens/<int:token_id>/revoke")
@role_required(*ADMINS)
def revoke_api_token(token_id: int) -> BaseResponse:
    with unit_of_work() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise HTTPNotFound("There is no such token.")
        if token.revoked_at is None:
            token.revoked_at = now()
        flash(f"Token {token.name} no longer works.", "ok")
    return redirect(url_for("admin.settings"), 303)


# --- audit log -------------------------------------------------------------------------------


def _day(value: str, field: str, errors: dict[str, str]) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        errors[field] = "a date like 2026-03-02"
        return None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ShownChange:
    """One field of an audit entry as the log shows it, as text: `before` and `value` for an
    update; for anything else only `value` (what was created, or what was deleted)."""

    field: str
    value: str
    before: str | None = None

    @property
    def folded(self) -> bool:
        """Long enough to fold behind a glimpse, so one entry cannot fill (or widen) the page."""
        return len(self.value) + len(self.before or "") > AUDIT_FOLDED


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def shown_changes(entry: audit.AuditEntry) -> list[ShownChange]:
    shown = []
    for field, pair in entry.changes.items():
        before, after = _as_text(pair[0]), _as_text(pair[1])
        if entry.action == "update":
            shown.append(ShownChange(field, after, before))
        else:
            shown.append(ShownChange(field, before if entry.action == "delete" else after))
    return shown


@bp.get("/audit")
@role_required(*ADMINS)
def audit_log() -> Any:
    args = request.args
    errors: dict[str, str] = {}
    filters = {
        "actor": args.get("actor", "")[:320],
        "type": args.get("type", "")[:80],
        "object": args.get("object", "")[:80],
        "from": args.get("from", "")[:10],
        "to": args.get("to", "")[:10],
    }
    since = _day(filters["from"], "from", errors)
    until = _day(filters["to"], "to", errors)
    if until is not None:
        until += dt.timedelta(days=1)  # "to" includes that whole day
    before = args.get("before", "")
    where = audit.AuditFilter(
        actor=filters["actor"] or None,
        object_type=filters["type"] or None,
        object_id=filters["object"] or None,
        since=since,
        until=until,
        before_id=int(before) if before.isdigit() and len(before) < 10 else None,
    )
    session = db_session()
    entries = [] if errors else audit.audit_entries(session, where, limit=AUDIT_PAGE + 1)
    more = len(entries) > AUDIT_PAGE
    return render_template(
        "admin/audit_log.html",
        section="settings",
        breadcrumbs=settings_crumbs(("Audit log", None)),
        entries=entries[:AUDIT_PAGE],
        changes={entry.id: shown_changes(entry) for entry in entries[:AUDIT_PAGE]},
        older=entries[AUDIT_PAGE - 1].id if more else None,
        filters=filters,
        errors=errors,
        actors=audit.audit_actors(session),
        types=audit.type_titles(),
        type_title=audit.type_title,
    ), 422 if errors else 200
