"""The preference page behind every unsubscribe link: categories off and on, one-click unsubscribe
from everything, and refusals (forged links, forged or garbage forms) that change nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.models import Enrollment, Message
from campaigns.scheduler import run_tick
from campaigns.sink import SendGridSink
from campaigns.unsubscribe import unsubscribe_token
from engine.accounts import Contact, ContactRole
from engine.config import Settings
from engine.db import Database
from engine.plans.service import create_plan, get_template
from tests.factories import make_account

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday, inside every send window
NO_CAPS = Caps(0, 0)


@dataclass(frozen=True)
class People:
    account_id: int
    champion: int
    sponsor: int
    user: int


@pytest.fixture
def people(database: Database, recruiting: dict[str, int]) -> People:
    """An account with a plan in the recruiting playbook (categories `nurture` and `plan_reviews`)."""
    with database.transaction() as session:
        account = make_account(
            session,
            "acme",
            contacts=(
                ("champ@acme.example", ContactRole.CHAMPION),
                ("boss@acme.example", ContactRole.EXEC_SPONSOR),
                ("user@acme.example", ContactRole.POWER_USER),
            ),
        )
        create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=NOW)
        by_role = {c.role: c.id for c in account.contacts}
        return People(
            account.id,
            by_role[ContactRole.CHAMPION],
            by_role[ContactRole.EXEC_SPONSOR],
            by_role[ContactRole.POWER_USER],
        )


def link(settings: Settings, contact_id: int) -> str:
    return f"/u/{unsubscribe_token(settings.secret_key, contact_id)}"


def form_token(html: str) -> str:
    found = re.search(r'name="_form" value="([^"]+)"', html)
    assert found, "the page should carry a signed form token"
    return found.group(1)


def save(client: FlaskClient, path: str, receive: list[str], token: str | None = None) -> tuple[int, str]:
    page = client.get(path).get_data(as_text=True)
    fields = [("_form", token or form_token(page)), ("shown", "nurture"), ("shown", "plan_reviews")]
    fields += [("category", key) for key in receive]
    response = client.post(path, data=urlencode(fields), content_type=FORM)
    return response.status_code, response.headers.get("Location", "")


def contact_row(database: Database, contact_id: int) -> Contact:
    with database.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        session.expunge(contact)
        return contact


def tick(database: Database, when: dt.datetime, people: People, *campaigns: str) -> None:
    with database.transaction() as session:
        for key in campaigns:
            enroll_account(session, people.account_id, key, now=when, reason="test")
        run_tick(session, now=when, caps=NO_CAPS)


def messages_to(database: Database, contact_id: int) -> list[tuple[str, str, str | None]]:
    """(campaign key, status, reason) of every message to the contact, oldest first."""
    with database.session() as session:
        rows = session.execute(
            select(Enrollment.campaign_id, Message.status, Message.reason, Message.trace)
            .join(Enrollment, Enrollment.id == Message.enrollment_id)
            .where(Message.contact_id == contact_id)
            .order_by(Message.id)
        )
        return [(str(trace["step"]), status.value, reason) for _, status, reason, trace in rows]


def test_page_shows_each_category_with_a_label_and_the_postal_address(
    client: FlaskClient, settings: Settings, people: People
) -> None:
    response = client.get(link(settings, people.champion))

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "champ@acme.example" in html
    for label, key in (("Tips and next steps", "nurture"), ("Plan review reminders", "plan_reviews")):
        assert label in html
        assert re.search(rf'name="category" value="{key}" checked', html)
    assert "A reminder a week before each review" in html
    assert settings.postal_address in html
    assert "Unsubscribe from all emails" in html
    assert response.headers["Cache-Control"] == "no-store"


def test_turning_a_category_off_suppresses_only_that_category(
    client: FlaskClient, database: Database, settings: Settings, people: People
) -> None:
    path = link(settings, people.champion)

    status, location = save(client, path, receive=["plan_reviews"])

    assert status == 303 and location.endswith("?saved=1")
    confirmation = client.get(location).get_data(as_text=True)
    assert "Saved." in confirmation and "You will not get: Tips and next steps." in confirmation
    assert contact_row(database, people.champion).unsubscribed_categories == ["nurture"]
    assert contact_row(database, people.champion).unsubscribed_at is None

    tick(database, NOW, people, "nurture", "review_reminder")

    champion = {step: (status, reason) for step, status, reason in messages_to(database, people.champion)}
    assert champion["welcome"] == ("suppressed", "unsubscribed from nurture")
    assert champion["remind"] == ("queued", None)  # plan_reviews is still on
    sponsor = {step: (status, reason) for step, status, reason in messages_to(database, people.sponsor)}
    assert sponsor["welcome"] == ("queued", None) and sponsor["remind"] == ("queued", None)


def test_a_category_turned_off_can_be_turned_back_on(
    client: FlaskClient, database: Database, settings: Settings, people: People
) -> None:
    path = link(settings, people.champion)
    save(client, path, receive=[])
    assert contact_row(database, people.champion).unsubscribed_categories == ["nurture", "plan_reviews"]

    status, _ = save(client, path, receive=["nurture", "plan_reviews"])

    assert status == 303
    assert contact_row(database, people.champion).unsubscribed_categories == []


def test_one_click_post_unsubscribes_from_everything(
    app: Flask, database: Database, settings: Settings, people: People
) -> None:
    mail_provider = app.test_client(use_cookies=False)

    response = mail_provider.post(link(settings, people.champion), data=ONE_CLICK, content_type=FORM)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    assert contact_row(database, people.champion).unsubscribed_at is not None
    again = mail_provider.get(link(settings, people.champion)).get_data(as_text=True)
    assert "You are unsubscribed from all our emails" in again and 'name="category"' not in again


def test_one_click_body_without_a_form_content_type_still_unsubscribes(
    app: Flask, database: Database, settings: Settings, people: People
) -> None:
    mail_provider = app.test_client(use_cookies=False)

    response = mail_provider.post(link(settings, people.sponsor), data=ONE_CLICK, content_type="text/plain")

    assert response.status_code == 200
    assert contact_row(database, people.sponsor).unsubscribed_at is not None


def test_unsubscribed_contact_gets_nothing_more_from_any_campaign(
    client: FlaskClient,
    database: Database,
    settings: Settings,
    people: People,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
) -> None:
    client.post(link(settings, people.champion), data=ONE_CLICK, content_type=FORM)
    campaigns = ("nurture", "review_reminder", "milestone_slipped", "survey_invite")

    for day in (0, 1, 8, 15, 30):
        tick(database, NOW + dt.timedelta(days=day), people, *campaigns)
    run_worker()

    theirs = messages_to(database, people.champion)
    assert len(theirs) >= len(campaigns)  # every campaign tried, and recorded why not
    assert {(status, reason) for _, status, reason in theirs} == {("suppressed", "unsubscribed")}
    delivered_to = {m.to for m in sink.messages()}
    assert "champ@acme.example" not in delivered_to
    assert "boss@acme.example" in delivered_to  # the others still get theirs


def test_forged_link_is_a_friendly_404_and_changes_nothing(
    client: FlaskClient, database: Database, settings: Settings, people: People
) -> None:
    forged = f"/u/{unsubscribe_token('someone-elses-secret-key', people.champion)}"

    page = client.get(forged)
    post = client.post(forged, data=ONE_CLICK, content_type=FORM)

    for response in (page, post):
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "not valid" in response.get_data(as_text=True)
    assert client.get("/u/" + "x" * 5000).status_code == 404
    assert contact_row(database, people.champion).unsubscribed_at is None


@pytest.mark.parametrize(
    "body",
    [
        "",
        "category=nurture",
        "shown=nurture&category=nurture&_form=forged.token",
        "List-Unsubscribe=One-Click&category=nurture",
        "List-Unsubscribe=Two-Clicks",
        "_form={token}&shown=nurture&shown=plan_reviews&category=invented",
        "_form={token}&shown=nurture&shown=invented",
        "_form={token}&shown=nurture&category=nurture%00",
        "_form={token}&_form={token}&shown=nurture",
        "_form={token}&shown=nurture&category=nurture&x=" + "y" * 9000,
    ],
    ids=[
        "empty",
        "no-form-token",
        "forged-form-token",
        "one-click-plus-fields",
        "wrong-one-click-value",
        "unknown-category",
        "unknown-shown",
        "nul",
        "two-tokens",
        "oversized",
    ],
)
def test_garbage_forms_are_a_400_page_and_change_nothing(
    client: FlaskClient, database: Database, settings: Settings, people: People, body: str
) -> None:
    path = link(settings, people.champion)
    token = form_token(client.get(path).get_data(as_text=True))

    response = client.post(path, data=body.replace("{token}", token), content_type=FORM)

    assert response.status_code == 400 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "nothing was saved" in html.lower() or "out of date" in html
    assert 'name="_form"' in html  # the page again, ready to try once more
    contact = contact_row(database, people.champion)
    assert contact.unsubscribed_at is None and contact.unsubscribed_categories == []


def test_a_form_token_from_another_contacts_page_is_refused(
    client: FlaskClient, database: Database, settings: Settings, people: People
) -> None:
    sponsors_token = form_token(client.get(link(settings, people.sponsor)).get_data(as_text=True))

    status, _ = save(client, link(settings, people.champion), receive=[], token=sponsors_token)

    assert status == 400
    assert contact_row(database, people.champion).unsubscribed_categories == []
