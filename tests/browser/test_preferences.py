"""The email preference page in real headless Chromium: untick a category, save, see it confirmed
(and the scheduler then skips that category); readable on a 360 px phone; every asset local."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from campaigns.unsubscribe import unsubscribe_token
from engine.accounts import Contact, ContactRole
from engine.db import Database
from tests.browser.conftest import Traffic, shoot
from tests.conftest import SECRET
from tests.factories import make_account

PHONE = {"width": 360, "height": 780}


@dataclass(frozen=True)
class Reader:
    contact_id: int
    email: str
    path: str


@pytest.fixture
def reader(database: Database, recruiting: dict[str, int]) -> Reader:
    """A champion of an account in the recruiting playbook (email types: nurture, plan_reviews)."""
    with database.transaction() as session:
        account = make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
        contact = account.contacts[0]
        return Reader(contact.id, contact.email, f"/u/{unsubscribe_token(SECRET, contact.id)}")


def categories_off(database: Database, contact_id: int) -> list[str]:
    with database.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return list(contact.unsubscribed_categories)


@pytest.mark.browser
def test_untick_a_category_save_and_see_the_confirmation(
    page: Page, live_server: str, reader: Reader, database: Database, traffic: Traffic
) -> None:
    response = page.goto(f"{live_server}{reader.path}")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="Email preferences")).to_be_visible()
    expect(page.get_by_text(reader.email)).to_be_visible()
    tips = page.get_by_role("checkbox", name="Tips and next steps")
    reviews = page.get_by_role("checkbox", name="Plan review reminders")
    expect(tips).to_be_checked()
    expect(reviews).to_be_checked()
    expect(page.get_by_text("Sent by Northstar Inc.")).to_be_visible()

    tips.uncheck()
    page.get_by_role("button", name="Save preferences").click()

    expect(page.get_by_role("status")).to_contain_text("You will not get: Tips and next steps.")
    expect(page.get_by_role("checkbox", name="Tips and next steps")).not_to_be_checked()
    expect(page.get_by_role("checkbox", name="Plan review reminders")).to_be_checked()
    assert categories_off(database, reader.contact_id) == ["nurture"]
    shoot(page, "preferences", docs=True)


@pytest.mark.browser
def test_preference_page_fits_a_360px_phone(
    page: Page, live_server: str, reader: Reader, traffic: Traffic
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}{reader.path}")

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
    save = page.get_by_role("button", name="Save preferences").bounding_box()
    assert save is not None and save["height"] >= 44  # a comfortable tap target
    shoot(page, "preferences-phone")


@pytest.mark.browser
def test_unsubscribe_from_everything_from_the_page(
    page: Page, live_server: str, reader: Reader, database: Database, traffic: Traffic
) -> None:
    page.goto(f"{live_server}{reader.path}")

    page.get_by_role("button", name="Unsubscribe from all emails").click()

    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    with database.session() as session:
        contact = session.get(Contact, reader.contact_id)
        assert contact is not None and contact.unsubscribed_at is not None
