"""Who may answer: API tokens, the widget's JWT (per-workspace secret), anonymous surveys; CORS
for configured origins only; rate limits; a contact's latest answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from engine.accounts import Account, Contact, ContactRole
from engine.config import Settings
from engine.db import Database, utcnow
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook, resolve_playbook
from engine.workspaces import ensure_workspace, rotate_secret
from migrations.runner import upgrade
from surveys.identity import Identity
from surveys.models import Response, ResponseStatus
from surveys.rules_queue import apply_queued_rules_job
from surveys.service import ResponseIn, submission_target, submit_response
from tests.factories import make_account, outcomes_answers
from web.wiring import connect_all

URL = "/api/v1/surveys/outcomes/responses"
HOST = "https://app.customer.example"


@pytest.fixture
def secret(recruiting: object, database: Database) -> str:
    with database.transaction() as session:
        return ensure_workspace(session, origins=[HOST]).jwt_secret


def identity(secret: str, *, sub: str = "u-1", account: str = "acme", ttl: int = 600, **extra: Any) -> str:
    claims = {
        "sub": sub,
        "account": account,
        "email": "sofia@acme.example",
        "name": "Sofia Varga",
        "exp": int((utcnow() + dt.timedelta(seconds=ttl)).timestamp()),
        **extra,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def widget_post(client: FlaskClient, token: str | None, *, origin: str = HOST, **body: Any) -> Any:
    headers = {"Origin": origin, "X-Northstar-Workspace": "default"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = {
        "client_response_id": str(uuid.uuid4()),
        "channel": "in_app",
        "answers": outcomes_answers(),
        **body,
    }
    return client.post(URL, json=payload, headers=headers)


def stored(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Response)) or 0)


def test_widget_jwt_identifies_the_contact_and_creates_the_plan(
    client: FlaskClient, secret: str, database: Database
) -> None:
    response = widget_post(client, identity(secret))
    assert response.status_code == 201, response.get_json()
    assert response.headers["Access-Control-Allow-Origin"] == HOST
    assert response.get_json()["plan"]["status"] == "pending"
    assert apply_queued_rules_job() == 1
    with database.session() as session:
        assert session.scalars(select(SuccessPlan)).one().goal
        answer = session.scalars(select(Response)).one()
        assert answer.contact is not None and answer.contact.external_id == "u-1"
        assert answer.account is not None and answer.account.external_id == "acme"


@pytest.mark.parametrize(
    ("make_token", "why"),
    [
        (lambda s: identity(s, ttl=-120), "expired"),
        (lambda s: identity("not-the-workspace-secret-at-all-000000"), "not signed"),
        (lambda s: identity(s, ttl=3 * 86400), "at most one day"),
        (lambda s: jwt.encode({"sub": "u", "exp": 9999999999}, s, algorithm="HS256"), "one day"),
        (lambda s: identity(s)[:-4] + "abcd", "not valid"),
        (lambda s: "not.a.jwt", "not valid"),
    ],
)
def test_bad_identity_tokens_are_401_and_store_nothing(
    client: FlaskClient, secret: str, database: Database, make_token: Any, why: str
) -> None:
    response = widget_post(client, make_token(secret))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert why in response.get_json()["detail"]
    assert stored(database) == 0


def test_the_old_secret_works_during_its_grace_period(
    client: FlaskClient, secret: str, database: Database
) -> None:
    with database.transaction() as session:
        workspace = ensure_workspace(session)
        rotate_secret(session, workspace, now=utcnow())
    assert widget_post(client, identity(secret)).status_code == 201
    with database.transaction() as session:
        ensure_workspace(session).previous_secret_valid_until = utcnow() - dt.timedelta(seconds=1)
    assert widget_post(client, identity(secret, sub="u-2")).status_code == 401


def test_a_disallowed_origin_gets_403_and_no_cors_headers(
    client: FlaskClient, secret: str, database: Database
) -> None:
    response = widget_post(client, identity(secret), origin="https://evil.example")
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert stored(database) == 0


def test_preflight_answers_allowed_origins_only(client: FlaskClient, secret: str) -> None:
    headers = {"Origin": HOST, "X-Northstar-Workspace": "default", "Access-Control-Request-Method": "POST"}
    ok = client.options(URL, headers=headers)
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == HOST
    assert "X-Northstar-Workspace" in ok.headers["Access-Control-Allow-Headers"]
    refused = client.options(URL, headers={**headers, "Origin": "https://evil.example"})
    assert refused.status_code == 403


def test_naming_an_account_without_credentials_is_refused(
    client: FlaskClient, secret: str, database: Database
) -> None:
    response = widget_post(client, None, account="acme")
    assert response.status_code == 401
    assert stored(database) == 0


def test_identified_surveys_refuse_anonymous_answers(
    client: FlaskClient, secret: str, database: Database
) -> None:
    response = widget_post(client, None, contact={"email": "who@where.example"})
    assert response.status_code == 401
    assert "identified respondent" in response.get_json()["detail"]
    assert stored(database) == 0


def test_anonymous_survey_takes_an_email_and_makes_no_plan(
    client: FlaskClient, secret: str, database: Database
) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    feedback = {
        "key": "feedback",
        "title": "Quick feedback",
        "anonymous": True,
        "questions": [{"key": "nps", "kind": "nps", "title": "Recommend us?", "required": True}],
    }
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump({"surveys": [*document["surveys"], feedback]}))
    response = client.post(
        "/api/v1/surveys/feedback/responses",
        json={
            "client_response_id": str(uuid.uuid4()),
            "answers": {"nps": 9},
            "contact": {"email": "Ann@X.example"},
        },
        headers={"Origin": HOST},
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["plan"] is None
    with database.session() as session:
        answer = session.scalars(select(Response)).one()
        assert (answer.account_id, answer.respondent_email) == (None, "ann@x.example")


def test_a_client_response_id_cannot_be_taken_over_by_another_contact(
    client: FlaskClient, secret: str
) -> None:
    first = widget_post(client, identity(secret), complete=False, answers={"outcomes": ["hire_faster"]})
    assert first.status_code == 201
    stolen = widget_post(
        client,
        identity(secret, sub="u-9", email="mallory@acme.example"),
        client_response_id=first.get_json()["client_response_id"],
    )
    assert stolen.status_code == 409


def test_widget_definition_carries_library_strings_and_state(client: FlaskClient, secret: str) -> None:
    token = identity(secret)
    headers = {"Origin": HOST, "X-Northstar-Workspace": "default", "Authorization": f"Bearer {token}"}
    body = client.get("/embed/v1/surveys/outcomes?locale=de", headers=headers).get_json()
    assert body["survey"] == "outcomes" and body["identified"] is True
    assert {o["key"] for o in body["library"]["outcomes"]} >= {"hire_faster"}
    assert body["strings"]["next"] == "Weiter"
    assert body["state"] == {"completed": False, "partial": None, "dismissed_until": None, "show": True}

    widget_post(
        client,
        token,
        client_response_id="resume-me-123",
        complete=False,
        answers={"outcomes": ["hire_faster"]},
    )
    state = client.get("/embed/v1/surveys/outcomes", headers=headers).get_json()["state"]
    assert state["partial"] == {
        "client_response_id": "resume-me-123",
        "answers": {"outcomes": ["hire_faster"]},
    }

    dismissed = client.post("/embed/v1/surveys/outcomes/dismiss", headers=headers)
    assert dismissed.status_code == 200
    state = client.get("/embed/v1/surveys/outcomes", headers=headers).get_json()["state"]
    assert state["show"] is False and state["dismissed_until"]


def test_completed_survey_is_not_shown_again(client: FlaskClient, secret: str) -> None:
    token = identity(secret)
    assert widget_post(client, token).status_code == 201
    headers = {"Origin": HOST, "Authorization": f"Bearer {token}"}
    state = client.get("/embed/v1/surveys/outcomes", headers=headers).get_json()["state"]
    assert state["completed"] is True and state["show"] is False


def test_widget_script_is_served_as_javascript(client: FlaskClient) -> None:
    with client.get("/embed/v1/widget.js") as response:
        assert response.status_code == 200
        assert response.mimetype == "application/javascript"
        assert b"Northstar" in response.data


def test_responses_are_rate_limited_per_contact(
    app: Flask, client: FlaskClient, secret: str, database: Database
) -> None:
    app.config["RATELIMIT_ENABLED"] = True
    token = identity(secret)
    statuses = [widget_post(client, token, complete=False, answers={}).status_code for _ in range(22)]
    assert statuses[:20] == [201] * 20
    assert statuses[-1] == 429
    limited = widget_post(client, token, complete=False, answers={})
    assert limited.mimetype == "application/problem+json"


def test_verified_contacts_behind_one_address_are_limited_per_contact_not_per_address(
    app: Flask, client: FlaskClient, secret: str
) -> None:
    """An office behind one NAT address answering a company-wide prompt: each verified contact has
    its own bucket. Unsigned requests and bad tokens from that address meet the per-IP limit."""
    app.config["RATELIMIT_ENABLED"] = True
    settings = app.extensions["northstar.settings"]
    app.extensions["northstar.settings"] = dataclasses.replace(settings, response_limit_per_ip="3/minute")
    colleagues = [identity(secret, sub=f"u-{i}", email=f"c{i}@acme.example") for i in range(6)]
    assert [widget_post(client, token).status_code for token in colleagues] == [201] * 6
    forged = identity("not-the-workspace-secret-at-all-000000")
    assert [widget_post(client, forged).status_code for _ in range(4)] == [401, 401, 401, 429]
    assert widget_post(client, None).status_code == 429  # unsigned, same address
    assert widget_post(client, identity(secret, sub="u-9", email="c9@acme.example")).status_code == 201


def test_a_forged_token_cannot_spend_a_contacts_rate_limit(
    app: Flask, client: FlaskClient, secret: str
) -> None:
    """The per-contact bucket is keyed on the verified token: one signed with the wrong secret
    gets its 401 and counts against its address only, so the real contact can still answer."""
    app.config["RATELIMIT_ENABLED"] = True
    forged = identity("not-the-workspace-secret-at-all-000000")
    assert {widget_post(client, forged, complete=False, answers={}).status_code for _ in range(20)} == {401}
    assert widget_post(client, identity(secret), complete=False, answers={}).status_code == 201


def test_contact_answers_endpoint_returns_the_latest_answers(
    client: FlaskClient, secret: str, auth: dict[str, str]
) -> None:
    widget_post(client, identity(secret))
    body = client.get("/api/v1/contacts/u-1/answers", headers=auth).get_json()
    assert body["surveys"]["outcomes"]["status"] == "completed"
    assert body["surveys"]["outcomes"]["answers"]["outcomes"] == ["hire_faster"]
    assert client.get("/api/v1/contacts/nobody/answers", headers=auth).status_code == 404
    assert client.get("/api/v1/contacts/u-1/answers").status_code == 401


def test_a_contact_new_to_a_known_account_is_stored_with_its_response_in_one_statement(
    client: FlaskClient, secret: str, database: Database
) -> None:
    with database.transaction() as session:
        make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    # A first submission fills the per-process caches (workspace, survey version, library).
    assert widget_post(client, identity(secret, sub="u-1")).status_code == 201
    token = identity(secret, sub="u-7", email="Nadia@Acme.example ", name="Nadia Okafor")
    event.listen(database.engine, "before_cursor_execute", count)
    try:
        first = widget_post(client, token)
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    assert first.status_code == 201, first.get_json()
    # One read (survey, version, replay check, account, contact), one write (contact + response).
    assert statements == ["SELECT surveys.id, surveys.anonymous,", "WITH new_contact AS"], statements
    again = widget_post(client, token, complete=False, answers={"outcomes": ["hire_faster"]})
    assert again.status_code == 201
    with database.session() as session:
        account = session.scalars(select(Account).where(Account.external_id == "acme")).one()
        nadia = session.scalars(select(Contact).where(Contact.external_id == "u-7")).one()
        assert (nadia.account_id, nadia.email, nadia.name) == (
            account.id,
            "nadia@acme.example",
            "Nadia Okafor",
        )
        assert (nadia.role, nadia.locale, nadia.unsubscribed_categories) == (ContactRole.OTHER, "en", [])
        assert nadia.created_at is not None and len(account.contacts) == 2
        answers = session.scalars(select(Response).where(Response.contact_id == nadia.id)).all()
        assert [a.contact_id for a in answers] == [nadia.id, nadia.id]
        assert [a.status for a in answers] == [ResponseStatus.COMPLETED, ResponseStatus.PARTIAL]
        assert answers[0].rules_queued_at is not None and answers[1].rules_queued_at is None
        assert answers[0].answers["objectives"] == ["careers_site_traffic"]
    assert apply_queued_rules_job() == 2
    with database.session() as session:
        assert session.scalars(select(SuccessPlan)).one().account.external_id == "acme"


def test_a_contact_known_by_email_takes_the_tokens_external_id_and_name(
    client: FlaskClient, secret: str, database: Database
) -> None:
    with database.transaction() as session:
        make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
    response = widget_post(client, identity(secret, sub="u-1", name="Sofia V."))
    assert response.status_code == 201
    with database.session() as session:
        sofia = session.scalars(select(Contact)).one()
        assert (sofia.external_id, sofia.name, sofia.role) == ("u-1", "Sofia V.", ContactRole.CHAMPION)
        assert session.scalars(select(Response)).one().contact_id == sofia.id


def test_a_new_contact_is_stored_with_its_response_on_sqlite_too(tmp_path: Path) -> None:
    """The demo's database has no data-modifying CTEs: the contact gets a statement of its own."""
    url = f"sqlite:///{tmp_path / 'ns.db'}"
    upgrade(url)
    database = Database(Settings(database_url=url))
    connect_all()
    now = utcnow()
    with database.transaction() as session:
        import_playbook(session, resolve_playbook("recruiting")[1])
        make_account(session, "acme", contacts=())
    who = Identity("u-3", "acme", "ida@acme.example", "Ida", None)
    payload = ResponseIn(client_response_id="r-1", account=None, answers=outcomes_answers(now.date()))
    with database.transaction() as session:
        result = submit_response(session, "outcomes", payload, now=now, identity=who)
        assert result.created and result.response.contact is not None
        assert result.response.contact.email == "ida@acme.example"
    with database.session() as session:
        ida = session.scalars(select(Contact)).one()
        assert (ida.external_id, ida.name) == ("u-3", "Ida")
        assert session.scalars(select(Response)).one().contact_id == ida.id
    database.engine.dispose()


def test_the_identitys_account_and_contact_read_as_columns_behave_as_loaded_rows(
    recruiting: object, database: Database
) -> None:
    with database.transaction() as session:
        make_account(
            session, "acme", segment="enterprise", contacts=(("sofia@acme.example", ContactRole.CHAMPION),)
        )
    who = Identity("u-1", "acme", "sofia@acme.example", "", None)
    with database.transaction() as session:
        target = submission_target(session, "outcomes", None, "r-none", who)
        assert target.account is not None and target.contact is not None
        # Attributes the statement did not read load when read; the session's own objects are reused.
        assert (target.account.segment, target.contact.role) == ("enterprise", ContactRole.CHAMPION)
        assert target.contact.account is target.account
        assert session.scalars(select(Account)).one() is target.account
        again = submission_target(session, "outcomes", None, "r-none", who)
        assert (again.account, again.contact) == (target.account, target.contact)
        target.contact.name = "Sofia"
    with database.session() as session:
        assert session.scalars(select(Contact)).one().name == "Sofia"
