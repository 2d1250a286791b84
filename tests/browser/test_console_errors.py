"""The console's error pages in real headless Chromium: a form the database refuses (a NUL pasted
into a title) answers 400 with what was wrong and that nothing was saved, and a way back; an id no
row can have is the console's 404 with the same way back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from content.models import ContentItem
from engine.db import Database
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import Traffic, shoot
from tests.browser.console_pages import sign_in_console

EMAIL = "erin@northstar.example"


@pytest.fixture
def editor(database: Database, recruiting: object) -> None:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")


@pytest.mark.browser
def test_a_refused_form_and_an_impossible_id_lead_back_to_the_console(
    page: Page, live_server: str, editor: None, traffic: Traffic, database: Database
) -> None:
    with database.session() as session:
        item = session.scalars(select(ContentItem).order_by(ContentItem.id)).first()
        assert item is not None
        item_id, title = item.id, item.title
    sign_in_console(page, live_server, EMAIL, f"/admin/content/{item_id}")
    title_field = page.locator("[name=title]")
    title_field.evaluate("field => { field.value = 'Nul\\u0000title' }")
    with page.expect_navigation():
        title_field.evaluate("field => field.form.requestSubmit()")
    expect(page.get_by_role("heading", name="Bad Request", level=1)).to_be_visible()
    refusal = "Text must not contain NUL (\\u0000) characters; nothing was saved."
    expect(page.get_by_text(refusal)).to_be_visible()
    expect(page.get_by_text("Your browser's Back button returns to the form as you left it.")).to_be_visible()
    shoot(page, "console-error-400")
    with database.session() as session:
        assert session.get(ContentItem, item_id).title == title  # type: ignore[union-attr]

    page.get_by_role("link", name="Back to the console").click()
    expect(page).to_have_url(live_server + "/admin/")

    response = page.goto(live_server + "/admin/accounts/99999999999999")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not Found", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Back to the console")).to_be_visible()
    shoot(page, "console-error-404")
