"""Console users: Argon2id password hashes, roles, login throttling, invitations, deactivation."""

from __future__ import annotations

import datetime as dt
import enum
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import ForeignKey, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import str_enum
from engine.db import Base, utcnow
from engine.errors import Conflict, NotFound, ValidationFailed

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
MIN_PASSWORD = 10
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
INVITE_TTL = dt.timedelta(days=7)
MAX_NAME = 200


class Role(enum.StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role), default=Role.VIEWER)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]
    last_login_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A deactivated user cannot sign in, and their open sessions stop working (auth.py checks it).
    deactivated_at: Mapped[dt.datetime | None]
    # Bumped when the user is deactivated: sessions signed before stay ended after a reactivation.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    @property
    def active(self) -> bool:
        return self.deactivated_at is None

    def can_edit(self) -> bool:
        return self.role in (Role.ADMIN, Role.EDITOR)


class Invitation(Base):
    """An invitation to the console: its link carries a signed token naming this row and its nonce,
    so it works once (accepted_at), until expires_at, and not after it is revoked."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    nonce: Mapped[str] = mapped_column(String(64))
    invited_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    accepted_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def state(self, now: dt.datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "pending"


def _email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > 320 or not email.isprintable() or " " in email:
        raise ValidationFailed({"email": "not an email address"})
    return email


def _password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed({"password": f"at least {MIN_PASSWORD} characters"})
    if len(password) > 1024:
        raise ValidationFailed({"password": "at most 1024 characters"})
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:  # bytes that were not UTF-8, smuggled in as surrogates
        raise ValidationFailed({"password": "must be text (UTF-8)"}) from None
    return password


def create_user(session: Session, email: str, password: str, *, role: Role, name: str = "") -> User:
    email = _email(email)
    _password(password)
    if len(name) > 200 or not name.isprintable():
        raise ValidationFailed({"name": "at most 200 printable characters"})
    if session.scalar(select(User).where(User.email == email)):
        raise Conflict(f"a user {email} already exists")
    user = User(email=email, name=name, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str, *, now: dt.datetime) -> User | None:
    """The user if the password is right and the account is not locked; counts failures."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.deactivated_at is not None:
        _hasher.hash(password)  # same cost whether or not the email exists (or may sign in)
        return None
    if user.locked_until is not None and now < user.locked_until:
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return user


# --- people: invitations, roles, deactivation -------------------------------------------------


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="northstar.invitation")


def invite_user(
    session: Session, email: str, role: Role, *, invited_by: str, secret: str, now: dt.datetime
) -> tuple[Invitation, str]:
    """A new invitation and its signed token (the link's last part); earlier pending invitations
    to the same email are revoked, so only the newest link works."""
    email = _email(email)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationFailed({"email": f"{email} already has an account"})
    for earlier in session.scalars(
        select(Invitation).where(
            Invitation.email == email, Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None)
        )
    ):
        earlier.revoked_at = now
    invitation = Invitation(
        email=email,
        role=Role(role),
        nonce=secrets.token_urlsafe(16),
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITE_TTL,
    )
    session.add(invitation)
    session.flush()
    return invitation, invitation_token(invitation, secret)


def invitation_token(invitation: Invitation, secret: str) -> str:
    return _serializer(secret).dumps({"i": invitation.id, "n": invitation.nonce})


def find_invitation(session: Session, token: str, *, secrets_: list[str], now: dt.datetime) -> Invitation:
    """The pending invitation a token names; NotFound (with why) for anything else."""
    payload: object = None
    for secret in secrets_:
        try:
            payload = _serializer(secret).loads(token, max_age=int(INVITE_TTL.total_seconds()))
            break
        except BadSignature:
            continue
    if not isinstance(payload, dict) or not isinstance(payload.get("i"), int):
        raise NotFound("This invitation link is not valid or has expired. Ask an admin for a new one.")
    invitation = session.get(Invitation, payload["i"], with_for_update=True)
    if invitation is None or not secrets.compare_digest(str(payload.get("n")), invitation.nonce):
        raise NotFound("This invitation link is not valid. Ask an admin for a new one.")
    state = invitation.state(now)
    if state != "pending":
        raise NotFound(f"This invitation was {state}. Ask an admin for a new one if you still need access.")
    return invitation


def accept_invitation(
    session: Session, invitation: Invitation, *, name: str, password: str, now: dt.datetime
) -> User:
    """The invitee's account, with the invited role; the invitation is used up."""
    name = name.strip()
    errors = {}
    if not name:
        errors["name"] = "enter your name"
    elif len(name) > MAX_NAME:
        errors["name"] = f"at most {MAX_NAME} characters"
    try:
        _password(password)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    user = create_user(session, invitation.email, password, role=invitation.role, name=name)
    invitation.accepted_at = now
    invitation.user_id = user.id
    session.flush()
    return user


def revoke_invitation(session: Session, invitation_id: int, *, now: dt.datetime) -> Invitation:
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound(f"no invitation {invitation_id}")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = now
        session.flush()
    return invitation


def _active_admins(session: Session) -> int:
    # Locks the admin rows: two admins demoting each other at once cannot both succeed.
    ids = session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.deactivated_at.is_(None)).with_for_update()
    ).all()
    return len(ids)


def _get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def change_role(session: Session, user_id: int, role: Role) -> User:
    user = _get_user(session, user_id)
    role = Role(role)
    if user.role == Role.ADMIN and role != Role.ADMIN and user.active and _active_admins(session) <= 1:
        raise Conflict(f"{user.email} is the last admin: make someone else an admin first")
    user.role = role
    session.flush()
    return user


def deactivate_user(session: Session, user_id: int, *, now: dt.datetime) -> User:
    """The user can no longer sign in; their sessions end on their next request."""
    user = _get_user(session, user_id)
    if not user.active:
        return user
    if user.role == Role.ADMIN and _active_admins(session) <= 1:
        raise Conflict(f"{user.email} is the last admin: make someone else an admin first")
    user.deactivated_at = now
    user.session_epoch += 1
    session.flush()
    return user


def reactivate_user(session: Session, user_id: int) -> User:
    user = _get_user(session, user_id)
    user.deactivated_at = None
    user.failed_logins = 0
    user.locked_until = None
    session.flush()
    return user


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count(User.id))) or 0)
