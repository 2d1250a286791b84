"""PUT /api/v1/accounts/<external_id>: an upsert of the account and its contacts, token required."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from engine.accounts import Account, Contact, ContactRole
from engine.db import Database
from tests.factories import account_payload

URL = "/api/v1/accounts/acme"


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def stored_contacts(database: Database) -> list[tuple[str, str, ContactRole]]:
    with database.transaction() as session:
        rows = session.execute(select(Contact.email, Contact.name, Contact.role).order_by(Contact.email))
        return [(email, name, role) for email, name, role in rows]


def account_count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(Account)) or 0


def test_put_creates_the_account_and_its_contacts(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    response = client.put(URL, json=account_payload(), headers=auth)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["external_id"] == "acme"
    assert response.get_json()["contacts"] == 2
    with database.transaction() as session:
        account = session.scalars(select(Account)).one()
        assert (account.name, account.segment) == ("Acme Staffing", "starter")
    assert stored_contacts(database) == [
        ("johnny@acme.example", "Johnny Denver", ContactRole.EXEC_SPONSOR),
        ("sofia@acme.example", "Sofia Varga", ContactRole.CHAMPION),
    ]


def test_put_again_updates_the_same_account(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    first = client.put(URL, json=account_payload(), headers=auth)

    second = client.put(URL, json=account_payload(name="Acme Staffing Group", segment="growth"), headers=auth)

    assert second.status_code == 200, second.get_json()
    assert second.get_json()["id"] == first.get_json()["id"]
    assert account_count(database) == 1
    with database.transaction() as session:
        account = session.scalars(select(Account)).one()
        assert (account.name, account.segment) == ("Acme Staffing Group", "growth")


def test_contacts_are_matched_by_email_whatever_its_case(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    client.put(URL, json=account_payload(), headers=auth)
    renamed = [{"email": "Sofia@ACME.example", "name": "Sofia Varga-Kiss", "role": "power_user"}]

    response = client.put(URL, json=account_payload(contacts=renamed), headers=auth)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["contacts"] == 2
    assert stored_contacts(database) == [
        ("johnny@acme.example", "Johnny Denver", ContactRole.EXEC_SPONSOR),
        ("sofia@acme.example", "Sofia Varga-Kiss", ContactRole.POWER_USER),
    ]


def test_same_contact_twice_in_one_request_is_stored_once(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    contacts = [{"email": "sofia@acme.example"}, {"email": "SOFIA@acme.example", "name": "Sofia"}]

    response = client.put(URL, json=account_payload(contacts=contacts), headers=auth)

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["contacts"] == 1
    assert [email for email, _, _ in stored_contacts(database)] == ["sofia@acme.example"]


def test_unknown_contact_role_is_named(client: FlaskClient, database: Database, auth: dict[str, Any]) -> None:
    contacts = [{"email": "sofia@acme.example", "role": "chief_cheerleader"}]

    response = client.put(URL, json=account_payload(contacts=contacts), headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"contacts.0.role"}
    assert account_count(database) == 0


def test_bad_contact_email_is_named(client: FlaskClient, database: Database, auth: dict[str, Any]) -> None:
    contacts = [{"email": "sofia@acme.example"}, {"email": "not-an-email"}]

    response = client.put(URL, json=account_payload(contacts=contacts), headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"contacts.1.email"}
    assert account_count(database) == 0
    assert stored_contacts(database) == []


def test_missing_account_name_is_named(client: FlaskClient, database: Database, auth: dict[str, Any]) -> None:
    body = account_payload()
    del body["name"]

    response = client.put(URL, json=body, headers=auth)

    assert set(assert_problem(response, 422)["errors"]) == {"name"}
    assert account_count(database) == 0


def test_accounts_need_a_bearer_token(client: FlaskClient, database: Database) -> None:
    response = client.put(URL, json=account_payload())

    body = assert_problem(response, 401)
    assert "Bearer" in body["detail"]
    assert account_count(database) == 0


def test_accounts_refuse_a_wrong_token(client: FlaskClient, database: Database, api_token: str) -> None:
    response = client.put(URL, json=account_payload(), headers={"Authorization": f"Bearer {api_token}x"})

    assert_problem(response, 401)
    assert account_count(database) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"plan_tier": "p" * 81}, "plan_tier"),
        ({"timezone": "t" * 65}, "timezone"),
        ({"lifecycle_stage": "s" * 41}, "lifecycle_stage"),
        ({"contacts": [{"email": "a" * 320 + "@acme.example"}]}, "contacts.0.email"),
        ({"contacts": [{"email": "sofia@acme.example", "external_id": "x" * 201}]}, "contacts.0.external_id"),
        ({"contacts": [{"email": "sofia@acme.example", "timezone": "t" * 65}]}, "contacts.0.timezone"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_values_longer_than_their_column_are_named(
    client: FlaskClient, database: Database, auth: dict[str, Any], overrides: dict[str, Any], field: str
) -> None:
    response = client.put(URL, json=account_payload(**overrides), headers=auth)

    assert set(assert_problem(response, 422)["errors"]) == {field}
    assert account_count(database) == 0


def test_external_id_longer_than_200_characters_is_named(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    response = client.put(f"/api/v1/accounts/{'x' * 201}", json=account_payload(), headers=auth)

    assert set(assert_problem(response, 422)["errors"]) == {"external_id"}
    assert account_count(database) == 0


def test_infinity_in_traits_is_a_400_problem(
    client: FlaskClient, database: Database, auth: dict[str, Any]
) -> None:
    raw = '{"name": "Acme Staffing", "traits": {"seats": Infinity}}'

    response = client.put(URL, data=raw, content_type="application/json", headers=auth)

    assert "Infinity" in assert_problem(response, 400)["detail"]
    assert account_count(database) == 0
