"""Workspaces: the tenant a widget embeds for, with its JWT secret and allowed origins."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import refcache
from engine.db import Base, utcnow
from engine.errors import NotFound, ValidationFailed

DEFAULT_WORKSPACE = "default"
SECRET_GRACE = dt.timedelta(days=7)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    jwt_secret: Mapped[str] = mapped_column(String(200))
    previous_jwt_secret: Mapped[str | None] = mapped_column(String(200))
    previous_secret_valid_until: Mapped[dt.datetime | None]
    allowed_origins: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    def keys(self) -> WorkspaceKeys:
        return WorkspaceKeys(
            self.key,
            self.jwt_secret,
            self.previous_jwt_secret,
            self.previous_secret_valid_until,
            tuple(self.allowed_origins),
        )


@dataclass(frozen=True)
class WorkspaceKeys:
    """What a request needs of a workspace (cached): its secrets and allowed origins."""

    key: str
    jwt_secret: str
    previous_jwt_secret: str | None
    previous_secret_valid_until: dt.datetime | None
    allowed_origins: tuple[str, ...]

    def secrets_at(self, now: dt.datetime) -> list[str]:
        valid = [self.jwt_secret]
        if (
            self.previous_jwt_secret
            and self.previous_secret_valid_until
            and now < self.previous_secret_valid_until
        ):
            valid.append(self.previous_jwt_secret)
        return valid

    def allows_origin(self, origin: str | None) -> bool:
        if origin is None:
            return False
        try:
            return normalise_origin(origin) in self.allowed_origins
        except ValidationFailed:
            return False


refcache.watch(Workspace.__tablename__)


def workspace_keys(session: Session, key: str) -> WorkspaceKeys:
    def load() -> dict[str, WorkspaceKeys]:
        return {
            w.key: WorkspaceKeys(
                w.key,
                w.jwt_secret,
                w.previous_jwt_secret,
                w.previous_secret_valid_until,
                tuple(w.allowed_origins),
            )
            for w in session.scalars(select(Workspace))
        }

    found = refcache.cached(session, "workspaces", load).get(key)
    if found is None:
        raise NotFound(f"no workspace {key!r}")
    return found


WORKSPACE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}")
MAX_ORIGIN = 300


def normalise_origin(origin: str) -> str:
    if len(origin) > MAX_ORIGIN:
        raise ValidationFailed({"origin": f"an origin is at most {MAX_ORIGIN} characters"})
    parsed = urlparse(origin.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
        raise ValidationFailed({"origin": f"{origin!r} is not an origin like https://app.example.com"})
    return f"{parsed.scheme}://{parsed.netloc.lower()}"


def get_workspace(session: Session, key: str) -> Workspace:
    workspace = session.scalar(select(Workspace).where(Workspace.key == key))
    if workspace is None:
        raise NotFound(f"no workspace {key!r}")
    return workspace


def ensure_workspace(
    session: Session,
    key: str = DEFAULT_WORKSPACE,
    *,
    name: str | None = None,
    origins: list[str] | None = None,
) -> Workspace:
    """Create the workspace if missing (with a fresh secret); add any new allowed origins."""
    if name is not None and not (0 < len(name.strip()) <= 200 and name.isprintable()):
        raise ValidationFailed({"name": "a workspace name is 1 to 200 printable characters"})
    workspace = session.scalar(select(Workspace).where(Workspace.key == key))
    if workspace is None:
        if not WORKSPACE_KEY.fullmatch(key):
            raise ValidationFailed(
                {"key": f"{key!r}: a workspace key is 1 to 80 letters, digits, '_', '.' or '-'"}
            )
        workspace = Workspace(key=key, name=name or key, jwt_secret=new_secret(), allowed_origins=[])
        session.add(workspace)
    if name:
        workspace.name = name
    wanted = [normalise_origin(o) for o in origins or []]
    workspace.allowed_origins = sorted(set(workspace.allowed_origins) | set(wanted))
    session.flush()
    return workspace


def rotate_secret(session: Session, workspace: Workspace, *, now: dt.datetime) -> str:
    """New signing secret; tokens signed with the old one stay valid for SECRET_GRACE."""
    workspace.previous_jwt_secret = workspace.jwt_secret
    workspace.previous_secret_valid_until = now + SECRET_GRACE
    workspace.jwt_secret = new_secret()
    session.flush()
    return workspace.jwt_secret


def new_secret() -> str:
    return secrets.token_urlsafe(32)
