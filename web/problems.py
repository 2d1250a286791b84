"""One place that turns errors into RFC 7807 problem+json (API) or a friendly page (browsers)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, Response, jsonify, render_template, request
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from engine.errors import NorthstarError

log = logging.getLogger(__name__)
JSON_PREFIXES = ("/api/", "/embed/", "/webhooks/", "/healthz")


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.is_json


def register(app: Flask) -> None:
    @app.errorhandler(NorthstarError)
    def _domain_error(exc: NorthstarError) -> Any:
        if _wants_json():
            return problem(exc.status, exc.title, exc.detail, **exc.extra)
        return render_template(
            "error.html", status=exc.status, title=exc.title, detail=exc.detail
        ), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 413:
            detail = f"request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        if _wants_json():
            return problem(status, exc.name, detail)
        return render_template("error.html", status=status, title=exc.name, detail=detail), status

    @app.errorhandler(IntegrityError)
    def _concurrent_write(exc: IntegrityError) -> Any:
        # Two requests raced to create the same thing (same client_response_id, same account):
        # the loser's transaction rolled back whole; a retry sees the winner's row.
        log.info("integrity conflict on %s %s: %s", request.method, request.path, exc.orig)
        detail = "a concurrent request wrote the same record; retry the request"
        if _wants_json():
            return problem(409, "Conflict", detail)
        return render_template("error.html", status=409, title="Conflict", detail=detail), 409

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Any:
        refused = _refused_value(exc)
        if refused is not None:
            # A value the database cannot store, from input no check before it caught (the views
            # check what they know of; this is the backstop): the statement failed, the unit of
            # work rolled back, so nothing was written.
            log.info("value refused by the database on %s %s: %s", request.method, request.path, exc.orig)
            detail = f"{refused}; nothing was saved"
            if _wants_json():
                return problem(400, "Bad Request", detail)
            return render_template("error.html", status=400, title="Bad Request", detail=detail), 400
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            return _unexpected(exc)
        # The database went away (a restart, a failover) or refused the connection: nothing was
        # written (the transaction died with the connection), so the client may simply retry.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc.orig)
        return _try_again("the database is unavailable for a moment; nothing was saved, retry the request")

    @app.errorhandler(RedisError)
    def _redis_unavailable(exc: RedisError) -> Any:
        # Redis (rate limits, the job queue) is down or slow. The limiter asks it first, so a
        # request usually stops here before it writes; one that loses Redis after its commit has
        # its data stored, and a retry is answered as a replay (submissions are idempotent).
        log.warning("redis unavailable on %s %s: %s", request.method, request.path, exc)
        return _try_again("a service is unavailable for a moment; retry the request")

    def _try_again(detail: str) -> Response:
        """503 with Retry-After: a service is away for a moment, and the client may simply retry."""
        if _wants_json():
            response = problem(503, "Service Unavailable", detail)
        else:
            response = app.make_response(
                (render_template("error.html", status=503, title="Try again in a moment", detail=detail), 503)
            )
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")
        return render_template(
            "error.html", status=500, title="Something went wrong", detail="It was logged."
        ), 500


def _refused_value(exc: DBAPIError) -> str | None:
    """What was wrong with a value PostgreSQL (or psycopg, before sending it) refused, for the
    kinds that only input causes; None for anything else (a fault of ours: a 500, logged)."""
    orig = exc.orig
    if isinstance(orig, psycopg.errors.NumericValueOutOfRange):
        return "a number is out of the range the database stores"
    if isinstance(orig, psycopg.errors.UntranslatableCharacter) or (
        isinstance(orig, psycopg.DataError) and "NUL" in str(orig)
    ):
        return "text must not contain NUL (\\u0000) characters"
    return None
