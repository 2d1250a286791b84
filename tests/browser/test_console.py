"""The console shell in real headless Chromium: the dashboard in light and dark at 1280 and 768 px,
keyboard focus (skip link first, "/" opens search), the theme toggle remembered across pages; and
the journey "find an account and read why a message was not sent" (search suggestion → Account 360
→ the message's guard trace). Screenshots go to docs/screenshots/console-*.png."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from campaigns.enrollment import enroll_account
from campaigns.models import Message, MessageStatus
from engine.accounts import ContactRole
from engine.db import Database, utcnow
from engine.plans.models import Milestone, MilestoneStatus
from engine.users import Role, create_user
from surveys.models import Channel, Response, ResponseStatus, Survey
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.factories import make_account
from tests.test_admin_accounts import Story, build_story

EMAIL = "erin@northstar.example"


@pytest.fixture
def story(database: Database, recruiting: dict[str, int]) -> Story:
    """The Account 360 story (a held-out nudge for Camila at Acme) plus a week of activity."""
    told = build_story(database)
    clock = utcnow()
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
        version = session.scalars(select(Survey)).first().versions[0]  # type: ignore[union-attr]
        for i in range(7):
            when = clock - dt.timedelta(days=1 + i * 1.7)
            session.add(
                Response(
                    survey_version_id=version.id,
                    account_id=told.account_id,
                    client_response_id=f"shot-{i}",
                    channel=Channel.IN_APP,
                    status=ResponseStatus.COMPLETED,
                    answers={"outcomes": ["hire_faster"], "nps": 9} if i == 0 else {},
                    created_at=when,
                    completed_at=when,
                )
            )
        # Two weeks of email to another account, so the deliverability card has figures.
        held = session.scalars(select(Message)).one()
        initech = make_account(session, "initech", contacts=(("ana@initech.example", ContactRole.CHAMPION),))
        enrolment, _ = enroll_account(session, initech.id, "held", now=clock, reason="rule 'Held'")
        statuses = [MessageStatus.DELIVERED] * 6 + [MessageStatus.OPENED] * 4 + [MessageStatus.BOUNCED]
        for i, status in enumerate(statuses + statuses[:8]):
            when = clock - dt.timedelta(days=0.5 + i * (0.55 if i < len(statuses) else 0.9))
            session.add(
                Message(
                    enrollment_id=enrolment.id,
                    step_id=held.step_id,
                    contact_id=initech.contacts[0].id,
                    channel="email",
                    status=status,
                    dedupe_key=f"shot-{i}",
                    created_at=when,
                    sent_at=when,
                    trace={},
                )
            )
        milestones = session.scalars(select(Milestone).order_by(Milestone.id)).all()
        milestones[0].status, milestones[0].achieved_at = (
            MilestoneStatus.ACHIEVED,
            clock - dt.timedelta(days=1),
        )
        milestones[1].status = MilestoneStatus.BEHIND
    return told


def sign_in(page: Page, live_server: str, target: str = "/admin/") -> None:
    sign_in_console(page, live_server, EMAIL, target)
    expect(page).to_have_url(live_server + target)


def open_as(browser: Browser, page: Page, *, width: int, scheme: str) -> Page:
    """The same signed-in session in a new window of the given width and system colour scheme."""
    context = browser.new_context(
        viewport={"width": width, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
        storage_state=page.context.storage_state(),
    )
    other = context.new_page()
    other.set_default_timeout(10_000)
    other.goto(page.url)
    return other


def background(page: Page) -> str:
    return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))


@pytest.mark.browser
@pytest.mark.slow
def test_the_shell_in_light_and_dark_at_desktop_and_tablet_with_keyboard_focus(
    browser: Browser, page: Page, live_server: str, story: Story, problems: list[str]
) -> None:
    sign_in(page, live_server)
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.locator("[data-figure='surveys_completed'] [data-value]")).to_have_text("4")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")

    # Keyboard: the skip link is the first stop and jumps past the header; "/" opens search.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    shoot(page, "console-skip-link")
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("main a").first).to_be_focused()  # the first link in the page, not the header
    page.keyboard.press("/")
    expect(
        page.get_by_role("combobox", name="Search accounts, contacts, campaigns and content")
    ).to_be_focused()
    page.keyboard.press("Escape")
    shoot(page, "console-dashboard", docs=True)
    light = background(page)

    dark = open_as(browser, page, width=1280, scheme="dark")
    try:
        assert background(dark) != light
        shoot(dark, "console-dashboard-dark", docs=True)
    finally:
        dark.context.close()

    tablet = open_as(browser, page, width=768, scheme="light")
    try:
        # Nothing is wider than the window: the navigation wraps under the brand and search.
        width = tablet.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, f"the page scrolls sideways at 768 px ({width} px wide)"
        expect(
            tablet.get_by_role("navigation", name="Console").get_by_role("link", name="Plans")
        ).to_be_visible()
        shoot(tablet, "console-dashboard-tablet", docs=True)
        tablet.goto(f"{live_server}/admin/accounts/{story.account_id}")
        assert tablet.evaluate("document.documentElement.scrollWidth") <= 768
        shoot(tablet, "console-account-tablet", docs=True)
    finally:
        tablet.context.close()
    phone = open_as(browser, page, width=390, scheme="light")
    try:
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        phone.context.close()

    # The toggle beats the system setting and is remembered on the next page.
    page.get_by_role("button", name="Switch to the dark theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert background(page) != light
    page.goto(f"{live_server}/admin/accounts")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    shoot(page, "console-accounts-dark", docs=True)
    page.get_by_role("button", name="Switch to the light theme").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert background(page) == light


@pytest.mark.browser
@pytest.mark.slow
def test_find_an_account_and_read_why_a_message_was_not_sent(
    page: Page, live_server: str, story: Story, problems: list[str]
) -> None:
    sign_in(page, live_server)
    page.keyboard.press("/")
    search = page.get_by_role("combobox", name="Search accounts, contacts, campaigns and content")
    search.press_sequentially("camila", delay=20)
    suggestions = page.get_by_role("listbox", name="Suggestions")
    expect(suggestions).to_be_visible()
    expect(suggestions.get_by_role("option").first).to_contain_text("Camila Ortiz")
    shoot(page, "console-search", docs=True)
    search.press("ArrowDown")
    expect(suggestions.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    search.press("Enter")

    expect(page).to_have_url(f"{live_server}/admin/accounts/{story.account_id}#contact-{story.camila_id}")
    expect(page.get_by_role("heading", name="Acme Inc", level=1)).to_be_visible()
    expect(page.locator("#people")).to_contain_text("Gaps: 1 of 2 champions, no power user")
    nudge = page.locator("[data-message='held-hello']")
    expect(nudge).to_contain_text("suppressed")
    expect(nudge.locator(".audit-reason")).to_have_text("Not sent: holdout")
    expect(nudge.locator("ul.guards")).to_contain_text("held out of this campaign")
    nudge.scroll_into_view_if_needed()
    shoot(page, "console-account", docs=True)

    # The same search without suggestions: Enter on the box opens the results page.
    page.keyboard.press("/")
    search.fill("acme")
    expect(suggestions.get_by_role("option").first).to_contain_text("Acme Inc")
    search.press("Enter")
    expect(page).to_have_url(f"{live_server}/admin/search?q=acme")
    expect(page.locator("[data-kind='accounts']")).to_contain_text("Acme Inc")
    page.locator("[data-kind='accounts']").get_by_role("link", name="Acme Inc").click()
    expect(page.get_by_role("heading", name="Acme Inc", level=1)).to_be_visible()

    # Add a note as an editor: flashed, listed.
    page.get_by_label("Add a note").fill("Camila is on leave until March; the holdout is intended.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status")).to_contain_text("Note added.")
    expect(page.locator("[data-note]").first).to_contain_text("the holdout is intended")
