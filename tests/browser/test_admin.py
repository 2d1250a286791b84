"""The admin console in real headless Chromium: sign in, edit the outcomes survey with the
JavaScript editor (title, a new question, reorder), preview it as a respondent would, publish it.

Screenshots go to test-artifacts/screenshots/; the README's go to docs/screenshots/ as well."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from engine.db import Database
from engine.users import Role, create_user
from surveys.authoring import create_survey
from surveys.models import Response as SurveyResponse
from surveys.models import Survey
from surveys.service import ResponseIn, submit_response
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import hold_scripts, page_without_javascript, release, sign_in_console
from tests.factories import make_account, outcomes_answers

EMAIL = "erin@northstar.example"


@pytest.fixture
def editor_account(database: Database, recruiting: dict[str, int]) -> str:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
    return EMAIL


@pytest.fixture
def answered_once(database: Database, recruiting: dict[str, int]) -> None:
    """A customer answered version 1 of the outcomes survey; a second survey is still a draft."""
    with database.transaction() as session:
        make_account(session, "acme")
        submit_response(
            session,
            "outcomes",
            ResponseIn(client_response_id=str(uuid.uuid4()), account="acme", answers=outcomes_answers()),
            now=dt.datetime.now(dt.UTC),
        )
        create_survey(
            session,
            {
                "key": "onboarding-pulse",
                "title": "How is onboarding going?",
                "questions": [{"key": "csat", "kind": "csat", "title": "How satisfied are you so far?"}],
            },
            now=dt.datetime.now(dt.UTC),
        )


@pytest.mark.browser
def test_an_editor_signs_in_edits_previews_and_publishes_the_outcomes_survey(
    page: Page,
    live_server: str,
    editor_account: str,
    answered_once: None,
    database: Database,
    problems: list[str],
) -> None:
    page.goto(live_server + "/admin/surveys/outcomes")
    expect(page).to_have_url(live_server + "/admin/login?next=/admin/surveys/outcomes")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(editor_account)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That email and password do not match an account.")
    shoot(page, "admin-login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    # The editor, enhanced: no blank slots or position boxes, but add / move / remove buttons.
    expect(page).to_have_url(live_server + "/admin/surveys/outcomes")
    expect(page.get_by_role("heading", level=1)).to_have_text("What does success look like for your team?")
    questions = page.locator("fieldset[data-question]")
    expect(questions).to_have_count(6)
    expect(page.locator("input[name$='-position']").first).to_be_hidden()
    expect(questions.first.get_by_role("button", name="Move up")).to_be_visible()
    # Only the fields a kind uses: options for the role question, a length limit for the comment.
    role = questions.nth(3)
    expect(role.get_by_label("Options")).to_be_visible()
    expect(role.get_by_label("Longest answer")).to_be_hidden()

    page.get_by_label("Title", exact=True).fill("What would make this year a success for your team?")
    page.get_by_role("button", name="+ Add question").click()
    expect(questions).to_have_count(7)
    added = questions.nth(6)
    expect(added.get_by_label("Key", exact=True)).to_be_focused()
    added.get_by_label("Key", exact=True).fill("team_size")
    added.get_by_label("Kind").select_option("single_choice")
    added.get_by_label("Question", exact=True).fill("How many people does your team hire each year?")
    added.get_by_label("Options").fill("few|Fewer than 50\nsome|50 to 500\nmany|More than 500")
    added.get_by_label("Required").check()
    expect(added.locator("[data-label]")).to_have_text("How many people does your team hire each year?")
    added.get_by_role("button", name="Move up").click()  # ask it before the free-text comment
    expect(questions.nth(5).get_by_label("Key", exact=True)).to_have_value("team_size")
    expect(questions.nth(5).locator("[data-number]")).to_have_text("6")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    expect(page.get_by_text("draft pending")).to_be_visible()
    expect(questions).to_have_count(7)
    expect(questions.nth(5).get_by_label("Key", exact=True)).to_have_value("team_size")
    expect(questions.nth(5).get_by_label("Required")).to_be_checked()
    shoot(page, "admin-edit", docs=True)

    page.get_by_role("link", name="Preview draft").first.click()
    expect(page).to_have_url(live_server + "/admin/surveys/outcomes/preview")
    expect(page.get_by_text("Draft preview")).to_be_visible()
    respondent = page.get_by_role("article")
    expect(respondent.get_by_role("heading", level=1)).to_have_text(
        "What would make this year a success for your team?"
    )
    expect(respondent.get_by_text("Step 6 of 7")).to_be_visible()
    expect(respondent.get_by_text("More than 500")).to_be_visible()
    expect(respondent.get_by_role("heading", name="Hire better people")).to_be_visible()
    shoot(page, "admin-preview", docs=True)

    page.get_by_role("button", name="Publish version 2").click()
    expect(page).to_have_url(live_server + "/admin/surveys/outcomes")
    expect(page.get_by_role("status")).to_contain_text("Published version 2.")
    expect(page.get_by_text("Live: version 2")).to_be_visible()
    with database.session() as session:
        survey = session.scalar(select(Survey).where(Survey.key == "outcomes"))
        assert survey is not None and survey.latest_published is not None
        published = survey.latest_published
        assert published.version == 2
        assert published.definition["title"] == "What would make this year a success for your team?"
        assert [q["key"] for q in published.questions][-2:] == ["team_size", "comment"]
        assert survey.versions[0].definition["title"] == "What does success look like for your team?"
        answered = session.scalars(select(SurveyResponse)).one()
        assert answered.version.version == 1  # the earlier response keeps the version it answered
    expect(page.locator(".history li").nth(1)).to_contain_text("1 response")

    # On a phone the editor is one column and nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(page, "admin-edit-mobile")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("link", name="Surveys", exact=True).first.click()
    row = page.get_by_role("row").filter(has_text="outcomes")
    expect(row).to_contain_text("version 2")
    expect(row.get_by_role("cell").last).to_have_text("1")
    expect(page.get_by_role("row").filter(has_text="onboarding-pulse")).to_contain_text("draft pending")
    shoot(page, "admin-surveys", docs=True)


@pytest.mark.browser
def test_the_editor_works_without_javascript(
    browser: object, live_server: str, editor_account: str, database: Database
) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    with page_without_javascript(browser) as page:
        sign_in_console(page, live_server, editor_account, "/admin/surveys/outcomes")
        expect(page).to_have_url(live_server + "/admin/surveys/outcomes")
        questions = page.locator("fieldset[data-question]")
        expect(questions).to_have_count(8)  # six questions and two blank slots
        blank = questions.nth(6)
        blank.get_by_label("Key", exact=True).fill("team_size")
        blank.get_by_label("Kind").select_option("text")
        blank.get_by_label("Question", exact=True).fill("Anything else?")
        questions.nth(3).get_by_label("Remove", exact=True).check()
        page.get_by_role("button", name="Save draft").click()
        expect(page.get_by_role("status")).to_contain_text("Draft saved.")
        expect(page.locator("fieldset[data-question]")).to_have_count(8)  # 6 - 1 + 1, and 2 blanks
        with database.session() as session:
            survey = session.scalar(select(Survey).where(Survey.key == "outcomes"))
            assert survey is not None
            draft = survey.versions[-1]
            assert draft.published_at is None
            assert [q["key"] for q in draft.questions] == [
                "outcomes",
                "objectives",
                "key_results",
                "nps",
                "comment",
                "team_size",
            ]


def hold_the_editor_script(page: Page, live_server: str, editor: str) -> list[Route]:
    """Open the outcomes survey's editor with admin.js held back (a slow link): the page is there
    to type into, without the script that enhances it until the test lets the script through."""
    sign_in_console(page, live_server, editor, "/admin/surveys/outcomes")
    expect(page).to_have_url(live_server + "/admin/surveys/outcomes")
    page.wait_for_load_state("load")
    held = hold_scripts(page, "admin.js")
    page.reload(wait_until="commit")
    page.get_by_role("button", name="Save draft").wait_for(state="attached")
    expect(page.locator("fieldset[data-question]")).to_have_count(8)  # six questions and two blank slots
    assert len(held) == 1 and page.get_by_role("button", name="+ Add question").is_hidden()
    return held


def draft_question_keys(database: Database) -> list[str]:
    with database.session() as session:
        survey = session.scalar(select(Survey).where(Survey.key == "outcomes"))
        assert survey is not None and survey.versions[-1].published_at is None
        return [q["key"] for q in survey.versions[-1].questions]


@pytest.mark.browser
def test_a_question_typed_into_a_blank_slot_before_the_editor_script_runs_is_kept(
    page: Page, live_server: str, editor_account: str, database: Database, problems: list[str]
) -> None:
    """The editor's script is deferred: a question typed into a blank slot before it runs stays a
    question, not a slot the script drops as unused."""
    held = hold_the_editor_script(page, live_server, editor_account)
    questions = page.locator("fieldset[data-question]")
    blank = questions.nth(6)
    blank.get_by_label("Key", exact=True).fill("team_size")
    blank.get_by_label("Kind").select_option("text")
    blank.get_by_label("Question", exact=True).fill("Anything else?")
    release(held)

    expect(page.get_by_role("button", name="+ Add question")).to_be_visible()  # the script has run
    expect(questions).to_have_count(7)
    added = questions.nth(6)
    expect(added.get_by_label("Key", exact=True)).to_have_value("team_size")
    expect(added.get_by_label("Question", exact=True)).to_have_value("Anything else?")
    expect(added.locator("[data-label]")).to_have_text("Anything else?")
    expect(added.locator("[data-number]")).to_have_text("7")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    assert draft_question_keys(database)[-1] == "team_size"
    assert not problems


@pytest.mark.browser
def test_a_position_typed_before_the_editor_script_runs_moves_its_question(
    page: Page, live_server: str, editor_account: str, database: Database, problems: list[str]
) -> None:
    """Before the deferred script runs, questions move by their position numbers; one typed then is
    where the question goes, not a number the script resets to the old order."""
    held = hold_the_editor_script(page, live_server, editor_account)
    questions = page.locator("fieldset[data-question]")
    expect(questions.nth(5).get_by_label("Key", exact=True)).to_have_value("comment")
    questions.nth(5).get_by_label("Position").fill("4")
    release(held)

    expect(page.get_by_role("button", name="+ Add question")).to_be_visible()  # the script has run
    expect(questions).to_have_count(6)
    expect(questions.nth(3).get_by_label("Key", exact=True)).to_have_value("comment")
    expect(questions.nth(3).locator("[data-number]")).to_have_text("4")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    keys = ["outcomes", "objectives", "key_results", "comment", "role", "nps"]
    assert draft_question_keys(database) == keys
    assert not problems


@pytest.mark.browser
def test_a_remove_box_ticked_before_the_editor_script_runs_removes_its_question(
    page: Page, live_server: str, editor_account: str, database: Database, problems: list[str]
) -> None:
    """The plain form's Remove box, ticked before the deferred script runs, is hidden by it but
    still submits: the question leaves the page then, as it leaves the saved survey."""
    held = hold_the_editor_script(page, live_server, editor_account)
    questions = page.locator("fieldset[data-question]")
    expect(questions.nth(3).get_by_label("Key", exact=True)).to_have_value("role")
    questions.nth(3).get_by_role("checkbox", name="Remove").check()
    release(held)

    expect(page.get_by_role("button", name="+ Add question")).to_be_visible()  # the script has run
    keys = ["outcomes", "objectives", "key_results", "nps", "comment"]
    expect(questions).to_have_count(len(keys))
    for question, key in zip(questions.all(), keys, strict=True):
        expect(question.get_by_label("Key", exact=True)).to_have_value(key)
    expect(questions.locator("[data-number]")).to_have_text(["1", "2", "3", "4", "5"])
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("status")).to_contain_text("Draft saved.")
    assert draft_question_keys(database) == keys
    assert not problems
