"""In-app messages in the widget, in real headless Chromium, on a host page of another origin.

A scheduler tick writes the in-app messages (the recruiting nurture's "Your success plan is ready"
card, and a tip from a second campaign); the host page identifies Sofia, and her cards come up by
themselves in the widget's shadow root. The app runs on 127.0.0.1, the host page on localhost."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.models import Message, MessageStatus
from campaigns.scheduler import run_tick
from engine.db import Database, utcnow
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook
from tests.browser.host_pages import HOSTILE_CSS, HostSite
from tests.browser.widget_harness import (
    PHONE,
    Embed,
    animations_done,
    focused,
    in_shadow,
    make_embed,
    shoot,
    wait_until,
)
from tests.factories import make_account
from tests.test_inapp import with_campaigns

TIP = {
    "key": "screening_tip",
    "kind": "in_app",
    "body": (
        "<p><strong>Tip: screen applicants in minutes</strong></p>"
        "<p>Three knockout questions filter out most unsuitable applicants before you read a CV. "
        '<a href="{{ content[0].url }}">{{ content[0].title }}</a></p>'
    ),
}
TIPS = {
    "key": "tips",
    "name": "Tips",
    "steps": [
        {
            "key": "tip",
            "kind": "in_app",
            "template": "screening_tip",
            "to": ["champion"],
            "content": ["screening-questions-that-save-time"],
        }
    ],
}
PLAN_CARD = "Your success plan is ready"
TIP_CARD = "Tip: screen applicants in minutes"


@pytest.fixture
def embed(database: Database, recruiting: dict[str, int], live_server: str, host_site: HostSite) -> Embed:
    """The recruiting playbook (plus a tips campaign), a workspace that allows the host's origin,
    and one scheduler tick: Sofia, Acme's champion, has two in-app messages."""
    found = make_embed(database, live_server, host_site, [host_site.origin])
    now = utcnow()
    with database.transaction() as session:
        import_playbook(session, with_campaigns(TIPS, templates=[TIP]))
        account = make_account(session, "acme")
        create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=now)
        enroll_account(session, account.id, "nurture", now=now, reason="test")
        session.flush()
        run_tick(session, now=now, caps=Caps(0, 0))
        enroll_account(session, account.id, "tips", now=now, reason="test")
        session.flush()
        run_tick(session, now=now, caps=Caps(0, 0))
    return found


def statuses(database: Database) -> dict[str, MessageStatus]:
    """Each in-app message's status, by the step that wrote it."""
    with database.session() as session:
        rows = session.scalars(select(Message).where(Message.channel == "in_app"))
        return {m.trace["step"]: m.status for m in rows}


def inbox_region(page: Page) -> Locator:
    return page.get_by_role("region", name="Messages")


def card(page: Page, text: str) -> Locator:
    return inbox_region(page).get_by_role("article").filter(has_text=text)


@pytest.mark.browser
def test_cards_show_after_identify_and_report_clicks_and_dismissals(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    assert statuses(embed.database) == {"plan_ready": MessageStatus.QUEUED, "tip": MessageStatus.QUEUED}
    page.goto(embed.page_url(show=None))
    region = inbox_region(page)
    expect(region).to_be_visible()
    expect(region.get_by_role("article")).to_have_count(2)
    expect(region.get_by_role("article").first).to_contain_text(TIP_CARD)  # newest first
    plan_card = card(page, PLAN_CARD)
    expect(plan_card).to_contain_text("Sofia, Acme Inc's plan is one page")
    wait_until(lambda: set(statuses(embed.database).values()) == {MessageStatus.SEEN})
    box = region.bounding_box()
    assert box is not None and box["x"] + box["width"] == 1280 and box["y"] + box["height"] == 800
    assert page.get_by_role("dialog").count() == 0, "cards are not modal"
    shoot(page, "widget-inbox", docs=True)

    link = plan_card.get_by_role("link", name="Open your success plan")
    expect(link).to_have_attribute("href", re.compile(r"^http://northstar\.test/p/"))
    expect(link).to_have_attribute("target", "_blank")
    with page.context.expect_page() as opened:
        link.click()
    opened.value.close()
    wait_until(lambda: statuses(embed.database)["plan_ready"] is MessageStatus.CLICKED)

    tip = card(page, TIP_CARD)
    tip.get_by_role("button", name="Dismiss").click()
    expect(tip).to_have_count(0)
    wait_until(lambda: statuses(embed.database)["tip"] is MessageStatus.DISMISSED)
    expect(plan_card).to_be_visible()
    assert statuses(embed.database) == {"plan_ready": MessageStatus.CLICKED, "tip": MessageStatus.DISMISSED}

    # Clicked and dismissed cards do not come back.
    page.reload()
    page.wait_for_function("window.Northstar && window.Northstar.version === 1")
    assert page.evaluate("Northstar.inbox()") == {"status": "empty"}
    expect(inbox_region(page)).to_have_count(0)


@pytest.mark.browser
def test_keyboard_only(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(show=None))
    expect(inbox_region(page).get_by_role("article")).to_have_count(2)
    assert page.evaluate("document.activeElement === document.body"), "non-modal: focus stays put"

    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "open"  # the host's own button first
    page.keyboard.press("Tab")
    first = focused(page)
    assert (
        first["tag"] == "a"
        and first["name"] == "Screening questions that pre-screen candidates for you"
        and first["outline"]
    )
    page.keyboard.press("Tab")
    dismiss = focused(page)
    assert dismiss == {"tag": "button", "type": "button", "name": "Dismiss", "outline": True}
    page.keyboard.press("Enter")  # dismisses the tip; focus moves to the next card's Dismiss
    expect(card(page, TIP_CARD)).to_have_count(0)
    assert focused(page)["name"] == "Dismiss"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page)["name"] == "Open your success plan"
    with page.context.expect_page() as opened:
        page.keyboard.press("Enter")
    opened.value.close()
    wait_until(lambda: statuses(embed.database)["plan_ready"] is MessageStatus.CLICKED)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "Dismiss"
    page.keyboard.press("Space")
    expect(inbox_region(page)).to_have_count(0)
    # Dismissing the clicked card is final too (campaigns.inapp.record_action); the click is kept.
    final = {"plan_ready": MessageStatus.DISMISSED, "tip": MessageStatus.DISMISSED}
    wait_until(lambda: statuses(embed.database) == final)
    with embed.database.session() as session:
        clicked = session.scalars(
            select(Message).where(Message.channel == "in_app", Message.clicked_at.is_not(None))
        )
        assert [m.trace["step"] for m in clicked] == ["plan_ready"]


@pytest.mark.browser
def test_phone_width(phone: Page, embed: Embed) -> None:
    page = phone
    page.goto(embed.page_url(show=None))
    region = inbox_region(page)
    expect(region.get_by_role("article")).to_have_count(2)
    for article in region.get_by_role("article").all():
        box = article.bounding_box()
        assert box is not None and box["x"] >= 8 and box["x"] + box["width"] <= PHONE["width"] - 8
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "widget-inbox-phone")
    card(page, PLAN_CARD).get_by_role("button", name="Dismiss").click()
    wait_until(lambda: statuses(embed.database)["plan_ready"] is MessageStatus.DISMISSED)


@pytest.mark.browser
def test_hostile_host_css_does_not_break_the_cards(widget_page: Page, embed: Embed) -> None:
    page = widget_page
    page.goto(embed.page_url(show=None, css=HOSTILE_CSS))
    region = inbox_region(page)
    expect(region.get_by_role("article")).to_have_count(2)
    animations_done(page)
    looks = in_shadow(
        page,
        """root => ({
          font: getComputedStyle(root.querySelector('article')).fontSize,
          dismiss: root.querySelector('article button').getBoundingClientRect().height,
          position: getComputedStyle(root.querySelector('[role=region]')).position,
        })""",
    )
    assert looks == {"font": "15px", "dismiss": 32, "position": "fixed"}
    card(page, TIP_CARD).get_by_role("button", name="Dismiss").click()
    wait_until(lambda: statuses(embed.database)["tip"] is MessageStatus.DISMISSED)
