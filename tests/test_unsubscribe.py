"""Signed public links: /u/<token> (RFC 8058 one-click unsubscribe) and /p/<token> (a shared plan)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from sqlalchemy import select
from werkzeug.test import TestResponse

from campaigns.unsubscribe import unsubscribe_token
from engine.accounts import Contact
from engine.config import Settings
from engine.db import Database
from engine.plans.models import SuccessPlan
from engine.plans.sharing import SALT as PLAN_SALT
from engine.plans.sharing import plan_token
from tests.factories import make_account, response_payload, submit_and_apply

ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def client(api_client: FlaskClient) -> FlaskClient:
    """Responses here are submitted server-to-server, with the API token."""
    return api_client


@pytest.fixture
def contacts(database: Database) -> dict[str, int]:
    with database.transaction() as session:
        return {c.email.split("@")[0]: c.id for c in make_account(session, "acme").contacts}


@pytest.fixture
def sofia(contacts: dict[str, int]) -> int:
    return contacts["sofia"]


@pytest.fixture
def sofia_link(settings: Settings, sofia: int) -> str:
    return f"/u/{unsubscribe_token(settings.secret_key, sofia)}"


@pytest.fixture
def plan_link(client: FlaskClient, recruiting: dict[str, int], sofia: int) -> str:
    share_url: str = submit_and_apply(client, response_payload("acme"))["plan"]["share_url"]
    return share_url.removeprefix("http://northstar.test")


def unsubscribed_at(database: Database, contact_id: int) -> dt.datetime | None:
    with database.transaction() as session:
        return session.scalar(select(Contact.unsubscribed_at).where(Contact.id == contact_id))


def assert_not_found_page(response: TestResponse) -> str:
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "<html" in html.lower()
    return html


def test_unsubscribe_link_asks_before_unsubscribing(
    client: FlaskClient, database: Database, sofia: int, sofia_link: str
) -> None:
    response = client.get(sofia_link)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "sofia@acme.example" in html
    assert 'method="post"' in html.lower()
    assert unsubscribed_at(database, sofia) is None


def test_one_click_post_unsubscribes_without_cookies(
    app: Flask, database: Database, sofia: int, sofia_link: str
) -> None:
    mail_provider = app.test_client(use_cookies=False)

    response = mail_provider.post(
        sofia_link, data=ONE_CLICK, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert unsubscribed_at(database, sofia) is not None


def test_second_one_click_keeps_the_first_unsubscribe_time(
    client: FlaskClient, database: Database, sofia: int, sofia_link: str
) -> None:
    client.post(sofia_link, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    first = unsubscribed_at(database, sofia)

    again = client.post(sofia_link, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert again.status_code == 200
    assert unsubscribed_at(database, sofia) == first


def test_forged_unsubscribe_link_is_a_friendly_404(
    client: FlaskClient, database: Database, settings: Settings, contacts: dict[str, int], sofia_link: str
) -> None:
    # Someone edits the contact id in their own link, keeping their signature.
    johnny_payload = unsubscribe_token(settings.secret_key, contacts["johnny"]).split(".")[0]
    sofia_signature = sofia_link.split(".")[-1]

    response = client.post(
        f"/u/{johnny_payload}.{sofia_signature}",
        data=ONE_CLICK,
        content_type="application/x-www-form-urlencoded",
    )

    assert "not valid" in assert_not_found_page(response)
    assert unsubscribed_at(database, contacts["johnny"]) is None
    assert unsubscribed_at(database, contacts["sofia"]) is None


def test_unsubscribe_link_signed_with_another_key_is_a_friendly_404(
    client: FlaskClient, database: Database, sofia: int
) -> None:
    response = client.get(f"/u/{unsubscribe_token('someone-elses-secret-key', sofia)}")

    assert_not_found_page(response)


def test_unsubscribe_link_of_a_deleted_contact_is_a_friendly_404(
    client: FlaskClient, database: Database, sofia: int, sofia_link: str
) -> None:
    with database.transaction() as session:
        session.delete(session.get(Contact, sofia))

    response = client.post(sofia_link, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")

    assert_not_found_page(response)


def test_shared_plan_link_opens_the_plan(client: FlaskClient, plan_link: str) -> None:
    response = client.get(plan_link)

    assert response.status_code == 200
    assert "Acme Inc" in response.get_data(as_text=True)


def test_forged_plan_link_is_a_friendly_404(client: FlaskClient, database: Database, plan_link: str) -> None:
    with database.transaction() as session:
        plan = session.scalars(select(SuccessPlan)).one()
        forged = URLSafeSerializer("not-our-secret-key", salt=PLAN_SALT).dumps(
            [plan.id, plan.share_token_version]
        )

    response = client.get(f"/p/{forged}")

    assert "not valid" in assert_not_found_page(response)


def test_garbage_plan_link_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/p/not-a-token-at-all")

    assert_not_found_page(response)


def test_rotated_plan_link_no_longer_opens(client: FlaskClient, database: Database, plan_link: str) -> None:
    with database.transaction() as session:
        plan = session.scalars(select(SuccessPlan)).one()
        plan.share_token_version += 1

    response = client.get(plan_link)

    assert "no longer valid" in assert_not_found_page(response)


def test_new_plan_link_opens_after_rotation(
    client: FlaskClient, database: Database, settings: Settings, plan_link: str
) -> None:
    with database.transaction() as session:
        plan = session.scalars(select(SuccessPlan)).one()
        plan.share_token_version += 1
        session.flush()
        fresh = plan_token(settings.secret_key, plan)

    assert client.get(f"/p/{fresh}").status_code == 200
