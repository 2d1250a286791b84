"""Enrolling a segment in real headless Chromium: an editor picks a segment and a stage on the
campaign's page, reads the preview's counts, confirms, and an RQ worker enrols the accounts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from campaigns.enrollment import enroll_account
from engine.db import Database
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.factories import make_account

EMAIL = "erin@northstar.example"


@pytest.fixture
def editor(database: Database, recruiting: dict[str, int]) -> str:
    """An editor, twelve starter accounts (eight onboarding, one of them already invited) and three
    enterprise ones."""
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
        starters = [make_account(session, f"starter-{i}", contacts=()) for i in range(12)]
        for i, account in enumerate(starters):
            account.lifecycle_stage = "onboarding" if i < 8 else "adoption"
        for i in range(3):
            make_account(session, f"big-{i}", segment="enterprise", contacts=())
        session.flush()
        enroll_account(session, starters[0].id, "survey_invite", now=now, reason="test")
    return EMAIL


@pytest.mark.browser
@pytest.mark.slow
def test_an_editor_previews_and_enrols_a_segment(
    page: Page, live_server: str, editor: str, run_worker: Callable[[], bool], problems: list[str]
) -> None:
    sign_in_console(page, live_server, editor, "/admin/campaigns/survey_invite")
    expect(page).to_have_url(live_server + "/admin/campaigns/survey_invite")
    form = page.get_by_role("form", name="Enrol a segment")
    form.get_by_label("Segment").select_option("starter")
    form.get_by_label("Lifecycle stage").select_option("onboarding")
    shoot(page, "campaign-enrol-segment-form")
    form.get_by_role("button", name="Preview").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Enrol a segment in Outcomes survey invitation")
    expect(page.locator("[data-segment-preview] .segment-counts")).to_have_text(
        "8 accounts match, 1 already enrolled."
    )
    shoot(page, "campaign-enrol-segment", docs=True)
    page.get_by_role("button", name="Enrol 7 accounts").click()

    expect(page).to_have_url(live_server + "/admin/campaigns/survey_invite")
    expect(page.get_by_role("status").first).to_contain_text(
        "Enrolling 7 accounts in Outcomes survey invitation in the background"
    )
    runs = page.get_by_role("list", name="Recent runs")
    expect(runs.get_by_role("listitem")).to_contain_text("running 7 to enrol")
    assert run_worker()
    page.reload()
    expect(page.locator("[data-total='active']")).to_have_text("8")
    expect(runs.get_by_role("listitem")).to_contain_text("done 7 enrolled, 1 already in it")
    runs.scroll_into_view_if_needed()
    shoot(page, "campaign-enrol-segment-done")
    assert problems == []
