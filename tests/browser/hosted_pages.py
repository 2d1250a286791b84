"""The hosted survey's browser tests' shared pieces: the invited champion, a page with JavaScript
off (the fixtures `invited` and `nojs`, which tests/browser/conftest.py makes available), and
what they read back."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from engine.config import Settings
from engine.db import Database
from engine.plans.models import SuccessPlan
from surveys.links import survey_link
from surveys.models import Response
from tests.factories import make_account

PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class Invited:
    account_id: int
    contact_id: int
    first_name: str
    survey_path: str


@pytest.fixture
def invited(database: Database, recruiting: dict[str, int], settings: Settings) -> Invited:
    with database.transaction() as session:
        account = make_account(session, "acme")
        champion = account.contacts[0]
        link = survey_link(settings, champion, "outcomes")
        return Invited(account.id, champion.id, champion.first_name, link.removeprefix(settings.public_url))


@pytest.fixture
def nojs(browser: Browser, live_server: str) -> Iterator[Page]:
    """A light-mode desktop page with JavaScript disabled; every request must stay on our server."""
    context = browser.new_context(java_script_enabled=False, viewport=DESKTOP, color_scheme="light")
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    yield opened
    context.close()
    outside = [u for u in requested if not u.startswith((live_server, "data:", "about:"))]
    assert not outside, f"every asset must be served locally: {outside}"


def responses(database: Database) -> list[Response]:
    with database.session() as session:
        return list(session.scalars(select(Response).order_by(Response.id)))


def plans(database: Database) -> list[SuccessPlan]:
    with database.session() as session:
        return list(session.scalars(select(SuccessPlan)))


def objectives_of(database: Database, plan_id: int) -> list[str]:
    with database.session() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        return [kr.objective_key for kr in plan.key_results]


def fits(page: Page, width: int) -> bool:
    scroll: int = page.evaluate("document.documentElement.scrollWidth")
    return scroll <= width


def submit(page: Page, button: str) -> int:
    """Click a submit button and return the HTTP status of the page it leads to (after redirects)."""
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button).click()
    response = navigation.value
    assert response is not None
    return response.status
