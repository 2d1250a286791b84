"""The hosted survey page and the email's one-click answers in headless Chromium, JavaScript OFF.

Everything runs the real way: the playbook imported into PostgreSQL, the survey_invite email
rendered by the scheduler tick and an RQ worker and captured by the SendGrid sink, the app served
over HTTP by `live_server`. Screenshots go to test-artifacts/screenshots/, the docs' to
docs/screenshots/hosted-*.png."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest
from freezegun import freeze_time
from playwright.sync_api import Page, expect

from campaigns.enrollment import enroll_account
from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from engine.config import Settings
from engine.db import Database, utcnow
from surveys.links import answer_link, one_click_question
from surveys.models import ResponseStatus
from tests.browser.conftest import shoot
from tests.browser.hosted_pages import (
    DESKTOP,
    PHONE,
    Invited,
    fits,
    plans,
    responses,
    submit,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.browser
def test_hosted_survey_without_javascript_builds_a_plan(
    nojs: Page, live_server: str, invited: Invited, database: Database
) -> None:
    page = nojs
    response = page.goto(live_server + invited.survey_path)
    assert response is not None and response.status == 200
    expect(page).to_have_title("What does success look like for your team? · Northstar")
    expect(page.get_by_role("heading", level=1)).to_have_text("What does success look like for your team?")
    expect(page.get_by_text("Step 1 of 5")).to_be_visible()
    expect(page.locator("header.top")).to_contain_text("a few questions for Acme Inc")
    expect(page.get_by_role("checkbox")).to_have_count(4)
    assert fits(page, DESKTOP["width"])
    shoot(page, "hosted-outcomes", docs=True)
    page.set_viewport_size(PHONE)
    assert fits(page, PHONE["width"]), "the survey must not scroll sideways on a phone"
    shoot(page, "hosted-outcomes-mobile", docs=True)
    page.set_viewport_size(DESKTOP)

    page.get_by_label("Hire faster").check()
    assert submit(page, "Next") == 200
    expect(page.get_by_text("Step 2 of 5")).to_be_visible()
    [partial] = responses(database)
    assert (partial.status, partial.channel.value) == (ResponseStatus.PARTIAL, "hosted")
    assert partial.answers == {"outcomes": ["hire_faster"]}
    # Only the objectives under the chosen outcome are offered.
    expect(page.get_by_role("checkbox")).to_have_count(3)
    expect(page.get_by_label("Keep a steady flow of pre-screened candidates")).to_have_count(0)

    page.get_by_label("Increase traffic to the careers microsite").check()
    assert submit(page, "Next") == 200
    expect(page.get_by_text("Step 3 of 5")).to_be_visible()
    row = page.locator(".kr-input").filter(has_text="Increase traffic to the careers microsite")
    expect(row.get_by_label("Today")).to_have_value("8000")  # prefilled from the objective
    expect(row.get_by_label("Target")).to_have_value("12000")
    due = (dt.date.today() + dt.timedelta(days=90)).isoformat()
    expect(row.get_by_label("By")).to_have_value(due)
    shoot(page, "hosted-key-results", docs=True)
    page.set_viewport_size(PHONE)
    assert fits(page, PHONE["width"])
    shoot(page, "hosted-key-results-mobile", docs=True)
    page.set_viewport_size(DESKTOP)
    row.get_by_label("Target").fill("15,000")
    assert submit(page, "Next") == 200

    expect(page.get_by_text("Step 4 of 5")).to_be_visible()
    page.get_by_label("Recruiting leader").check()
    page.locator(".scale-item", has_text=re.compile(r"^9$")).click()
    shoot(page, "hosted-last-step")
    assert submit(page, "Submit") == 200

    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you! Your success plan is ready.")
    shoot(page, "hosted-thanks", docs=True)
    [done] = responses(database)
    assert done.status == ResponseStatus.COMPLETED and done.channel.value == "hosted"
    assert done.answers["key_results"]["careers_site_traffic"]["target"] == 15000
    assert done.answers["role"] == "leader" and done.answers["nps"] == 9
    assert len(plans(database)) == 1

    page.get_by_role("link", name="Open your plan").click()
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    expect(page.locator(".kr").first).to_contain_text("from 8,000 to 15,000")

    # The same link again: thanked, nothing stored twice.
    page.goto(live_server + invited.survey_path)
    expect(page.get_by_role("heading", level=1)).to_have_text("You already answered — thank you")
    assert len(responses(database)) == 1


@pytest.mark.browser
def test_the_step_count_never_grows_when_a_low_score_adds_a_page(
    nojs: Page, live_server: str, invited: Invited, database: Database
) -> None:
    page = nojs
    step = page.locator(".survey-step")
    follow_up = "What is getting in the way of your hiring goals right now?"
    page.goto(live_server + invited.survey_path)
    seen = [(step.text_content() or "")]
    page.get_by_label("Hire faster").check()
    assert submit(page, "Next") == 200
    seen.append(step.text_content() or "")
    page.get_by_label("Increase traffic to the careers microsite").check()
    assert submit(page, "Next") == 200
    seen.append(step.text_content() or "")
    assert submit(page, "Next") == 200  # the key results as prefilled
    seen.append(step.text_content() or "")
    page.get_by_label("Recruiting leader").check()
    page.locator(".scale-item", has_text=re.compile(r"^3$")).click()
    shoot(page, "hosted-low-score-step-count")
    assert submit(page, "Submit") == 200
    expect(page.get_by_label(follow_up)).to_be_visible()
    seen.append(step.text_content() or "")
    assert seen == ["Step 1 of 5", "Step 2 of 5", "Step 3 of 5", "Step 4 of 5", "Step 5 of 5"]
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuemax", "5")
    page.get_by_label(follow_up).fill("No careers page owner.")
    assert submit(page, "Submit") == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you! Your success plan is ready.")
    [done] = responses(database)
    assert (done.answers["nps"], done.answers["comment"]) == (3, "No careers page owner.")


@pytest.mark.browser
def test_validation_errors_show_next_to_the_field_and_keep_what_was_typed(
    nojs: Page, live_server: str, invited: Invited, database: Database
) -> None:
    page = nojs
    page.goto(live_server + invited.survey_path)
    for title in ("Hire faster", "Hire better people", "Keep the people you hire"):
        page.get_by_label(title).check()
    assert submit(page, "Next") == 422
    expect(page.locator("#err-outcomes")).to_have_text("Choose at most 2.")
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(3)  # kept, to untick one
    assert responses(database) == []
    page.get_by_label("Keep the people you hire").uncheck()
    assert submit(page, "Next") == 200

    page.get_by_label("Fill open roles sooner").check()
    assert submit(page, "Next") == 200
    row = page.locator(".kr-input").filter(has_text="Fill open roles sooner")
    row.get_by_label("Today").fill("42")
    row.get_by_label("Target").fill("about thirty")
    row.get_by_label("By").fill("2020-01-01")
    assert submit(page, "Next") == 422
    target = row.get_by_label("Target")
    expect(target).to_have_value("about thirty")
    expect(target).to_have_attribute("aria-invalid", "true")
    # Both problems at once: the word where a number belongs, and the date the service refuses.
    expect(row.locator(".field-error")).to_have_text(
        ["Enter a number, like 30.", "Pick a date in the future."]
    )
    expect(row.get_by_label("By")).to_have_value("2020-01-01")
    shoot(page, "hosted-validation", docs=True)
    body = page.content()
    assert "Traceback" not in body and "answers.key_results" not in body

    target.fill("30")
    assert submit(page, "Next") == 422
    expect(row.locator(".field-error")).to_have_text(["Pick a date in the future."])
    expect(row.get_by_label("Target")).to_have_value("30")
    [partial] = responses(database)
    assert "key_results" not in partial.answers
    row.get_by_label("By").fill((dt.date.today() + dt.timedelta(days=60)).isoformat())
    assert submit(page, "Next") == 200
    [partial] = responses(database)
    assert partial.answers["key_results"]["time_to_fill"]["target"] == 30


@pytest.mark.browser
def test_survey_without_a_link_asks_for_the_email_link(
    nojs: Page, live_server: str, invited: Invited
) -> None:
    response = nojs.goto(f"{live_server}/s/outcomes")
    assert response is not None and response.status == 403
    expect(nojs.get_by_role("heading", level=1)).to_have_text("Use the link from your email")


class _Links(HTMLParser):
    """label → href of every link in the captured email."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: dict[str, str] = {}
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href"), []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            label = "".join(self._text).replace("\xa0", " ").removesuffix(" →").strip()
            self.links[label] = self._href
            self._href = None


@pytest.mark.browser
def test_email_answer_links_confirm_first_then_record_once(
    nojs: Page,
    live_server: str,
    invited: Invited,
    database: Database,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
    settings: Settings,
) -> None:
    page = nojs
    with database.transaction() as session:
        enroll_account(session, invited.account_id, "survey_invite", now=utcnow(), reason="test")
    tick_once(database)
    run_worker()
    sent = {m.to: m for m in sink.messages()}
    assert set(sent) == {"sofia@acme.example", "johnny@acme.example"}  # champion and exec sponsor
    email = sent["sofia@acme.example"]
    assert email.subject == "Sofia, what would make this year a success for Acme Inc?"
    assert email.html is not None and email.text is not None
    parser = _Links()
    parser.feed(email.html)
    options = {k: v for k, v in parser.links.items() if "/s/outcomes/a/" in v}
    assert list(options) == [
        "Hire better people",
        "Hire faster",
        "Keep the people you hire",
        "Put field managers in charge of hiring",
    ]
    assert "%ns:" not in email.html and options["Hire faster"] in email.text
    assert sent["johnny@acme.example"].html is not None
    assert options["Hire faster"] not in sent["johnny@acme.example"].html  # links are per recipient

    # The email as the recipient sees it (rendered locally: it has no remote assets).
    page.set_viewport_size({"width": 700, "height": 900})
    page.set_content(email.html)
    shoot(page, "hosted-email", docs=True)
    page.set_viewport_size(DESKTOP)

    link = options["Hire faster"].replace(settings.public_url, live_server)
    response = page.goto(link)  # what a mail scanner does too
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your answer")
    expect(page.locator(".lead")).to_contain_text("Sofia, you picked Hire faster.")
    expect(page.get_by_label("Hire faster")).to_be_checked()
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(1)
    assert responses(database) == [], "a GET must not record anything"
    shoot(page, "hosted-confirm", docs=True)
    page.set_viewport_size(PHONE)
    assert fits(page, PHONE["width"])
    shoot(page, "hosted-confirm-mobile", docs=True)
    page.set_viewport_size(DESKTOP)

    assert submit(page, "Confirm") == 200
    assert re.search(r"/s/outcomes\?t=[^&]+&step=objectives$", page.url)
    [partial] = responses(database)
    assert (partial.status, partial.channel.value) == (ResponseStatus.PARTIAL, "email")
    assert partial.answers == {"outcomes": ["hire_faster"]}
    expect(page.get_by_text("Step 2 of 5")).to_be_visible()

    page.get_by_label("Fill open roles sooner").check()
    assert submit(page, "Next") == 200
    assert submit(page, "Next") == 200  # the prefilled key results are fine
    assert submit(page, "Submit") == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you! Your success plan is ready.")
    [done] = responses(database)
    assert done.status == ResponseStatus.COMPLETED and done.channel.value == "email"
    assert done.answers["objectives"] == ["time_to_fill"]
    assert len(plans(database)) == 1

    # A replayed link (GET or POST) thanks and stores nothing twice.
    for other in ("Hire faster", "Keep the people you hire"):
        response = page.goto(options[other].replace(settings.public_url, live_server))
        assert response is not None and response.status == 200
        expect(page.get_by_role("heading", level=1)).to_have_text("You already answered — thank you")
        expect(page.get_by_role("link", name="Open your plan")).to_be_visible()
    assert len(responses(database)) == 1 and len(plans(database)) == 1
    shoot(page, "hosted-already-answered")


@pytest.mark.browser
@pytest.mark.parametrize("tamper", ["signature", "payload", "other-survey"])
def test_tampered_answer_links_show_a_friendly_404(
    nojs: Page, live_server: str, invited: Invited, database: Database, settings: Settings, tamper: str
) -> None:
    with database.session() as session:
        from engine.accounts import Contact

        contact = session.get(Contact, invited.contact_id)
        assert contact is not None
        question = one_click_question(session, "outcomes")
        link = answer_link(settings, contact, question.version, question.question_key, "hire_faster")
    path = link.removeprefix(settings.public_url)
    head, _, token = path.rpartition("/")
    payload, stamp, signature = token.split(".")
    if tamper == "signature":
        path = f"{head}/{payload}.{stamp}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    elif tamper == "payload":
        path = f"{head}/{payload[:-2]}xx.{stamp}.{signature}"
    else:
        path = path.replace("/s/outcomes/", "/s/feedback/")
    response = nojs.goto(live_server + path)
    assert response is not None and response.status == 404
    expect(nojs.get_by_role("heading", level=1)).to_be_visible()
    body = nojs.content()
    for leak in ("Traceback", "itsdangerous", "BadSignature", 'File "'):
        assert leak not in body
    assert responses(database) == []
    if tamper == "signature":
        shoot(nojs, "hosted-link-not-valid")


@pytest.mark.browser
def test_expired_answer_link_shows_a_friendly_410(
    nojs: Page, live_server: str, invited: Invited, database: Database, settings: Settings
) -> None:
    with database.session() as session:
        from engine.accounts import Contact

        contact = session.get(Contact, invited.contact_id)
        assert contact is not None
        question = one_click_question(session, "outcomes")
        with freeze_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=31)):
            link = answer_link(settings, contact, question.version, question.question_key, "hire_faster")
    response = nojs.goto(link.replace(settings.public_url, live_server))
    assert response is not None and response.status == 410
    expect(nojs.get_by_role("heading", level=1)).to_have_text("This link has expired")
    expect(nojs.locator("main")).to_contain_text("we will send you a new one")
    assert responses(database) == []
    shoot(nojs, "hosted-link-expired")
