"""The admin plan pages in real headless Chromium: open the list, filter to plans behind, open one,
edit a key result, rotate its share link. Screenshots (light) go to docs/screenshots/; dark-mode ones
go to test-artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from engine.accounts import ContactRole
from engine.db import Database
from engine.plans.models import MilestoneStatus, SuccessPlan
from engine.plans.service import create_plan, get_template
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.browser.screenshots import artifact_path
from tests.factories import make_account

EMAIL = "erin@northstar.example"


@pytest.fixture
def plans(database: Database, recruiting: dict[str, int]) -> None:
    """Four accounts' plans: one behind, one with its review overdue and an incomplete triangle."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
    people = (
        ("dana@{}.example", ContactRole.EXEC_SPONSOR),
        ("sofia@{}.example", ContactRole.CHAMPION),
        ("li@{}.example", ContactRole.CHAMPION),
        ("omar@{}.example", ContactRole.POWER_USER),
    )
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
        for external_id, segment in (
            ("acme", "starter"),
            ("globex", "enterprise"),
            ("initech", "starter"),
            ("umbrella", "growth"),
        ):
            contacts = tuple((email.format(external_id), role) for email, role in people)
            account = make_account(
                session,
                external_id,
                segment=segment,
                contacts=contacts[: 4 if external_id != "globex" else 1],
            )
            create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=started)
        found = {p.account.external_id: p for p in session.scalars(select(SuccessPlan))}
        found["acme"].milestones[0].status = MilestoneStatus.ACHIEVED
        found["acme"].milestones[1].status = MilestoneStatus.BEHIND
        found["acme"].milestones[2].after = found["acme"].milestones[1].key
        found["acme"].key_results[0].current = 9500
        found["globex"].review_date = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=5)
        found["umbrella"].milestones[0].status = MilestoneStatus.ON_TRACK


def shoot_dark(browser: Browser, page: Page, name: str) -> None:
    """The same page, signed in as the same user, with the system in dark mode."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        color_scheme="dark",
        storage_state=page.context.storage_state(),
    )
    try:
        dark = context.new_page()
        dark.goto(page.url)
        shoot(dark, name, docs=False)
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.slow
def test_ops_filter_to_plans_behind_edit_a_key_result_and_rotate_the_link(
    browser: Browser, page: Page, live_server: str, plans: None, problems: list[str]
) -> None:
    sign_in_console(page, live_server, EMAIL, "/admin/plans")
    expect(page).to_have_url(live_server + "/admin/plans")
    expect(page.get_by_role("heading", name="Plans", level=1)).to_be_visible()
    expect(page.locator("tr[data-plan]")).to_have_count(4)
    expect(page.locator("[data-overdue-count]")).to_contain_text("1")
    expect(page.locator("tr[data-plan='globex']")).to_contain_text("overdue by 5 days")
    shoot(page, "admin-plans", docs=True)
    shoot_dark(browser, page, "admin-plans-dark")

    page.get_by_label("State").select_option("behind")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(live_server + "/admin/plans?q=&state=behind&segment=&stage=")
    expect(page.locator("tr[data-plan]")).to_have_count(1)
    page.get_by_role("link", name="Acme Inc").click()

    expect(page.get_by_role("heading", name="Acme Inc", level=1)).to_be_visible()
    plan_url = page.url.split("#")[0]
    measure = page.locator(".kr-block").first
    expect(measure).to_contain_text("9,500")
    measure.get_by_label("Current").fill("10,250")
    measure.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("current 9,500 → 10,250")
    expect(page.locator(".kr-block").first.locator(".kr-value")).to_have_text("10,250")
    expect(page.locator("ol.revisions li").first).to_contain_text(EMAIL)
    expect(page.locator("ol.revisions li").first).to_contain_text("admin")

    # A bad value: the error shows beside the field, and nothing is saved.
    page.locator(".kr-block").first.get_by_label("Current").fill("lots")
    page.locator(".kr-block").first.get_by_role("button", name="Save").click()
    expect(page.locator("[data-problem]")).to_contain_text("Nothing was saved")
    expect(page.locator(".kr-block").first.locator(".field-error")).to_have_text(
        "Current value: must be a number"
    )
    expect(page.locator(".kr-block").first.get_by_label("Current")).to_have_attribute("aria-invalid", "true")

    page.locator("main").screenshot(path=str(artifact_path("admin-plan-error")))

    # The refused form answered at its own URL (/admin/plans/<plan>/key-results/<kr>): go back to the
    # plan's page itself.
    assert page.url.startswith(plan_url + "/key-results/")
    page.goto(plan_url)
    link = page.locator("[data-share-url]")
    old = link.input_value()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()
    shoot(page, "admin-plan-detail", docs=True)
    shoot_dark(browser, page, "admin-plan-detail-dark")
    page.get_by_text("Rotate the link…").click()
    expect(page.get_by_text("Rotating revokes the link above")).to_be_visible()
    page.get_by_role("button", name="Revoke the old link and make a new one").click()
    expect(page.get_by_role("status")).to_contain_text("The old link no longer opens the plan")
    assert page.locator("[data-share-url]").input_value() != old
    revoked = page.request.get(old.replace("http://northstar.test", live_server))
    assert revoked.status == 404
