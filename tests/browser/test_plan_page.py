"""The shared plan page in real headless Chromium: a customer opens the link, updates a measure,
marks a milestone done, comments and confirms the review; on a 360 px phone; printed to A4.

The plan is built the real way (a completed outcomes survey 20 days ago, then a milestone refresh),
served over real HTTP by `live_server` on real PostgreSQL. Screenshots: docs/screenshots/plan-shared*.png."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from engine.db import Database
from engine.plans.models import KeyResult, Milestone, MilestoneStatus, PlanRevision, SuccessPlan
from engine.plans.progress import refresh_plans
from engine.plans.service import active_plan
from engine.plans.sharing import plan_token
from surveys.service import ContactRef
from tests.browser.conftest import Traffic, shoot
from tests.conftest import SECRET
from tests.factories import answer_outcomes, make_account, outcomes_answers

PHONE = {"width": 360, "height": 780}
DESKTOP = {"width": 1280, "height": 800}
FIRST = "Publish your first job on the new careers site"


@dataclass(frozen=True)
class SharedPlan:
    plan_id: int
    path: str
    goal: str


@pytest.fixture
def shared_plan(database: Database, recruiting: dict[str, int]) -> SharedPlan:
    """Acme's champion answered the outcomes survey 20 days ago; the milestones were refreshed
    today, so the plan shows a missed, a behind and pending milestones."""
    now = dt.datetime.now(dt.UTC)
    surveyed = now - dt.timedelta(days=20)
    with database.transaction() as session:
        account = make_account(session, "acme")
        answer_outcomes(
            session,
            ContactRef(email=account.contacts[0].email),
            outcomes_answers(surveyed.date()),
            channel="in_app",
            now=surveyed,
        )
        plan = active_plan(session, account.id)
        assert plan is not None
        refresh_plans(session, [account.id], now=now)
        return SharedPlan(plan.id, f"/p/{plan_token(SECRET, plan)}", plan.goal)


def scroll_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def overflowing_the_card(page: Page) -> list[str]:
    found: list[str] = page.evaluate(
        """() => {
            const card = document.querySelector('.card');
            const pad = parseFloat(getComputedStyle(card).paddingRight);
            const right = card.getBoundingClientRect().right - pad;
            return [...card.querySelectorAll('*')]
                .filter(el => el.getClientRects().length && el.getBoundingClientRect().right > right + 0.5)
                .map(el => el.tagName + ' ' + el.textContent.trim().slice(0, 40));
        }"""
    )
    return found


@pytest.mark.browser
def test_customer_updates_the_plan_through_the_shared_link(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    response = page.goto(live_server + shared_plan.path)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    expect(page.locator(".goal")).to_have_text(shared_plan.goal)
    expect(page.get_by_role("button", name="Print / Save as PDF")).to_be_visible()
    first = page.locator("table.milestones tbody tr").filter(has_text=FIRST)
    expect(first.locator(".pill")).to_have_text("missed")
    expect(page.locator("#people")).to_contain_text("No power user yet")

    # A measure: the customer's own number, typed the way they write it.
    page.get_by_label("Your number now").fill("9,500")
    page.get_by_role("button", name="Update").click()
    expect(page.get_by_role("status")).to_have_text("Saved: the new number is on the plan.")
    expect(page.locator(".kr-now")).to_contain_text("9,500 per week now · 38% of the way")
    expect(page.locator(".kr .bar")).to_have_attribute("aria-valuenow", "38")

    # A milestone of theirs, done (the button's name says which, without a stray space).
    expect(first.get_by_role("button")).to_have_accessible_name(f"Mark done: {FIRST}")
    first.get_by_role("button", name="Mark done").click()
    expect(page.get_by_role("status")).to_have_text("Marked done. Nice work!")
    expect(first.locator(".pill")).to_have_text("achieved")
    expect(first.get_by_role("button", name="Mark done")).to_have_count(0)
    expect(first.get_by_role("button")).to_have_accessible_name(f"Undo marking done: {FIRST}")

    page.get_by_label("Add a comment for both teams").fill("Our careers site went live on Monday.")
    page.get_by_role("button", name="Add comment").click()
    expect(page.get_by_role("status")).to_contain_text("Your comment is on the plan")
    expect(page.locator("#history blockquote").first).to_have_text("Our careers site went live on Monday.")

    page.get_by_role("button", name="We reviewed the plan together").click()
    expect(page.get_by_role("status")).to_have_text("Review confirmed. Thank you!")
    expect(page.locator(".plan-meta")).not_to_contain_text("review overdue")
    history = page.locator("#history .log li")
    expect(history.first).to_contain_text("Review confirmed")
    expect(history.first).to_contain_text("Your team (shared link)")

    with database.session() as session:
        plan = session.get(SuccessPlan, shared_plan.plan_id)
        assert plan is not None
        assert [kr.current for kr in plan.key_results] == [9500.0]
        assert plan.milestones[0].status is MilestoneStatus.ACHIEVED
        assert plan.last_reviewed_at is not None
        shared = session.scalars(
            select(PlanRevision).where(PlanRevision.plan_id == plan.id, PlanRevision.channel == "shared")
        ).all()
        assert {r.actor for r in shared} == {"customer via shared link"}
        assert [r.summary.split(":")[0] for r in shared] == [
            plan.key_results[0].title,
            "Milestone achieved",
            "Comment",
            "Review confirmed; next review " + f"{plan.review_date:%B %d, %Y}",
        ]

    page.goto(live_server + shared_plan.path)  # the page as anyone opening the link sees it
    assert scroll_width(page) <= DESKTOP["width"]
    shoot(page, "plan-shared", docs=True)


@pytest.mark.browser
def test_customer_undoes_a_mistaken_mark_done(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    page.goto(live_server + shared_plan.path)
    first = page.locator("table.milestones tbody tr").filter(has_text=FIRST)
    first.get_by_role("button", name="Mark done").click()
    expect(page.get_by_role("status")).to_have_text("Marked done. Nice work!")
    undo = first.get_by_role("button", name=f"Undo marking done: {FIRST}")
    expect(undo).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Undo"))).to_have_count(1)  # only the one they did
    shoot(page, "plan-shared-undo")

    undo.click()

    expect(page.get_by_role("status")).to_have_text("Undone: the milestone is open again.")
    expect(first.locator(".pill")).to_have_text("missed")  # due six days ago, as before the click
    expect(first.get_by_role("button", name="Mark done")).to_be_visible()
    expect(first.get_by_role("button", name=re.compile("^Undo"))).to_have_count(0)
    expect(page.locator("#history .log li").first).to_contain_text(
        f"Your team (shared link) · Milestone reopened: {FIRST}"
    )
    with database.session() as session:
        milestone = session.scalars(
            select(Milestone).where(Milestone.plan_id == shared_plan.plan_id, Milestone.position == 0)
        ).one()
        assert (milestone.status, milestone.achieved_at) == (MilestoneStatus.MISSED, None)

    # On a 360 px phone: the Undo sits in the milestone's block beside its status, nothing sideways.
    page.set_viewport_size(PHONE)
    first.get_by_role("button", name="Mark done").click()
    expect(undo).to_be_visible()
    assert scroll_width(page) <= PHONE["width"]
    assert overflowing_the_card(page) == []
    undo.scroll_into_view_if_needed()
    shoot(page, "plan-shared-undo-mobile")
    undo.click()
    expect(page.get_by_role("status")).to_have_text("Undone: the milestone is open again.")
    expect(first.get_by_role("button", name="Mark done")).to_be_visible()


@pytest.mark.browser
def test_bad_number_is_shown_inline_and_nothing_changes(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    page.goto(live_server + shared_plan.path)
    page.get_by_label("Your number now").fill("about ten thousand")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Update").click()
    assert posted.value.status == 422
    expect(page.locator(".kr .field-error")).to_have_text("Enter a number, like 8,000.")
    expect(page.get_by_label("Your number now")).to_have_value("about ten thousand")
    expect(page.get_by_label("Your number now")).to_have_attribute("aria-invalid", "true")
    with database.session() as session:
        assert session.scalars(select(KeyResult.current)).all() == [8000.0]
    shoot(page, "plan-shared-error")


@pytest.mark.browser
def test_the_target_is_changed_with_its_own_button(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    page.goto(live_server + shared_plan.path)
    page.get_by_text("Change the target").click()
    target = page.get_by_label("Target (per week; it started at 8,000)")
    target.fill("15,000")
    shoot(page, "plan-shared-target")
    page.get_by_role("button", name="Save the target").click()
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator(".kr .muted").first).to_contain_text("to 15,000")
    with database.session() as session:
        assert session.scalars(select(KeyResult.target)).all() == [15000.0]
        assert session.scalars(select(KeyResult.current)).all() == [8000.0]


@pytest.mark.browser
def test_shared_plan_on_a_360px_phone(
    page: Page, live_server: str, shared_plan: SharedPlan, database: Database, traffic: Traffic
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server + shared_plan.path)
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    assert scroll_width(page) <= PHONE["width"], "the plan must not scroll sideways on a phone"
    assert overflowing_the_card(page) == []
    # Touch targets: the buttons a customer taps are at least 32 px tall.
    for name in ("Update", "We reviewed the plan together", "Add comment", f"Mark done: {FIRST}"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["height"] >= 32, name

    first = page.locator("table.milestones tbody tr").filter(has_text=FIRST)
    first.get_by_role("button", name="Mark done").click()
    expect(first.locator(".pill")).to_have_text("achieved")
    assert scroll_width(page) <= PHONE["width"]
    with database.session() as session:
        status = session.scalar(
            select(Milestone.status).where(Milestone.plan_id == shared_plan.plan_id, Milestone.position == 0)
        )
        assert status is MilestoneStatus.ACHIEVED
    shoot(page, "plan-shared-mobile", docs=True)


@pytest.mark.browser
def test_printed_shared_plan_hides_forms_and_fits_one_page(
    page: Page, live_server: str, shared_plan: SharedPlan, traffic: Traffic
) -> None:
    page.goto(live_server + shared_plan.path)
    expect(page.locator("form").first).to_be_visible()
    page.emulate_media(media="print")
    for form in page.locator("form").all():
        expect(form).to_be_hidden()
    visible_buttons = [b for b in page.get_by_role("button").all() if b.is_visible()]
    assert visible_buttons == []
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("#history")).to_be_hidden()
    expect(page.locator(".plan-meta")).to_contain_text("Acme Inc")
    expect(page.get_by_role("heading", name="Our goal")).to_be_visible()
    expect(page.get_by_role("heading", name="Your people")).to_be_visible()
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    shoot(page, "plan-shared-print", docs=True)
    for paper in ("A4", "Letter"):
        pdf = page.pdf(format=paper)
        assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, f"more than one {paper} page"


@pytest.mark.browser
def test_shared_plan_works_without_javascript(
    browser: Browser, live_server: str, shared_plan: SharedPlan, database: Database
) -> None:
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(live_server + shared_plan.path)
        expect(page.get_by_role("button", name="Print / Save as PDF")).to_be_hidden()
        page.get_by_label("Your number now").fill("10000")
        page.get_by_role("button", name="Update").click()
        expect(page.get_by_role("status")).to_have_text("Saved: the new number is on the plan.")
        assert "saved=kr" in page.url
    finally:
        context.close()
    with database.session() as session:
        assert session.scalars(select(KeyResult.current)).all() == [10000.0]


@pytest.mark.browser
def test_shared_plan_in_dark_mode(browser: Browser, live_server: str, shared_plan: SharedPlan) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="dark")
    try:
        page = context.new_page()
        page.goto(live_server + shared_plan.path)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(21, 25, 31)"
        shoot(page, "plan-shared-dark")
    finally:
        context.close()
