"""Input PostgreSQL cannot store (a NUL character in text, a number past its column's range),
wherever it comes in: a 400 that says so and nothing written, never a 500. The views check what
they know of; web.problems is the backstop for the rest (found by fuzzing the console's forms and
filters, where the content editor, the template editor, the audit log, the content library and the
reports' segment filter all answered 500)."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask.testing import FlaskClient
from sqlalchemy import func, literal, select, text

from content.models import ContentItem
from engine.db import Database
from engine.users import Role
from tests.test_people import csrf_of, sign_in_as, text_of
from web.context import db_session, unit_of_work

ADMIN = "ada@northstar.example"


def test_a_nul_in_a_console_form_is_a_400_and_nothing_is_saved(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    sign_in_as(client, database, ADMIN, Role.ADMIN)
    with database.session() as session:
        before = session.scalar(select(func.count()).select_from(ContentItem))
    form = {
        "csrf_token": csrf_of(text_of(client.get("/admin/content/new"))),
        "key": "nul-guide",
        "kind": "article",
        "title": "Nul\x00guide",
        "url": "",
        "body": "Intro",
        "minutes": "5",
        "locale": "en",
    }
    refused = client.post("/admin/content/new", data=form)
    assert refused.status_code == 400, text_of(refused)[:500]
    assert "NUL" in text_of(refused) and "nothing was saved" in text_of(refused)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ContentItem)) == before


def test_a_nul_in_a_console_filter_is_a_400(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    sign_in_as(client, database, ADMIN, Role.ADMIN)
    for path in ("/admin/content?q=a%00b", "/admin/audit?type=%00", "/admin/reports/outcomes?segment=%00"):
        response = client.get(path)
        assert response.status_code == 400, (path, response.status_code)
        assert "NUL" in text_of(response), path


def _probe_app(app: Flask) -> None:
    """Two API routes that hand the database what it refuses, as a view that missed a check would."""

    @app.get("/api/v1/_probe/nul")
    def _nul() -> Any:
        return jsonify(db_session().scalar(select(literal("a\x00b"))))

    @app.post("/api/v1/_probe/overflow")
    def _overflow() -> Any:
        with unit_of_work() as session:
            return jsonify(session.scalar(text("SELECT CAST(:n AS integer)"), {"n": 2**40}))


def test_the_backstop_answers_problem_json(app: Flask, client: FlaskClient) -> None:
    _probe_app(app)
    for method, path, detail in (
        ("GET", "/api/v1/_probe/nul", "text must not contain NUL"),
        ("POST", "/api/v1/_probe/overflow", "a number is out of the range"),
    ):
        response = client.open(path, method=method)
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["detail"].startswith(detail)
