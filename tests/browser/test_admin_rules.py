"""The Rules pages in real headless Chromium: build a condition in the visual builder (a group, a
field, an operator, a value), see the live check, switch to Raw JSON and back, save, simulate,
publish, and check the JSON Logic stored. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine.db import Database
from engine.rules.models import RuleSet, RuleSetStatus, published_ruleset
from engine.users import Role, create_user
from surveys.service import ResponseIn, submit_response
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import (
    hold_scripts,
    live_checks_settled,
    page_without_javascript,
    release,
    sign_in_console,
)
from tests.factories import make_account, outcomes_answers

EMAIL = "erin@northstar.example"
EXPECTED = {
    "and": [
        {"or": [{">=": [{"var": "answers.outcomes.nps"}, 9]}]},
        {"==": [{"var": "account.segment"}, "starter"]},
    ]
}


@pytest.fixture
def editor_with_answers(database: Database, recruiting: dict[str, int]) -> str:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
        for external_id in ("acme", "globex"):
            make_account(session, external_id)
            submit_response(
                session,
                "outcomes",
                ResponseIn(
                    client_response_id=str(uuid.uuid4()), account=external_id, answers=outcomes_answers()
                ),
                now=dt.datetime.now(dt.UTC),
            )
        make_account(session, "initech", segment="enterprise", contacts=())
    return EMAIL


@pytest.mark.browser
@pytest.mark.slow
def test_an_editor_builds_a_rule_visually_simulates_and_publishes_it(
    page: Page, live_server: str, editor_with_answers: str, database: Database, problems: list[str]
) -> None:
    sign_in_console(page, live_server, editor_with_answers, "/admin/rules")
    expect(page).to_have_url(live_server + "/admin/rules")
    expect(page.get_by_role("heading", name="Published: version 1")).to_be_visible()
    page.get_by_role("button", name="Start a draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft: version 2")
    page.get_by_role("link", name="Add rule").click()

    page.get_by_label("Name").fill("Happy starters → VIP tag")
    page.get_by_label("Priority").fill("400")
    builder = page.locator("[data-builder]")
    expect(builder).to_be_visible()
    expect(page.get_by_role("tab", name="Builder")).to_have_attribute("aria-selected", "true")
    expect(builder.get_by_text("No conditions yet")).to_be_visible()

    # A group (any of) holding "NPS is at least 9", and next to it "segment equals starter".
    builder.get_by_role("button", name="+ Group").click()
    rows = builder.locator(".b-row")
    expect(rows.nth(0).get_by_label("Field")).to_be_focused()
    rows.nth(0).get_by_label("Field").select_option("answers.outcomes.nps")
    expect(rows.nth(0)).to_contain_text("number")
    rows.nth(0).get_by_label("Operator").select_option(">=")
    rows.nth(0).get_by_label("Value").fill("9")
    builder.locator(".b-root > .b-group-foot").get_by_role("button", name="+ Condition").click()
    rows.nth(1).get_by_label("Field").select_option("account.segment")
    rows.nth(1).get_by_label("Value").fill("starter")
    status = page.locator("[data-live-status]")
    # The verdict on the finished condition, not one on the way: a check can run between the
    # field and its value on a slow machine ("matches 0 of 3" for `segment == ""`).
    expect(status).not_to_have_attribute("aria-busy", "true")
    expect(status).to_contain_text("✓ Valid")
    live_text = status.inner_text()
    if "matches" in live_text:  # the SQL preview (engine.rules.sql) counts the accounts
        assert "matches 2 of 3 accounts" in live_text

    # The same condition as JSON; a typo there is reported live and marked on its row.
    page.get_by_role("tab", name="Builder").focus()
    page.keyboard.press("ArrowRight")
    raw = page.get_by_role("textbox", name="Condition (JSON Logic)")
    expect(raw).to_be_visible()
    assert json.loads(raw.input_value()) == EXPECTED
    raw.fill(raw.input_value().replace("answers.outcomes.nps", "answers.outcomes.npss"))
    expect(status).to_contain_text("unknown field 'answers.outcomes.npss'")
    page.get_by_role("tab", name="Builder").click()
    expect(rows.nth(0)).to_contain_text("not in the field catalogue")
    expect(rows.nth(0).locator(".b-error")).to_contain_text("did you mean 'answers.outcomes.nps'?")
    expect(rows.nth(0).get_by_label("Field")).to_have_attribute("aria-invalid", "true")

    # Saving anyway: the server's errors come back at the same builder row and at the action's input.
    live_checks_settled(page)
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved: 2 problems to fix.")
    expect(rows.nth(0).locator(".b-error")).to_contain_text("unknown field 'answers.outcomes.npss'")
    expect(rows.nth(1).locator(".b-error")).to_be_hidden()
    template = page.locator("fieldset[data-action]").first.get_by_label("Plan template")
    expect(template).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_have_value("Happy starters → VIP tag")
    shoot(page, "admin-rules-builder-errors", docs=False)
    rows.nth(0).get_by_label("Field").select_option("answers.outcomes.nps")
    rows.nth(0).get_by_label("Operator").select_option(">=")
    rows.nth(0).get_by_label("Value").fill("9")
    expect(status).to_contain_text("✓ Valid")

    # A JSON Logic condition the builder cannot show stays editable as raw JSON.
    page.get_by_role("tab", name="Raw JSON").click()
    saved_text = raw.input_value()
    raw.fill('{"some": [{"var": "outcomes"}, {"==": [{"var": ""}, "hire_faster"]}]}')
    page.get_by_role("tab", name="Builder").click()
    expect(page.locator("[data-raw-notice]")).to_contain_text("The builder cannot show this condition")
    expect(page.get_by_role("tab", name="Raw JSON")).to_have_attribute("aria-selected", "true")
    raw.fill(saved_text)
    page.get_by_role("tab", name="Builder").click()
    expect(rows).to_have_count(2)

    action = page.locator("fieldset[data-action]").first
    action.get_by_label("Action 1", exact=True).select_option("tag_account")
    expect(action.get_by_label("Plan template")).to_be_hidden()
    action.get_by_label("Tag", exact=True).fill("vip")
    expect(status).to_contain_text("✓ Valid")
    shoot(page, "admin-rules-builder", docs=True)
    page.set_viewport_size({"width": 390, "height": 844})  # on a phone: one column, no sideways scroll
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, "admin-rules-builder-mobile", docs=False)
    page.set_viewport_size({"width": 1280, "height": 800})
    live_checks_settled(page)
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status")).to_contain_text("Saved rule")
    expect(page.locator(".rules-table tbody tr").first).to_contain_text("Happy starters → VIP tag")

    page.get_by_label("Sample").select_option("all")
    page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Simulation: draft 2 vs version 1")
    vip = page.locator('tr[data-effect="tag_account:vip"]')
    expect(vip.locator("td").nth(3)).to_have_text("+2")
    expect(page.get_by_role("row").filter(has_text="globex")).to_contain_text("tag_account:vip")
    shoot(page, "admin-rules-simulate", docs=True)

    page.get_by_role("link", name="Back to the draft").click()
    page.get_by_label("Account id").fill("globex")
    page.get_by_role("button", name="Run draft").click()
    expect(page.get_by_text("Compared with the published version:")).to_be_visible()
    shoot(page, "admin-rules-draft", docs=False)
    page.get_by_label("Note").fill("Tag happy starters as VIP")
    page.get_by_role("button", name="Publish version 2").click()
    expect(page).to_have_url(live_server + "/admin/rules")
    expect(page.get_by_role("status")).to_contain_text("Published version 2")
    with database.session() as session:
        live = published_ruleset(session)
        assert live is not None and live.version == 2 and live.note == "Tag happy starters as VIP"
        rule = next(r for r in live.rules if r.name == "Happy starters → VIP tag")
        assert rule.condition == EXPECTED
        assert rule.actions == [{"type": "tag_account", "value": "vip"}]
        assert rule.priority == 400

    page.get_by_label("Account id").fill("acme")
    page.get_by_role("button", name="Run published rules").click()
    trace = page.locator("table.trace")
    expect(trace.get_by_role("row").filter(has_text="Happy starters → VIP tag")).to_contain_text("matched")
    shoot(page, "admin-rules", docs=True)

    # Dark mode follows the console's colour variables (checked by eye in the artifact).
    page.emulate_media(color_scheme="dark")
    page.goto(live_server + "/admin/rules/history")
    expect(page.get_by_role("button", name="Roll back to this version")).to_be_visible()
    shoot(page, "admin-rules-history-dark", docs=False)


@pytest.mark.browser
@pytest.mark.slow
def test_the_rule_editor_works_without_javascript(
    browser: object, live_server: str, editor_with_answers: str, database: Database
) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    with page_without_javascript(browser) as page:
        sign_in_console(page, live_server, editor_with_answers, "/admin/rules")
        page.get_by_role("button", name="Start a draft").click()
        page.get_by_role("link", name="Add rule").click()
        expect(page.get_by_role("tab", name="Builder")).to_have_count(0)  # no builder, just JSON
        page.get_by_label("Name").fill("Promoters")
        condition = page.get_by_role("textbox", name="Condition (JSON Logic)")
        condition.fill('{">=": [{"var": "answers.outcomes.npss"}, 9]}')
        page.get_by_label("Plan template").first.fill("hire_faster_plan")
        page.get_by_role("button", name="Save rule").click()
        expect(page.get_by_role("alert")).to_contain_text("unknown field 'answers.outcomes.npss'")
        expect(page.locator("[data-server-errors]")).to_contain_text("/>=/0")
        shoot(page, "admin-rules-nojs-errors", docs=False)
        condition.fill('{">=": [{"var": "answers.outcomes.nps"}, 9]}')
        page.get_by_role("button", name="Save rule").click()
        expect(page.get_by_role("status")).to_contain_text("Saved rule 'Promoters'")
        with database.session() as session:
            draft = session.scalars(select(RuleSet).where(RuleSet.status == RuleSetStatus.DRAFT)).one()
            rule = next(r for r in draft.rules if r.name == "Promoters")
            assert rule.condition == {">=": [{"var": "answers.outcomes.nps"}, 9]}
            assert rule.actions == [{"type": "create_plan", "template": "hire_faster_plan"}]


@pytest.mark.browser
def test_an_action_typed_into_the_blank_row_before_the_builder_script_runs_is_kept(
    page: Page, live_server: str, editor_with_answers: str, database: Database, problems: list[str]
) -> None:
    """The rule editor's script is deferred: an action typed into the blank row before it runs
    stays an action, not a row the script drops because the rule has actions already."""
    sign_in_console(page, live_server, editor_with_answers, "/admin/rules")
    page.get_by_role("button", name="Start a draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft: version 2")
    page.wait_for_load_state("load")
    held = hold_scripts(page, "rules-builder.js")
    page.get_by_role("link", name="Edit Detractor → tag account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Detractor → tag account")
    actions = page.locator("fieldset[data-action]")
    expect(actions).to_have_count(2)  # its action and the blank row
    assert len(held) == 1 and page.get_by_role("button", name="+ Add action").is_hidden()
    actions.nth(1).get_by_label("Add an action").select_option("tag_account")
    actions.nth(1).get_by_label("Tag", exact=True).fill("follow_up")
    release(held)

    expect(page.get_by_role("button", name="+ Add action")).to_be_visible()  # the script has run
    expect(actions).to_have_count(2)
    added = actions.nth(1)
    expect(added.get_by_label("Action 2", exact=True)).to_have_value("tag_account")
    expect(added.get_by_label("Tag", exact=True)).to_have_value("follow_up")
    expect(added.get_by_label("Plan template")).to_be_hidden()
    live_checks_settled(page)
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status")).to_contain_text("Saved rule")
    with database.session() as session:
        draft = session.scalars(select(RuleSet).where(RuleSet.status == RuleSetStatus.DRAFT)).one()
        rule = next(r for r in draft.rules if r.name == "Detractor → tag account")
        assert rule.actions == [
            {"type": "tag_account", "value": "detractor"},
            {"type": "tag_account", "value": "follow_up"},
        ]
    assert not problems


@pytest.mark.browser
def test_a_remove_box_ticked_before_the_builder_script_runs_removes_its_action(
    page: Page, live_server: str, editor_with_answers: str, database: Database, problems: list[str]
) -> None:
    """The plain form's Remove box, ticked before the console's deferred scripts run, is hidden by
    them but still submits: the action leaves the page then, as it leaves the saved rule."""
    sign_in_console(page, live_server, editor_with_answers, "/admin/rules")
    page.get_by_role("button", name="Start a draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft: version 2")
    page.wait_for_load_state("load")
    held = hold_scripts(page, "admin.js", "rules-builder.js")
    page.get_by_role("link", name="Edit Hire faster or hire better → hire-faster plan").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Hire faster or hire better → hire-faster plan")
    actions = page.locator("fieldset[data-action]")
    expect(actions).to_have_count(3)  # its two actions and the blank row
    assert len(held) == 2 and page.get_by_role("button", name="+ Add action").is_hidden()
    expect(actions.nth(1).get_by_label("Action 2", exact=True)).to_have_value("enroll")
    actions.nth(1).get_by_role("checkbox", name="Remove").check()
    release(held)

    expect(page.get_by_role("button", name="+ Add action")).to_be_visible()  # the scripts have run
    expect(actions).to_have_count(1)
    expect(actions.nth(0).get_by_label("Action 1", exact=True)).to_have_value("create_plan")
    live_checks_settled(page)
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("status")).to_contain_text("Saved rule")
    with database.session() as session:
        draft = session.scalars(select(RuleSet).where(RuleSet.status == RuleSetStatus.DRAFT)).one()
        rule = next(r for r in draft.rules if r.name == "Hire faster or hire better → hire-faster plan")
        assert rule.actions == [{"type": "create_plan", "template": "hire_faster_plan"}]
    assert not problems
