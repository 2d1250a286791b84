"""What CS ops read in real headless Chromium: survey answers by their titles, a held message's
send window as the console writes times, the re-run trace in the rule lists' words, the audit log's
"What" in words; and one breadcrumb trail per page that ends with the page and leads back through
the account a page belongs to. Screenshots: test-artifacts/screenshots/labels-*.png."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.scheduler import run_tick
from engine.db import Database
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.browser.screenshots import artifact_path
from tests.test_admin_accounts import Story, answer_for_acme, build_story

ADMIN = "ada@northstar.example"
SATURDAY_NIGHT = dt.datetime(
    2026, 11, 28, 3, tzinfo=dt.UTC
)  # the slipped-milestone window opens Monday 08:00


@pytest.fixture
def story(database: Database, recruiting: dict[str, int]) -> Story:
    """The Account 360 story, plus Camila's answers and a nudge held for the send window."""
    told = build_story(database)
    due = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    answer_for_acme(
        database,
        outcomes=["keep_people", "hire_better"],
        objectives=["new_hire_onboarding"],
        key_results={"new_hire_onboarding": {"baseline": 80, "target": 99.4, "due_date": due}},
        role="leader",
        nps=9,
    )
    with database.transaction() as session:
        create_user(session, ADMIN, PASSWORD, role=Role.ADMIN, name="Ada Admin")
        enroll_account(session, told.account_id, "milestone_slipped", now=SATURDAY_NIGHT, reason="test")
        run_tick(session, now=SATURDAY_NIGHT, caps=Caps(0, 0))
    return told


def crumbs(page: Page) -> Locator:
    return page.get_by_role("navigation", name="Breadcrumb")


def expect_trail(page: Page, *labels: str) -> None:
    trail = crumbs(page)
    expect(trail).to_have_count(1)
    expect(trail.locator("li")).to_have_text(list(labels))
    expect(trail.locator("[aria-current='page']")).to_have_text(labels[-1])


@pytest.mark.browser
@pytest.mark.slow
def test_cs_ops_read_words_not_keys_and_every_trail_leads_back(
    page: Page, live_server: str, story: Story, problems: list[str]
) -> None:
    account = f"/admin/accounts/{story.account_id}"
    sign_in_console(page, live_server, ADMIN, account)
    expect(page).to_have_url(live_server + account)

    answers = page.locator("#answers")
    expect(answers).to_contain_text("Keep the people you hire keep_people, Hire better people hire_better")
    expect(answers).to_contain_text("Recruiting leader")
    expect(answers).to_contain_text("Get new team members ready to work from day one: 80% → 99.40% by")
    expect(answers).not_to_contain_text("target:")
    nudge = page.locator("#messages [data-message='help']")
    nudge.get_by_text("Why sent").click()
    expect(nudge.locator("ul.guards")).to_contain_text("send window: deferred until Nov 30, 2026 08:00 UTC")
    shoot(page, "labels-account")
    answers.screenshot(path=str(artifact_path("labels-account-answers")))  # the section, legible
    page.locator("#messages").screenshot(path=str(artifact_path("labels-account-messages")))

    # Why was this sent? The held nudge says when, as the console writes times; back to the account.
    page.get_by_role("link", name="Why was this sent to Camila Ortiz?").click()
    expect(page.get_by_role("heading", name="Why was this sent?")).to_be_visible()
    expect_trail(page, "Dashboard", "Accounts", "Acme Inc", "Camila Ortiz")
    held = page.locator("[data-message='help']")
    expect(held.locator("ul.guards")).to_contain_text("send window: deferred until Nov 30, 2026 08:00 UTC")
    shoot(page, "labels-contact-audit")

    page.get_by_role("link", name="Erase contact…").click()
    expect(page.get_by_role("heading", name="Privacy requests")).to_be_visible()
    expect_trail(page, "Dashboard", "Accounts", "Acme Inc", "Camila Ortiz", "Privacy requests")
    shoot(page, "labels-privacy")
    crumbs(page).get_by_role("link", name="Acme Inc").click()
    expect(page).to_have_url(live_server + account)
    page.get_by_label("Add a note").fill("Camila answered on the hosted page.")
    page.get_by_role("button", name="Add note").click()
    expect(page.get_by_role("status")).to_contain_text("Note added.")

    page.goto(f"{live_server}{account}/rerun")
    trace = page.locator("table.trace")
    expect(trace.locator("[data-rule='Detractor → tag account']")).to_contain_text(
        "answers.outcomes.nps ≤ 6: no (answers.outcomes.nps is 9)"
    )
    expect(trace).not_to_contain_text('{"var"')
    expect_trail(page, "Dashboard", "Accounts", "Acme Inc", "Re-run rules")
    shoot(page, "labels-rerun")

    page.goto(f"{live_server}/admin/plans/{story.plan_id}")
    expect_trail(page, "Dashboard", "Accounts", "Acme Inc", "Success plan")
    shoot(page, "labels-plan")

    page.goto(f"{live_server}/admin/audit")
    what = page.get_by_label("What")
    expect(what.locator("option[value='CampaignDraft']")).to_have_text("Campaign draft")
    expect(what.locator("option[value='RuleSet']")).to_have_text("Rule set")
    what.select_option(label="Account note")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/admin/audit\?.*type=AccountNote"))
    expect(what).to_have_value("AccountNote")
    log = page.get_by_role("region", name="Changes")
    expect(log.locator("tbody tr")).to_have_count(1)
    expect(log.locator("tbody tr .what-cell a")).to_have_text(re.compile(r"^Account note \d+$"))
    expect_trail(page, "Dashboard", "Settings", "Audit log")
    shoot(page, "labels-audit-log")

    for path, trail, name in (
        ("/admin/reports/outcomes", ("Dashboard", "Reports", "Outcomes and objectives"), "labels-report"),
        ("/admin/content/new", ("Dashboard", "Content", "New content item"), "labels-content-new"),
        ("/admin/content/templates", ("Dashboard", "Content", "Message templates"), "labels-templates"),
    ):
        page.goto(live_server + path)
        expect_trail(page, *trail)
        shoot(page, name)
