"""Roles on every route: walks the app's URL map, so routes added later are checked too. For every
rule under /admin and /api/v1 that accepts POST, PUT, PATCH or DELETE, a viewer (signed in, with a
valid CSRF token so the refusal is about the role) gets 403, a viewer API token gets a 403 problem,
and nobody signed in gets the sign-in redirect or a 401 problem. Editors cannot open the admin-only
pages (people, settings, audit log, privacy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter, Rule

from engine.apitokens import create_token
from engine.db import Database
from engine.users import Role
from tests.test_people import sign_in_as

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
# Endpoints anyone may call: each entry says why. Everything else that changes data needs a role.
PUBLIC = {
    "admin.login": "the sign-in form",
    "admin.logout": "signing out",
    "admin.invite_accept": "the invitee has no account yet; the signed link is the credential",
    "admin.set_theme": "a display preference stored in the browser, changes no data",
    "surveys_api.create_response": "the widget's endpoint: customers answer without a token",
}
ADMIN_ONLY_PAGES = ("/admin/people", "/admin/settings", "/admin/audit")


def mutating_rules(app: Flask, prefix: str) -> Iterator[tuple[Rule, str]]:
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or rule.endpoint in PUBLIC:
            continue
        for method in sorted(set(rule.methods or ()) & set(MUTATING)):
            yield rule, method


def url_for_rule(app: Flask, rule: Rule) -> str:
    values: dict[str, Any] = {
        name: 1 if isinstance(rule._converters[name], IntegerConverter) else "x" for name in rule.arguments
    }
    adapter = app.url_map.bind("localhost")
    return adapter.build(rule.endpoint, values, method=None)


def csrf_token(client: FlaskClient) -> str:
    """A valid CSRF token for this client's session (set as the console sets it)."""
    client.get("/admin/login")
    with client.session_transaction() as session:
        token = session.setdefault("csrf_token", "permission-walk-csrf-token-0123456789")
    assert isinstance(token, str)
    return token


def send(client: FlaskClient, method: str, url: str, csrf: str, **headers: str) -> Any:
    return client.open(
        url, method=method, data={"csrf_token": csrf}, headers={"X-CSRF-Token": csrf, **headers}
    )


def test_a_viewer_can_change_nothing_in_the_console(
    app: Flask, client: FlaskClient, database: Database
) -> None:
    viewer = sign_in_as(client, database, "victor@northstar.example", Role.VIEWER)
    csrf = csrf_token(viewer)
    checked, wrong = 0, []
    for rule, method in mutating_rules(app, "/admin"):
        url = url_for_rule(app, rule)
        response = send(viewer, method, url, csrf)
        checked += 1
        if response.status_code == 404 and viewer.get(url).status_code == 404:
            continue  # the walk's placeholder id names nothing, so there is nothing to change
        if response.status_code != 403:
            wrong.append(f"{method} {url} ({rule.endpoint}): {response.status_code}")
    assert not wrong, "a viewer was not refused:\n" + "\n".join(wrong)
    assert checked >= 20  # the walk really found the console's routes


def test_nobody_signed_in_is_sent_to_sign_in(app: Flask, client: FlaskClient) -> None:
    csrf = csrf_token(client)
    wrong = []
    for rule, method in mutating_rules(app, "/admin"):
        url = url_for_rule(app, rule)
        response = send(client, method, url, csrf)
        if response.status_code != 303 or "/admin/login" not in response.headers.get("Location", ""):
            wrong.append(f"{method} {url} ({rule.endpoint}): {response.status_code}")
    assert not wrong, "not sent to sign in:\n" + "\n".join(wrong)


@pytest.mark.parametrize("who", ["viewer token", "no token", "revoked token"])
def test_the_api_refuses_every_change_without_a_writing_token(
    app: Flask, client: FlaskClient, database: Database, who: str
) -> None:
    headers: dict[str, str] = {}
    if who != "no token":
        with database.transaction() as session:
            token = create_token(session, "reader", Role.VIEWER)
            if who == "revoked token":
                from sqlalchemy import update

                from engine.apitokens import ApiToken

                session.execute(update(ApiToken).values(revoked_at=ApiToken.created_at))
        headers["Authorization"] = f"Bearer {token}"
    expected = 403 if who == "viewer token" else 401
    checked, wrong = 0, []
    for rule, method in mutating_rules(app, "/api/v1"):
        url = url_for_rule(app, rule)
        response = client.open(url, method=method, json={}, headers=headers)
        checked += 1
        body = response.get_json(silent=True) or {}
        if response.status_code != expected or response.mimetype != "application/problem+json":
            wrong.append(f"{method} {url} ({rule.endpoint}): {response.status_code} {body}")
        elif who == "viewer token" and "viewer role" not in body.get("detail", ""):
            wrong.append(f"{method} {url}: 403 without saying why: {body}")
    assert not wrong, f"{who} was not refused:\n" + "\n".join(wrong)
    assert checked >= 10


def test_a_viewer_token_still_reads(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    with database.transaction() as session:
        token = create_token(session, "reader", Role.VIEWER)
    response = client.get("/api/v1/rules", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_editors_cannot_open_admin_only_pages(client: FlaskClient, database: Database) -> None:
    editor = sign_in_as(client, database, "erin@northstar.example", Role.EDITOR)
    for path in ADMIN_ONLY_PAGES:
        response = editor.get(path)
        assert response.status_code == 403, path
        assert "Only admins can do this" in response.get_data(as_text=True)
    csrf = csrf_token(editor)
    for path in ("/admin/people/invite", "/admin/settings/tokens", "/admin/people/1/role"):
        assert send(editor, "POST", path, csrf).status_code == 403, path
