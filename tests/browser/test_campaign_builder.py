"""The campaign builder in real headless Chromium: build a campaign (an email, a wait for a
milestone with a time-out jump, an exit), see the validation error at its field, fix it, publish
version 1; accounts enrol; add a branch with the rules console's condition builder, publish
version 2, and read the live counts per step. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from campaigns.builder import CampaignDraft
from campaigns.enrollment import enroll_account
from campaigns.models import Campaign
from engine.db import Database
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import hold_scripts, live_checks_settled, release, sign_in_console
from tests.factories import make_account

EMAIL = "erin@northstar.example"


@pytest.fixture
def editor(database: Database, recruiting: dict[str, int]) -> str:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
    return EMAIL


def enrol(database: Database, *external_ids: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        for external_id in external_ids:
            account = make_account(session, external_id)
            enroll_account(session, account.id, "onboarding", now=now, reason="test")


@pytest.mark.browser
@pytest.mark.slow
def test_an_editor_builds_publishes_and_watches_a_campaign(
    page: Page, live_server: str, editor: str, database: Database, problems: list[str]
) -> None:
    sign_in_console(page, live_server, editor, "/admin/campaigns")
    expect(page).to_have_url(live_server + "/admin/campaigns")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name").fill("First job nudge")
    page.get_by_label("Key").fill("onboarding")
    page.get_by_role("button", name="Create and open the builder").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Build: First job nudge")

    steps = page.locator("li[data-step]")
    expect(steps).to_have_count(1)  # a new campaign starts with one email step
    first = steps.nth(0)
    first.locator("[data-step-key]").fill("hello")
    first.get_by_label("Template").select_option("welcome_plan")
    expect(first.get_by_role("link", name="Preview template welcome_plan")).to_be_visible()
    first.get_by_label("Champion").check()
    expect(first.get_by_label("Days", exact=True)).to_be_hidden()  # only the email's fields

    page.get_by_role("button", name="+ Add step").click()
    wait = steps.nth(1)
    wait.get_by_label("Kind").select_option("wait_until")
    wait.locator("[data-step-key]").fill("first_job")
    wait.locator("[data-wait-for]").select_option("milestone")
    wait.get_by_label("Milestone", exact=True).select_option("first_job_posted")
    expect(wait.get_by_label("Event")).to_be_hidden()
    wait.get_by_label("Time out after (days)").fill("7")
    wait.get_by_label("On time-out go to").fill("remind")
    page.get_by_role("button", name="+ Add step").click()
    steps.nth(2).get_by_label("Kind").select_option("exit")
    steps.nth(2).locator("[data-step-key]").fill("done")

    # "remind" does not exist yet: the save is refused and the field says why.
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#builder-errors")).to_contain_text("Nothing was saved: 1 problem to fix.")
    on_timeout = steps.nth(1).get_by_label("On time-out go to")
    expect(on_timeout).to_have_attribute("aria-invalid", "true")
    expect(steps.nth(1).locator("#err-1-on_timeout")).to_have_text("no step 'remind' in this campaign")
    expect(steps).to_have_count(3)  # everything typed is still there
    shoot(page, "campaign-builder-errors", docs=True)

    page.get_by_role("button", name="+ Add step").click()
    remind = steps.nth(3)
    remind.get_by_label("Kind").select_option("email")
    remind.locator("[data-step-key]").fill("remind")
    remind.get_by_label("Template").select_option("next_step")
    page.get_by_label("Publish note").fill("First cut")
    page.get_by_role("button", name="Save and publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published version 1")
    expect(page.get_by_role("heading", name="Flow · version 1")).to_be_visible()

    # Two accounts enrol on version 1; then a branch is added in the builder.
    enrol(database, "acme", "globex")
    page.get_by_role("link", name="Edit").click()
    page.get_by_role("button", name="+ Add step").click()
    branch = page.locator("#" + str(steps.nth(4).get_attribute("id")))  # follows the step as it moves
    branch.get_by_label("Kind").select_option("branch")
    branch.locator("[data-step-key]").fill("still_quiet")
    builder = branch.locator("[data-builder]")
    expect(builder).to_be_visible()
    builder.get_by_role("button", name="+ Condition").first.click()
    row = builder.locator(".b-row").first
    row.get_by_label("Field").select_option("plan.milestones_behind")
    row.get_by_label("Operator").select_option(">=")
    row.get_by_label("Value").fill("1")
    expect(branch.locator("[data-live-status]")).to_contain_text("✓ Valid")
    branch.get_by_label("When it holds, go to").fill("remind")
    # Move the branch up to third place with the keyboard-reachable arrows.
    branch.get_by_role("button", name="Move step 5 up").click()
    branch.get_by_role("button", name="Move step 4 up").click()
    expect(steps.nth(2).locator("[data-step-key]")).to_have_value("still_quiet")
    shoot(page, "campaign-builder", docs=True)
    page.get_by_label("Publish note").fill("Branch on milestones behind")
    live_checks_settled(page)
    page.get_by_role("button", name="Save and publish").click()
    expect(page.get_by_role("status")).to_contain_text("Published version 2")
    expect(page.get_by_role("heading", name="Flow · version 2")).to_be_visible()

    enrol(database, "initech")
    page.reload()
    flow = page.locator("ol.flow").first
    expect(flow.locator("li[data-step]")).to_have_count(5)
    expect(flow.locator('li[data-step="hello"] [data-here]')).to_have_text("1")
    versions = page.locator(".versions-table tbody tr")
    expect(versions.nth(0)).to_contain_text("Branch on milestones behind")
    expect(versions.nth(1).locator('td[data-label="Running"]')).to_have_text("2")  # still on version 1
    shoot(page, "campaign-builder-detail", docs=True)
    page.goto(live_server + "/admin/campaigns")
    expect(page.locator('tr[data-campaign="onboarding"]')).to_contain_text("3")
    shoot(page, "campaign-builder-list", docs=True)

    # On a tablet the builder fits without sideways scrolling; dark mode uses the console's colours.
    page.set_viewport_size({"width": 768, "height": 1024})
    page.goto(live_server + "/admin/campaigns/onboarding/edit")
    expect(page.locator("li[data-step]")).to_have_count(5)
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    shoot(page, "campaign-builder-tablet", docs=False)
    page.emulate_media(color_scheme="dark")
    page.goto(live_server + "/admin/campaigns/onboarding")
    shoot(page, "campaign-builder-detail-dark", docs=False)

    with database.session() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.key == "onboarding"))
        assert campaign is not None and campaign.version == 2
        assert [s.key for s in campaign.steps] == ["hello", "first_job", "still_quiet", "done", "remind"]
        assert campaign.steps[2].config == {
            "condition": {"and": [{">=": [{"var": "plan.milestones_behind"}, 1]}]},
            "then": "remind",
        }
    assert not problems


@pytest.mark.browser
def test_the_survey_invitations_preview_shows_its_survey_from_the_builder(
    page: Page, live_server: str, editor: str, problems: list[str]
) -> None:
    sign_in_console(page, live_server, editor, "/admin/campaigns/survey_invite/edit")
    step = page.locator("li[data-step]").first
    link = step.get_by_role("link", name="Preview template outcomes_survey")
    expect(link).to_have_attribute(
        "href", "/admin/campaigns/templates/outcomes_survey/preview?survey=outcomes"
    )
    with page.context.expect_page() as opened:
        link.click()
    preview = opened.value
    preview.wait_for_load_state()
    expect(preview.locator("body")).to_contain_text("Which outcomes matter most to your team this year?")
    expect(preview.get_by_role("link", name="Hire faster →")).to_have_attribute(
        "href", f"{live_server}/admin/surveys/outcomes/preview"
    )
    shoot(preview, "campaign-template-preview-survey")
    preview.close()
    # Clearing the step's survey drops it from the link, as the send would.
    survey = step.get_by_role("textbox", name="Survey")
    survey.fill("")
    survey.dispatch_event("change")
    expect(link).to_have_attribute("href", "/admin/campaigns/templates/outcomes_survey/preview")


@pytest.mark.browser
def test_what_is_typed_before_the_builder_script_runs_is_kept(
    page: Page, live_server: str, editor: str, database: Database, problems: list[str]
) -> None:
    """The builder's script is deferred: on a slow link the page is usable before it runs. A new
    campaign's step slot typed into then must stay the step, not give way to a fresh one (CI once
    published "hello" as the default `email_1` this way)."""
    sign_in_console(page, live_server, editor, "/admin/campaigns/new")
    page.get_by_label("Name").fill("Slow link")
    page.get_by_label("Key").fill("slow_link")
    held = hold_scripts(page, "campaign-builder.js")
    page.get_by_role("button", name="Create and open the builder").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Build: Slow link")
    page.wait_for_function("document.querySelectorAll('li[data-step]').length === 1")
    assert len(held) == 1 and page.get_by_role("button", name="+ Add step").is_hidden()
    page.locator("li[data-step] [data-step-key]").fill("hello")
    release(held)

    expect(page.get_by_role("button", name="+ Add step")).to_be_visible()  # the script has run
    step = page.locator("li[data-step]")
    expect(step).to_have_count(1)
    expect(step.locator("[data-step-key]")).to_have_value("hello")
    expect(step.get_by_label("Kind")).to_have_value("email")
    expect(step.get_by_role("combobox", name="Kind")).to_contain_text("(choose)")
    step.get_by_label("Template").select_option("welcome_plan")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved")
    with database.session() as session:
        draft = session.scalar(select(CampaignDraft).where(CampaignDraft.key == "slow_link"))
        assert draft is not None
        assert [s["key"] for s in draft.document["steps"]] == ["hello"]
    assert not problems


def hold_the_builder_scripts(page: Page, live_server: str, editor: str) -> list[Route]:
    """Open the nurture campaign's builder with the console's scripts held back (a slow link): the
    plain form is there to use, its position and remove boxes too, until the test lets them run."""
    sign_in_console(page, live_server, editor, "/admin/campaigns/nurture/edit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Build: Recruiting nurture")
    page.wait_for_load_state("load")
    held = hold_scripts(page, "admin.js", "campaign-builder.js")
    page.reload(wait_until="commit")
    page.get_by_role("button", name="Save draft").wait_for(state="attached")
    expect(page.locator("li[data-step]")).to_have_count(7)  # six steps and the blank slot
    assert len(held) == 2 and page.get_by_role("button", name="+ Add step").is_hidden()
    return held


def expect_step_keys(page: Page, keys: list[str]) -> None:
    """The builder shows these steps, in this order, numbered from 1."""
    steps = page.locator("li[data-step]")
    expect(steps).to_have_count(len(keys))
    for step, key in zip(steps.all(), keys, strict=True):
        expect(step.locator("[data-step-key]")).to_have_value(key)
    expect(steps.locator("[data-number]")).to_have_text([str(n) for n in range(1, len(keys) + 1)])


def draft_step_keys(database: Database) -> list[str]:
    with database.session() as session:
        draft = session.scalar(select(CampaignDraft).where(CampaignDraft.key == "nurture"))
        assert draft is not None
        return [s["key"] for s in draft.document["steps"]]


@pytest.mark.browser
def test_a_position_typed_before_the_builder_script_runs_moves_its_step(
    page: Page, live_server: str, editor: str, database: Database, problems: list[str]
) -> None:
    """Before the deferred scripts run, steps move by their position numbers; one typed then moves
    its step as the server orders them (by number, a tie in page order), not reset to the old one."""
    held = hold_the_builder_scripts(page, live_server, editor)
    steps = page.locator("li[data-step]")
    expect(steps.nth(5).locator("[data-step-key]")).to_have_value("checkin")
    steps.nth(5).get_by_label("Position").fill("2")
    release(held)

    expect(page.get_by_role("button", name="+ Add step")).to_be_visible()  # the scripts have run
    keys = ["welcome", "plan_ready", "checkin", "wait_first_job", "next_step", "wait_a_week"]
    expect_step_keys(page, keys)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved")
    assert draft_step_keys(database) == keys
    assert not problems


@pytest.mark.browser
def test_a_remove_box_ticked_before_the_builder_script_runs_removes_its_step(
    page: Page, live_server: str, editor: str, database: Database, problems: list[str]
) -> None:
    """The plain form's Remove box, ticked before the deferred scripts run, is hidden by them but
    still submits: the step leaves the page then, as it leaves the saved draft."""
    held = hold_the_builder_scripts(page, live_server, editor)
    steps = page.locator("li[data-step]")
    expect(steps.nth(4).locator("[data-step-key]")).to_have_value("wait_a_week")
    steps.nth(4).get_by_role("checkbox", name="Remove").check()
    release(held)

    expect(page.get_by_role("button", name="+ Add step")).to_be_visible()  # the scripts have run
    keys = ["welcome", "plan_ready", "wait_first_job", "next_step", "checkin"]
    expect_step_keys(page, keys)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved")
    assert draft_step_keys(database) == keys
    assert not problems
