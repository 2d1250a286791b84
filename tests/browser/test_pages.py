"""Every user-visible page in real headless Chromium (Debian's `chromium`, driven by Playwright).

The data is built the real way (an account, then a completed outcomes survey that the rules turn
into a plan) on real PostgreSQL, and the app is served over real HTTP by `live_server`. Screenshots
go to test-artifacts/screenshots/ (git-ignored); the README's go to docs/screenshots/ as well."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from itsdangerous import URLSafeSerializer
from playwright.sync_api import Page, expect

from campaigns.unsubscribe import unsubscribe_token
from engine.accounts import Contact
from engine.db import Database
from engine.plans.service import active_plan
from engine.plans.sharing import SALT as PLAN_SALT
from engine.plans.sharing import plan_token
from surveys.service import ContactRef
from tests.browser.conftest import Traffic, shoot
from tests.conftest import SECRET
from tests.factories import answer_outcomes, make_account, outcomes_answers

PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}
# A fixed "today" for the survey, so every date on the pages (and so the README screenshots) is stable.
SURVEYED_AT = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@dataclass(frozen=True)
class SharedPlan:
    account_name: str
    plan_id: int
    goal: str
    plan_path: str
    contact_id: int
    contact_email: str


@pytest.fixture
def shared_plan(database: Database, recruiting: dict[str, int]) -> SharedPlan:
    """An account whose champion completed the outcomes survey, so the rules built its plan."""
    with database.transaction() as session:
        account = make_account(session, "acme")
        champion = account.contacts[0]
        answer_outcomes(
            session,
            ContactRef(email=champion.email),
            outcomes_answers(SURVEYED_AT.date()),
            channel="in_app",
            now=SURVEYED_AT,
        )
        plan = active_plan(session, account.id)
        assert plan is not None, "the completed survey should have produced a plan"
        return SharedPlan(
            account_name=account.name,
            plan_id=plan.id,
            goal=plan.goal,
            plan_path=f"/p/{plan_token(SECRET, plan)}",
            contact_id=champion.id,
            contact_email=champion.email,
        )


def scroll_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


@pytest.mark.browser
def test_accounts_page_lists_the_account_and_links_to_its_plan(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic
) -> None:
    response = page.goto(live_server + "/")
    assert response is not None and response.status == 200
    expect(page).to_have_title("Accounts · Northstar")
    expect(page.get_by_role("heading", name="Accounts and their success plans")).to_be_visible()
    expect(page.get_by_text("1 account · 1 plan", exact=True)).to_be_visible()
    row = page.get_by_role("row").filter(has_text=shared_plan.account_name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("starter")
    expect(row).to_contain_text("0 / 5 achieved")
    link = row.get_by_role("link")
    expect(link).to_have_attribute("href", shared_plan.plan_path)
    assert scroll_width(page) <= DESKTOP["width"]
    shoot(page, "accounts", docs=True)

    page.set_viewport_size(PHONE)
    assert scroll_width(page) <= PHONE["width"]
    shoot(page, "accounts-mobile")

    page.set_viewport_size(DESKTOP)
    link.click()
    expect(page).to_have_url(live_server + shared_plan.plan_path)
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()


@pytest.mark.browser
def test_plan_page_shows_goal_measures_milestones_dependencies_and_risks(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic
) -> None:
    response = page.goto(live_server + shared_plan.plan_path)
    assert response is not None and response.status == 200
    expect(page).to_have_title(f"{shared_plan.account_name} · Success plan")

    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    expect(page.locator(".goal")).to_have_text(shared_plan.goal)
    expect(page.get_by_text("review on", exact=False)).to_be_visible()

    expect(page.get_by_role("heading", name="Measures")).to_be_visible()
    measures = page.locator(".kr")
    expect(measures).to_have_count(1)
    expect(measures.first).to_contain_text("from 8,000 to 12,000")
    expect(measures.first.get_by_role("progressbar")).to_be_visible()

    expect(page.get_by_role("heading", name="Milestones")).to_be_visible()
    table = page.get_by_role("table")
    expect(table.get_by_role("columnheader")).to_have_text(["Milestone", "Owner", "Due", "Status"])
    expect(table.locator("tbody tr")).to_have_count(5)
    first = table.locator("tbody tr").first
    expect(first.get_by_role("cell")).to_have_text(
        [
            "Publish your first job on the new careers site",
            "You",
            re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}$"),
            re.compile(r"^pending\b"),  # followed by the customer's "Mark done" button (web/plan_page.py)
        ]
    )

    expect(page.get_by_role("heading", name="Dependencies")).to_be_visible()
    dependencies = page.locator("section", has=page.get_by_role("heading", name="Dependencies"))
    expect(dependencies.get_by_role("listitem").first).to_contain_text("careers site")
    expect(page.get_by_role("heading", name="Risks")).to_be_visible()
    risks = page.locator("section", has=page.get_by_role("heading", name="Risks"))
    expect(risks.get_by_role("listitem").first).to_contain_text("screening")
    expect(risks.get_by_role("listitem").first).to_contain_text("high impact")

    assert scroll_width(page) <= DESKTOP["width"]
    shoot(page, "plan-desktop", docs=True)


@pytest.mark.browser
def test_plan_page_is_readable_on_a_360px_phone(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server + shared_plan.plan_path)
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    assert scroll_width(page) <= PHONE["width"], "the plan must not scroll sideways on a phone"
    # Nothing (a cell, a pill, a bar) pokes out past the card's right edge.
    overflowing = page.evaluate(
        """() => {
            const card = document.querySelector('.card').getBoundingClientRect();
            return [...document.querySelectorAll('.card *')]
                .filter(el => el.getBoundingClientRect().right > card.right + 0.5)
                .map(el => el.tagName + ' ' + el.textContent.trim().slice(0, 40));
        }"""
    )
    assert overflowing == []
    # Each milestone gets a row of its own (title on the full width), not a cramped four-column table.
    card = page.locator(".card").bounding_box()
    title = page.locator("table.milestones tbody tr").first.locator("td").first.bounding_box()
    assert card is not None and title is not None
    assert title["width"] >= card["width"] - 40
    row = page.locator("table.milestones tbody tr").first
    expect(row.get_by_role("cell", name="Owner: You")).to_be_visible()  # still a table to screen readers
    font_size = page.locator(".goal").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert font_size >= 16
    shoot(page, "plan-mobile", docs=True)


@pytest.mark.browser
def test_printed_plan_hides_the_site_header(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic
) -> None:
    page.goto(live_server + shared_plan.plan_path)
    expect(page.locator("header.top")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    expect(page.get_by_role("table")).to_be_visible()
    shoot(page, "plan-print")
    # The seed's one-page plan: printed (or saved as PDF) it fits on a single A4 or Letter sheet.
    for paper in ("A4", "Letter"):
        pdf = page.pdf(format=paper)
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, f"more than one {paper} page"


@pytest.mark.browser
def test_unsubscribe_link_asks_then_unsubscribes_the_contact(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    token = unsubscribe_token(SECRET, shared_plan.contact_id)
    response = page.goto(f"{live_server}/u/{token}")
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="Stop these emails?")).to_be_visible()
    expect(page.get_by_text(shared_plan.contact_email)).to_be_visible()
    with database.session() as session:
        contact = session.get(Contact, shared_plan.contact_id)
        assert contact is not None and contact.unsubscribed_at is None  # GET alone changes nothing
    shoot(page, "unsubscribe-confirm")

    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    expect(page.get_by_text(shared_plan.contact_email)).to_be_visible()
    shoot(page, "unsubscribe-done")

    with database.session() as session:
        contact = session.get(Contact, shared_plan.contact_id)
        assert contact is not None and contact.unsubscribed_at is not None


@pytest.mark.browser
@pytest.mark.parametrize("forgery", ["wrong-key", "garbage"])
def test_forged_plan_link_shows_a_friendly_404_page(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic, forgery: str
) -> None:
    if forgery == "wrong-key":
        token = URLSafeSerializer("not-the-secret-key", salt=PLAN_SALT).dumps([shared_plan.plan_id, 1])
    else:
        token = "WzEsMV0.not-a-real-signature"
    response = page.goto(f"{live_server}/p/{token}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.locator("main")).to_contain_text("not valid")
    expect(page.locator("header.top")).to_contain_text("Northstar")
    body = page.content()
    for leak in ("Traceback", "NotFound", 'File "', "itsdangerous", shared_plan.goal):
        assert leak not in body
    if forgery == "wrong-key":
        shoot(page, "plan-not-found")
