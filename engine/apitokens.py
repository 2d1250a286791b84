"""API v1 bearer tokens: shown once at creation, stored as SHA-256 digests, each with a role
(viewer tokens read, editor tokens also write, admin tokens may also erase contacts)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import str_enum
from engine.db import Base, utcnow
from engine.errors import Conflict, ValidationFailed
from engine.users import Role

TOKEN_PREFIX = "ns_"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # Tokens made before roles existed keep writing: they become editors.
    role: Mapped[Role] = mapped_column(str_enum(Role), default=Role.EDITOR, server_default=Role.EDITOR.value)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: Role | str = Role.EDITOR) -> str:
    """Create a named token and return its secret value (the only time it is visible)."""
    name = name.strip()
    if not name:
        raise ValidationFailed({"name": "a token needs a name"})
    if len(name) > 120 or not name.isprintable():
        raise ValidationFailed({"name": "a token name is at most 120 printable characters"})
    if role not in {r.value for r in Role}:
        raise ValidationFailed({"role": f"one of {', '.join(r.value for r in Role)}"})
    if session.scalar(select(ApiToken).where(ApiToken.name == name)):
        raise Conflict(f"a token named {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, digest=_digest(token), role=Role(role)))
    session.flush()
    return token


def verify_token(session: Session, token: str) -> ApiToken | None:
    found = session.scalar(select(ApiToken).where(ApiToken.digest == _digest(token)))
    if found is None or found.revoked_at is not None:
        return None
    return found
