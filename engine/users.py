"""Console users: Argon2id password hashes, roles, and login throttling state."""

from __future__ import annotations

import datetime as dt
import enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import str_enum
from engine.db import Base, utcnow
from engine.errors import Conflict, ValidationFailed

_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
MIN_PASSWORD = 10
MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)


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

    def can_edit(self) -> bool:
        return self.role in (Role.ADMIN, Role.EDITOR)


def create_user(session: Session, email: str, password: str, *, role: Role, name: str = "") -> User:
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed({"email": "not an email address"})
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed({"password": f"at least {MIN_PASSWORD} characters"})
    if session.scalar(select(User).where(User.email == email)):
        raise Conflict(f"a user {email} already exists")
    user = User(email=email, name=name, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str, *, now: dt.datetime) -> User | None:
    """The user if the password is right and the account is not locked; counts failures."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        _hasher.hash(password)  # same cost whether or not the email exists
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
