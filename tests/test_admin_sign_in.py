"""The admin console on real PostgreSQL: sign-in, sessions, roles and CSRF (the survey editor is
the page they guard)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.config import Settings
from engine.db import Database
from engine.users import Role, User
from tests.admin_client import (
    EDITOR,
    PASSWORD,
    VIEWER,
    console_user,
    csrf_of,
    editor_fields,
    form_fields,
    make_user,
    sign_in,
    survey_versions,
    text_of,
)
from web import create_app

editor = console_user("editor", EDITOR, Role.EDITOR)
viewer = console_user("viewer", VIEWER, Role.VIEWER)


# -- sign-in -------------------------------------------------------------------------------------------


def test_signing_in_opens_the_survey_list(client: FlaskClient, database: Database, recruiting: Any) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    response = sign_in(client, "  Erin@Northstar.example ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"
    page = client.get("/admin/surveys")
    assert page.status_code == 200
    html = text_of(page)
    assert EDITOR in html and "What does success look like for your team?" in html
    assert "version 1" in html
    assert client.get("/admin/").status_code == 200  # the dashboard is the console's home


@pytest.mark.parametrize("email", [EDITOR, "nobody@northstar.example"])
def test_a_wrong_password_or_unknown_email_gets_the_same_generic_message(
    client: FlaskClient, database: Database, email: str
) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    response = sign_in(client, email, "not the password")
    assert response.status_code == 401
    assert "That email and password do not match an account." in text_of(response)
    assert f'value="{email}"' in text_of(response)  # the email is kept, the password is not
    assert client.get("/admin/surveys").status_code == 303


def test_five_failed_sign_ins_lock_the_account_even_against_the_right_password(
    client: FlaskClient, database: Database
) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    for _ in range(4):
        assert "do not match" in text_of(sign_in(client, EDITOR, "wrong password!"))
    fifth = sign_in(client, EDITOR, "wrong password!")
    assert fifth.status_code == 401
    assert "Too many failed attempts (5 in a row)" in text_of(fifth)
    assert "paused for 15 minutes" in text_of(fifth)
    right = sign_in(client, EDITOR)
    assert right.status_code == 401
    assert "Too many failed attempts" in text_of(right)
    assert client.get("/admin/surveys").status_code == 303
    with database.session() as session:
        user = session.scalar(select(User).where(User.email == EDITOR))
        assert user is not None and user.locked_until is not None


def test_an_anonymous_visitor_is_sent_to_sign_in_and_then_back(
    client: FlaskClient, database: Database, recruiting: Any
) -> None:
    response = client.get("/admin/surveys/outcomes")
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/login?next=/admin/surveys/outcomes"
    make_user(database, EDITOR, Role.EDITOR)
    signed_in = sign_in(client, EDITOR, next_="/admin/surveys/outcomes")
    assert signed_in.headers["Location"] == "/admin/surveys/outcomes"


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/surveys", "/admin/surveys/new", "/admin/surveys/outcomes/preview"]
)
def test_every_admin_page_needs_a_signed_in_user(client: FlaskClient, recruiting: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (302, 303)
    assert response.headers["Location"].startswith("/admin/")
    assert client.get(response.headers["Location"]).status_code in (200, 303)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/admin",
        "//evil.example/admin",
        "/\\evil.example",
        "javascript:alert(1)",
        "/admin\r\nLocation: https://evil.example",
        "https:/evil.example",
        "/public-page",
    ],
)
def test_sign_in_never_redirects_off_the_console(
    client: FlaskClient, database: Database, target: str
) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    page = client.get("/admin/login", query_string={"next": target})
    fields = form_fields(text_of(page), "/admin/login")
    fields.update(email=EDITOR, password=PASSWORD, next=target)
    response = client.post("/admin/login", data=fields)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/"


def test_signing_out_takes_a_post_and_ends_the_session(editor: FlaskClient) -> None:
    assert editor.get("/admin/logout").status_code == 405
    page = text_of(editor.get("/admin/surveys"))
    response = editor.post("/admin/logout", data={"csrf_token": csrf_of(page)})
    assert response.headers["Location"] == "/admin/login"
    assert "You are signed out." in text_of(editor.get("/admin/login"))
    assert editor.get("/admin/surveys").status_code == 303


def test_session_cookie_is_httponly_lax_and_secure_behind_https(
    app: Flask, settings: Settings, database: Database
) -> None:
    plain = app.test_client().get("/admin/login").headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    https = create_app(
        {
            "SETTINGS": dataclasses.replace(settings, public_url="https://cs.example.com"),
            "DATABASE": database,
            "TESTING": True,
        }
    )
    cookie = https.test_client().get("/admin/login", base_url="https://cs.example.com").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_admin_pages_forbid_framing_and_outside_assets(editor: FlaskClient) -> None:
    response = editor.get("/admin/surveys/outcomes")
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"


# -- roles -----------------------------------------------------------------------------------------


def test_a_viewer_sees_the_list_and_previews_but_not_the_editor(
    viewer: FlaskClient, database: Database
) -> None:
    listing = text_of(viewer.get("/admin/surveys"))
    assert "/admin/surveys/outcomes/preview" in listing
    assert "New survey" not in listing
    assert viewer.get("/admin/surveys/outcomes/preview").status_code == 200

    for path in ("/admin/surveys/outcomes", "/admin/surveys/new"):
        page = viewer.get(path)
        assert page.status_code == 403
        assert "Your role (viewer) can view surveys" in text_of(page)

    token = csrf_of(listing)
    before = survey_versions(database)
    for path in ("/admin/surveys/outcomes", "/admin/surveys/outcomes/publish", "/admin/surveys/new"):
        response = viewer.post(path, data={"csrf_token": token, "source": "form", "title": "Hijacked"})
        assert response.status_code == 403, path
        assert "Traceback" not in text_of(response)
    assert [(v.version, v.definition) for v in survey_versions(database)] == [
        (v.version, v.definition) for v in before
    ]


# -- CSRF ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "forged-token", "ünïcode"])
def test_a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    editor: FlaskClient, database: Database, token: str | None
) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fields["title"] = "Changed by a forged request"
    if token is None:
        del fields["csrf_token"]
    else:
        fields["csrf_token"] = token
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 400
    assert "This form has expired" in text_of(response)
    publish = editor.post("/admin/surveys/outcomes/publish", data={"marker": fields["marker"]})
    assert publish.status_code == 400
    assert len(survey_versions(database)) == 1
    assert "Changed by" not in str(survey_versions(database)[0].definition)


def test_the_sign_in_form_needs_its_csrf_token_too(client: FlaskClient, database: Database) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    response = client.post("/admin/login", data={"email": EDITOR, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/admin/surveys").status_code == 303


# -- drafts ----------------------------------------------------------------------------------------
