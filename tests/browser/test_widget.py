"""The in-app survey widget in real headless Chromium, embedded in a host page on another origin.

The app runs on `http://127.0.0.1:<port>` (`live_server`, real PostgreSQL and Redis); the host
page on `http://localhost:<port>` (tests/browser/host_pages.py) loads `/embed/v1/widget.js` with
the documented stub and a JWT its "backend" signed with the workspace's secret. The widget's shadow
root is closed in production; the tests open it with an init script (the browser's own
`attachShadow`, patched before any page script runs) so Playwright's locators can reach inside."""

from __future__ import annotations

import datetime as dt
import gzip
import re

import pytest
import yaml
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine.accounts import Account
from engine.db import Database
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook, resolve_playbook
from surveys.models import Response, ResponseStatus, SurveyDismissal
from surveys.rules_queue import apply_queued_rules_job
from tests.browser.host_pages import HOSTILE_CSS, HostSite
from tests.browser.widget_harness import (
    BROWSER_NOW,
    RECEIVED,
    THANKS,
    TITLE,
    WIDGET,
    Embed,
    animations_done,
    complete_survey,
    finish_after_key_results,
    in_shadow,
    make_embed,
    next_step,
    result,
    settled,
    shoot,
    show_again,
    survey_dialog,
    wait_until,
)


@pytest.mark.browser
def test_full_flow_builds_the_plan_and_links_to_it(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(dialog.get_by_text("Five quick questions")).to_be_visible()
    shoot(page, "widget-outcomes-desktop")

    dialog.get_by_role("checkbox", name="Hire faster").check()
    next_step(dialog)
    # Only objectives under the chosen outcome are offered.
    expect(dialog.get_by_role("checkbox", name="Fill open roles sooner")).to_be_visible()
    expect(
        dialog.get_by_role("checkbox", name="Turn more careers-site visitors into applicants")
    ).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Keep the people you cannot afford to lose")).to_have_count(0)
    expect(dialog.get_by_role("checkbox", name="Get more of your offers accepted")).to_have_count(0)
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    dialog.get_by_role("checkbox", name="Turn more careers-site visitors into applicants").check()
    next_step(dialog)

    # Key results come prefilled from the library: today, target, and a due date `days` ahead.
    fill_time = dialog.get_by_role("group", name="Fill open roles sooner")
    expect(fill_time.get_by_role("spinbutton", name="Today")).to_have_value("42")
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_have_value("30")
    today = BROWSER_NOW.date()
    expect(fill_time.get_by_label("By")).to_have_value((today + dt.timedelta(days=120)).isoformat())
    conversion = dialog.get_by_role("group", name="Turn more careers-site visitors into applicants")
    expect(conversion.get_by_role("spinbutton", name="Today")).to_have_value("3")
    expect(conversion.get_by_role("spinbutton", name="Target")).to_have_value("3.5")
    expect(conversion.get_by_label("By")).to_have_attribute("min", (today + dt.timedelta(days=1)).isoformat())
    shoot(page, "widget-key-results-desktop", docs=True)

    # The server's own check (the partial save after the step) comes back inline, next to the objective.
    fill_time.get_by_role("spinbutton", name="Target").fill("42")
    next_step(dialog)
    expect(fill_time.get_by_text("Target must differ from the baseline")).to_be_visible()
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_have_attribute("aria-invalid", "true")
    expect(fill_time.get_by_role("spinbutton", name="Target")).to_be_focused()
    expect(fill_time.get_by_role("spinbutton", name="Today")).to_have_attribute("aria-invalid", "false")
    expect(dialog.get_by_text("Step 3 of 6")).to_be_visible()
    shoot(page, "widget-key-results-error")

    fill_time.get_by_role("spinbutton", name="Target").fill("28")
    due = (today + dt.timedelta(days=100)).isoformat()
    fill_time.get_by_label("By").fill(due)
    conversion.get_by_role("spinbutton", name="Today").fill("2.8")
    next_step(dialog)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    dialog.get_by_role("radio", name="9", exact=True).click()
    expect(dialog.get_by_role("radio", name="9", exact=True)).to_have_attribute("aria-checked", "true")
    next_step(dialog, "Submit")

    expect(dialog.get_by_text(THANKS)).to_be_visible()
    link = dialog.get_by_role("link", name="Open your plan")
    # The plan is the `rules` job's work: until it runs, the link opens a page that waits for it.
    expect(link).to_have_attribute("href", re.compile(r"^http://northstar\.test/p/r/"))
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener")
    expect(link).to_be_focused()
    shoot(page, "widget-thanks-desktop", docs=True)

    (response,) = embed.responses()
    assert response.status == ResponseStatus.COMPLETED
    assert response.channel.value == "in_app"
    assert response.contact is not None and response.contact.external_id == "u-1"
    assert response.answers == {
        "outcomes": ["hire_faster"],
        "objectives": ["time_to_fill", "applicant_conversion"],
        "key_results": {
            "time_to_fill": {"baseline": 42.0, "target": 28.0, "due_date": due},
            "applicant_conversion": {
                "baseline": 2.8,
                "target": 3.5,
                "due_date": (today + dt.timedelta(days=60)).isoformat(),
            },
        },
        "role": "leader",
        "nps": 9,
    }
    assert apply_queued_rules_job() == 1
    with embed.database.session() as session:
        account = session.scalars(select(Account).where(Account.external_id == "acme")).one()
        assert session.scalars(select(SuccessPlan).where(SuccessPlan.account_id == account.id)).one()

    dialog.get_by_role("button", name="Not now").click()
    expect(dialog).to_have_count(0)
    assert result(page) == {"status": "completed"}


@pytest.mark.browser
def test_hostile_host_css_does_not_break_the_widget(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(css=HOSTILE_CSS))
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    box = dialog.bounding_box()
    assert box is not None and 500 <= box["width"] <= 560 and box["height"] < 780
    animations_done(page)
    sizes = in_shadow(
        page,
        """root => ({
          legend: getComputedStyle(root.querySelector('legend')).fontSize,
          dialog: getComputedStyle(root.querySelector('[role=dialog]')).fontSize,
          next: root.querySelector('button[type=submit]').getBoundingClientRect().height,
          overlay: getComputedStyle(root.querySelector('.ov')).position,
        })""",
    )
    assert sizes == {"legend": "16px", "dialog": "15px", "next": 40, "overlay": "fixed"}
    expect(dialog.get_by_role("button", name="Next")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Hire faster")).to_be_visible()
    complete_survey(dialog)
    assert [r.status for r in embed.responses()] == [ResponseStatus.COMPLETED]


@pytest.mark.browser
def test_a_strict_content_security_policy_on_the_host_page(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Refused" in message.text else None)
    page.goto(embed.page_url(strict_csp=True))
    dialog = survey_dialog(page)
    expect(dialog).to_be_visible()
    styled = in_shadow(page, "root => getComputedStyle(root.querySelector('[role=dialog]')).borderRadius")
    assert styled == "12px", "the widget's styles apply under style-src without 'unsafe-inline'"
    complete_survey(dialog)
    assert not refused, refused
    assert [r.status for r in embed.responses()] == [ResponseStatus.COMPLETED]


@pytest.mark.browser
def test_a_half_answered_survey_resumes_after_a_reload(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    dialog.get_by_role("checkbox", name="Hire better people").check()
    next_step(dialog)
    expect(dialog.get_by_text("Step 2 of 6")).to_be_visible()
    (partial,) = embed.responses()
    assert partial.status == ResponseStatus.PARTIAL
    assert partial.answers == {"outcomes": ["hire_better"]}

    page.reload()
    expect(dialog.get_by_text("Step 2 of 6")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name="Get more of your offers accepted")).to_be_visible()
    dialog.get_by_role("button", name="Back").click()
    expect(dialog.get_by_role("checkbox", name="Hire better people")).to_be_checked()
    next_step(dialog)
    dialog.get_by_role("checkbox", name="Get more of your offers accepted").check()
    next_step(dialog)
    finish_after_key_results(dialog)

    (completed,) = embed.responses()  # the same response, completed
    assert completed.client_response_id == partial.client_response_id
    assert completed.status == ResponseStatus.COMPLETED
    assert completed.answers["objectives"] == ["offer_acceptance"]


@pytest.mark.browser
def test_the_step_count_never_grows_when_a_low_score_asks_one_more_question(
    widget_page: Page, embed: Embed
) -> None:
    page = widget_page
    page.goto(embed.page_url())
    dialog = survey_dialog(page)
    progress = dialog.locator(".pg > span")
    seen: list[str] = []

    def on_step(n: int) -> None:
        expect(progress).to_have_text(re.compile(rf"^Step {n} of \d+$"))
        seen.append(progress.inner_text())

    on_step(1)
    dialog.get_by_role("checkbox", name="Hire faster").check()
    next_step(dialog)
    on_step(2)
    dialog.get_by_role("checkbox", name="Fill open roles sooner").check()
    next_step(dialog)
    on_step(3)
    next_step(dialog)
    on_step(4)
    dialog.get_by_role("radio", name="Recruiting leader").check()
    next_step(dialog)
    on_step(5)  # the low score's follow-up is counted until the score is given
    # On the step itself the count follows the score as it is chosen, with the button: a 9 ends
    # the survey here, a 3 asks one more question.
    dialog.get_by_role("radio", name="9", exact=True).click()
    expect(dialog.get_by_role("button", name="Submit", exact=True)).to_be_visible()
    expect(progress).to_have_text("Step 5 of 5")
    dialog.get_by_role("radio", name="3", exact=True).click()
    expect(dialog.get_by_role("button", name="Next", exact=True)).to_be_visible()
    expect(progress).to_have_text("Step 5 of 6")
    shoot(page, "widget-low-score-step-count")
    next_step(dialog)
    expect(dialog.get_by_text("What is getting in the way of your hiring goals right now?")).to_be_visible()
    on_step(6)
    dialog.get_by_role("textbox").fill("Nobody owns the careers page.")
    next_step(dialog, "Submit")
    expect(dialog.get_by_text(THANKS)).to_be_visible()

    totals = [int(text.rsplit(" ", 1)[1]) for text in seen]  # as each step opened
    assert totals == sorted(totals, reverse=True), seen
    assert seen[-1] == "Step 6 of 6"
    (response,) = embed.responses()
    assert response.status == ResponseStatus.COMPLETED
    assert (response.answers["nps"], response.answers["comment"]) == (3, "Nobody owns the careers page.")


@pytest.mark.browser
def test_display_rule_once_per_contact_and_paused_after_a_dismissal(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url("/done"))
    dialog = survey_dialog(page)
    complete_survey(dialog)
    dialog.get_by_role("button", name="Not now").click()
    expect(dialog).to_have_count(0)
    show_again(page)
    assert settled(page) == {"status": "skipped"}
    expect(dialog).to_have_count(0)

    # Another contact closes it with Escape: dismissed, so not shown again until forced.
    page.goto(embed.page_url("/later", token=embed.token("u-2", email="li@acme.example")))
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.wait_for_function("window.result !== null")
    assert result(page) == {"status": "dismissed"}
    wait_until(lambda: embed.count(SurveyDismissal) == 1)
    page.reload()
    page.wait_for_function("window.result !== null")
    assert result(page) == {"status": "skipped"}
    expect(dialog).to_have_count(0)
    show_again(page, '"outcomes", {force: true}')
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("Step 1 of 6")).to_be_visible()
    assert embed.count(Response) == 1


@pytest.mark.browser
def test_a_disallowed_origin_sees_the_server_message_and_stores_nothing(
    widget_page: Page, database: Database, recruiting: dict[str, int], live_server: str, host_site: HostSite
) -> None:
    embed = make_embed(database, live_server, host_site, origins=[])
    page = widget_page
    page.goto(embed.page_url())
    alert = page.get_by_role("dialog").get_by_role("alert")
    expect(alert).to_contain_text(f"{host_site.origin} is not an allowed origin of workspace 'default'")
    expect(alert).to_contain_text(f"northstar workspace set default --origin {host_site.origin}")
    expect(page.get_by_role("dialog", name="Origin not allowed")).to_be_visible()
    shoot(page, "widget-origin-refused")
    page.get_by_role("button", name="Close").click()
    page.wait_for_function("window.result !== null")
    assert result(page)["status"] == "error"
    assert embed.count(Response) == 0


@pytest.mark.browser
def test_an_expired_token_shows_why_and_stores_nothing(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(token=embed.token(ttl=-120)))
    alert = page.get_by_role("dialog", name="Identity token rejected").get_by_role("alert")
    expect(alert).to_have_text("the identity token has expired; ask the host page for a new one")
    assert embed.count(Response) == 0


@pytest.mark.browser
def test_the_shadow_root_is_closed_to_the_host_page(page: Page, embed: Embed) -> None:
    page.goto(embed.page_url())
    host = page.locator("[data-northstar]")
    expect(host).to_be_attached()
    page.wait_for_function("document.querySelector('[data-northstar]')")
    assert page.evaluate("document.querySelector('[data-northstar]').shadowRoot") is None
    # Closed to scripts, not to assistive technology: the browser's accessibility tree has the dialog.
    cdp = page.context.new_cdp_session(page)
    for _ in range(50):
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        names = {n.get("name", {}).get("value") for n in nodes if n.get("role", {}).get("value") == "dialog"}
        if TITLE in names:
            break
        page.wait_for_timeout(100)
    assert TITLE in names


FEEDBACK = {
    "key": "feedback",
    "title": "Quick feedback",
    "anonymous": True,
    "questions": [
        {
            "key": "topics",
            "kind": "multi_choice",
            "title": "What do you use us for?",
            "required": True,
            "options": [
                {"value": "jobs", "label": "Posting jobs"},
                {"value": "screening", "label": "Screening candidates"},
            ],
        },
        {
            "key": "csat",
            "kind": "csat",
            "title": "How happy are you with screening?",
            "show_if": {"in": ["screening", {"var": "answers.topics"}]},
        },
        {"key": "comment", "kind": "text", "title": "Anything else?", "max_length": 40},
    ],
}


@pytest.mark.browser
def test_anonymous_survey_asks_for_an_email_on_the_last_step(widget_page: Page, embed: Embed) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    with embed.database.transaction() as session:
        import_playbook(session, yaml.safe_dump({"surveys": [*document["surveys"], FEEDBACK]}))
    page = widget_page
    page.goto(embed.page_url(token=None, show='"feedback"'))
    dialog = page.get_by_role("dialog", name="Quick feedback")
    expect(dialog.get_by_text("Step 1 of 3")).to_be_visible()  # csat counted while topics is to come
    dialog.get_by_role("checkbox", name="Screening candidates").check()
    expect(dialog.get_by_text("Step 1 of 3")).to_be_visible()
    next_step(dialog)
    expect(dialog.get_by_text("How happy are you with screening?")).to_be_visible()  # show_if with "in"
    expect(dialog.get_by_text("Step 2 of 3")).to_be_visible()
    dialog.get_by_role("radio", name="4", exact=True).click()
    next_step(dialog)
    comment = dialog.get_by_role("textbox", name="Anything else?")
    comment.fill("x" * 60)
    expect(comment).to_have_value("x" * 40)  # max_length
    assert embed.count(Response) == 0, "no partial saves before the respondent is known"
    next_step(dialog, "Submit")
    expect(dialog.get_by_text("Please answer this question.")).to_be_visible()
    expect(dialog.get_by_role("textbox", name="Your work email")).to_have_attribute("aria-invalid", "true")
    dialog.get_by_role("textbox", name="Your work email").fill("Ann@X.example")
    next_step(dialog, "Submit")
    expect(dialog.get_by_text(RECEIVED)).to_be_visible()
    expect(dialog.get_by_role("link")).to_have_count(0)  # no account, so no plan
    (response,) = embed.responses()
    assert (response.account_id, response.respondent_email) == (None, "ann@x.example")
    assert response.answers == {"topics": ["screening"], "csat": 4, "comment": "x" * 40}


def test_widget_is_under_ten_kilobytes_gzipped() -> None:
    size = len(gzip.compress(WIDGET.read_bytes(), compresslevel=9))
    assert size < 10_000, f"widget.js is {size} bytes gzipped; the budget is under 10 KB (10,000 bytes)"
