"""Request helpers: the request's database session, settings and the clock."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db import Database, utcnow
from engine.errors import NorthstarError


def database() -> Database:
    found: Database = current_app.extensions["northstar.db"]
    return found


def settings() -> Settings:
    found: Settings = current_app.extensions["northstar.settings"]
    return found


def db_session() -> Session:
    """One session per request, closed at teardown; views commit explicitly."""
    if "db_session" not in g:
        g.db_session = database().session()
    session: Session = g.db_session
    return session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """The request's session as one transaction: committed if the block succeeds, else rolled back."""
    session = db_session()
    try:
        yield session
        session.commit()
    except BaseException:
        # After a commit whose after-commit hook failed (Redis lost while queueing the jobs), the
        # data is stored and there is nothing to roll back: the hook's error is the one to report.
        with contextlib.suppress(InvalidRequestError):
            session.rollback()
        raise


def now() -> dt.datetime:
    return utcnow()


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 problem saying why it is not one."""
    if not request.is_json:
        raise NorthstarError("the request body must be JSON (Content-Type: application/json)")
    try:
        # Strict JSON: NaN/Infinity and NUL characters parse in Python but PostgreSQL's JSONB and
        # text columns refuse them, which would surface as a 500 at commit.
        raw = request.get_data(cache=True)
        body = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise NorthstarError("the request body is nested too deeply") from None
    except ValueError as exc:
        raise NorthstarError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise NorthstarError("the request body must be a JSON object")
    # Strict JSON has a NUL only as the escape \u0000 (a raw one is a parse error); a body in
    # UTF-16 or UTF-32 (which json.loads also reads) has NUL bytes: those get the full walk.
    if (b"\\u0000" in raw or b"\x00" in raw) and has_nul(body):
        raise NorthstarError("the request body must not contain NUL (\\u0000) characters")
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def has_nul(body: Any) -> bool:
    """Whether a parsed JSON value holds a NUL character anywhere (PostgreSQL text refuses it)."""
    pending = [body]  # a loop, not recursion: the body may be nested as deep as the parser allows
    while pending:
        value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            return True
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
