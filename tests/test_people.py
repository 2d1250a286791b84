"""People and permissions on the real database: invitations (signed, single use, expiring, sent
through the mail backend), roles, deactivation ending sessions, never losing the last admin,
settings, and API tokens with roles."""

from __future__ import annotations

import datetime as dt
import re

from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from campaigns.sink import SendGridSink
from engine.apitokens import ApiToken, create_token, verify_token
from engine.db import Database
from engine.users import Invitation, Role, User, create_user
from engine.workspaces import Workspace, ensure_workspace
from tests.admin_client import PASSWORD, csrf_of, text_of
from tests.conftest import TEST_DATABASE_URL
from tests.test_config_and_cli import northstar
from web.cli import cli

ADMIN = "admin@northstar.example"


def sign_in_as(client: FlaskClient, database: Database, email: str, role: Role) -> FlaskClient:
    with database.transaction() as session:
        if session.scalar(select(User).where(User.email == email)) is None:
            create_user(session, email, PASSWORD, role=role, name=email.split("@")[0].title())
    csrf = csrf_of(text_of(client.get("/admin/login")))
    response = client.post("/admin/login", data={"csrf_token": csrf, "email": email, "password": PASSWORD})
    assert response.status_code == 303, text_of(response)
    return client


def admin_client(client: FlaskClient, database: Database) -> FlaskClient:
    return sign_in_as(client, database, ADMIN, Role.ADMIN)


def post_form(client: FlaskClient, page: str, action: str, **fields: str) -> TestResponse:
    return client.post(action, data={"csrf_token": csrf_of(text_of(client.get(page))), **fields})


def invitation_link(sink: SendGridSink, to: str) -> str:
    message = next(m for m in reversed(sink.messages()) if m.to == to)
    assert message.subject and "invited you" in message.subject
    match = re.search(r"http://northstar\.test(/admin/invite/[^\s\"<]+)", message.text or "")
    assert match, message.text
    return match.group(1)


def test_an_invited_person_sets_a_password_once_and_signs_in(
    client: FlaskClient, database: Database, sink: SendGridSink, app: object
) -> None:
    admin = admin_client(client, database)
    sent = post_form(admin, "/admin/people", "/admin/people/invite", email="Nina@Example.com", role="editor")
    assert sent.status_code == 303
    assert "Invitation sent to nina@example.com" in text_of(admin.get("/admin/people"))
    link = invitation_link(sink, "nina@example.com")
    admin.post("/admin/logout", data={"csrf_token": csrf_of(text_of(admin.get("/admin/people")))})

    page = client.get(link)
    assert page.status_code == 200 and "invited as <strong>editor</strong>" in text_of(page)
    csrf = csrf_of(text_of(page))
    short = client.post(
        link, data={"csrf_token": csrf, "name": "Nina", "password": "short", "confirm": "short"}
    )
    assert short.status_code == 422 and "at least 10 characters" in text_of(short)
    differ = client.post(
        link, data={"csrf_token": csrf, "name": "Nina", "password": PASSWORD, "confirm": "other one!!"}
    )
    assert differ.status_code == 422 and "the two passwords differ" in text_of(differ)
    done = client.post(
        link, data={"csrf_token": csrf, "name": "Nina Ops", "password": PASSWORD, "confirm": PASSWORD}
    )
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/login")
    with database.session() as session:
        user = session.scalars(select(User).where(User.email == "nina@example.com")).one()
        assert (user.name, user.role) == ("Nina Ops", Role.EDITOR)
        assert user.password_hash.startswith("$argon2id$")
    again = client.get(link)
    assert again.status_code == 404 and "accepted" in text_of(again)
    signed_in = client.post(
        "/admin/login",
        data={
            "csrf_token": csrf_of(text_of(client.get("/admin/login"))),
            "email": "nina@example.com",
            "password": PASSWORD,
        },
    )
    assert signed_in.status_code == 303


def test_invitations_refuse_bad_input_expired_tampered_and_revoked_links(
    client: FlaskClient, database: Database, sink: SendGridSink
) -> None:
    admin = admin_client(client, database)
    bad = post_form(admin, "/admin/people", "/admin/people/invite", email="not-an-email", role="editor")
    assert bad.status_code == 422 and "not an email address" in text_of(bad)
    role = post_form(admin, "/admin/people", "/admin/people/invite", email="x@example.com", role="owner")
    assert role.status_code == 422 and "choose admin, editor or viewer" in text_of(role)
    taken = post_form(admin, "/admin/people", "/admin/people/invite", email=ADMIN, role="viewer")
    assert taken.status_code == 422 and "already has an account" in text_of(taken)

    post_form(admin, "/admin/people", "/admin/people/invite", email="old@example.com", role="viewer")
    first = invitation_link(sink, "old@example.com")
    post_form(admin, "/admin/people", "/admin/people/invite", email="old@example.com", role="viewer")
    second = invitation_link(sink, "old@example.com")
    assert "revoked" in text_of(client.get(first))  # only the newest link works
    assert client.get(second).status_code == 200
    assert client.get(second[:-3] + "abc").status_code == 404
    with database.transaction() as session:
        session.execute(
            update(Invitation).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    expired = client.get(second)
    assert expired.status_code == 404 and "expired" in text_of(expired)


def test_roles_change_and_the_last_admin_stays(client: FlaskClient, database: Database) -> None:
    admin = admin_client(client, database)
    with database.session() as session:
        me = session.scalars(select(User).where(User.email == ADMIN)).one().id
    demote = post_form(admin, "/admin/people", f"/admin/people/{me}/role", role="viewer")
    assert demote.status_code == 409 and "last admin" in text_of(demote)
    leave = post_form(admin, "/admin/people", f"/admin/people/{me}/deactivate")
    assert leave.status_code == 409
    with database.transaction() as session:
        other = create_user(session, "ada@example.com", PASSWORD, role=Role.VIEWER).id
    assert post_form(admin, "/admin/people", f"/admin/people/{other}/role", role="admin").status_code == 303
    assert post_form(admin, "/admin/people", f"/admin/people/{me}/role", role="editor").status_code == 303
    with database.session() as session:
        assert session.get(User, me).role == Role.EDITOR  # type: ignore[union-attr]
    # Now an editor: the people page is closed to them on their very next request.
    assert admin.get("/admin/people").status_code == 403


def test_deactivating_ends_sessions_and_sign_in(client: FlaskClient, database: Database, app: object) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    other = app.test_client()
    assert other.get("/admin/rules").status_code == 303  # the old session stays ended
    sign_in_as(other, database, "eve@example.com", Role.EDITOR)
    assert other.get("/admin/people").status_code == 403  # signed in, not an admin
    admin = admin_client(client, database)
    with database.session() as session:
        eve = session.scalars(select(User).where(User.email == "eve@example.com")).one().id
    assert post_form(admin, "/admin/people", f"/admin/people/{eve}/deactivate").status_code == 303
    ended = other.get("/admin/rules")
    assert ended.status_code == 303 and "/admin/login" in ended.headers["Location"]
    csrf = csrf_of(text_of(other.get("/admin/login")))
    refused = other.post(
        "/admin/login", data={"csrf_token": csrf, "email": "eve@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401
    assert post_form(admin, "/admin/people", f"/admin/people/{eve}/reactivate").status_code == 303
    assert other.get("/admin/rules").status_code == 303  # the old session stays ended
    sign_in_as(other, database, "eve@example.com", Role.EDITOR)


def test_settings_edit_workspaces_and_tokens(client: FlaskClient, database: Database) -> None:
    with database.transaction() as session:
        workspace_id = ensure_workspace(session, "default").id
    admin = admin_client(client, database)
    page = admin.get("/admin/settings")
    assert page.status_code == 200 and "NORTHSTAR_CAP_ACCOUNT_PER_WEEK" in text_of(page)
    action = f"/admin/settings/workspaces/{workspace_id}"
    bad = post_form(admin, "/admin/settings", action, name="Acme", origins="ftp://nope")
    assert bad.status_code == 422 and "is not an origin" in text_of(bad)
    good = post_form(
        admin, "/admin/settings", action, name="Acme", origins="https://App.Example.com\nhttps://b.example"
    )
    assert good.status_code == 303
    with database.session() as session:
        saved = session.get(Workspace, workspace_id)
        assert saved is not None and saved.allowed_origins == ["https://app.example.com", "https://b.example"]
    made = post_form(admin, "/admin/settings", "/admin/settings/tokens", name="reader", role="viewer")
    token = re.search(r'class="new-token">([^<]+)<', text_of(made))
    assert made.status_code == 200 and token
    with database.session() as session:
        found = verify_token(session, token.group(1))
        assert found is not None and found.role == Role.VIEWER
    dup = post_form(admin, "/admin/settings", "/admin/settings/tokens", name="reader", role="viewer")
    assert dup.status_code == 422 and "already exists" in text_of(dup)


def test_api_token_roles_default_to_editor_and_the_cli_sets_them(database: Database) -> None:
    with database.transaction() as session:
        create_token(session, "legacy")
    env = {"NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL}
    made = northstar("api-token", "create", "dashboards", "--role", "viewer", env=env)
    assert made.returncode == 0 and made.stdout.startswith("ns_"), made.stderr
    wrong = CliRunner().invoke(cli, ["api-token", "create", "x", "--role", "owner"])  # refused before any app
    assert wrong.exit_code == 2 and "'owner' is not one of" in wrong.output
    with database.session() as session:
        roles = {name: role for name, role in session.execute(select(ApiToken.name, ApiToken.role))}
    assert roles == {"legacy": Role.EDITOR, "dashboards": Role.VIEWER}
