"""The content admin in real headless Chromium: filter the library, open an item, dry-run a CSV
import, edit a template with a typo (refused, field named), preview it for a real contact at
desktop and mobile widths, send a test, and follow a tracked link. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from campaigns.sink import SendGridSink
from content.library import save_item
from content.models import ContentClick, ContentItem
from content.schemas import ContentItemSchema
from content.tracking import click_token
from engine.accounts import ContactRole
from engine.db import Database
from engine.plans.service import create_plan, get_template
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.conftest import SECRET
from tests.factories import make_account

EMAIL = "erin@northstar.example"


@pytest.fixture
def library(database: Database, recruiting: object) -> None:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.EDITOR, name="Erin Editor")
        account = make_account(
            session,
            "acme",
            contacts=(
                ("sofia@acme.example", ContactRole.CHAMPION),
                ("dana@acme.example", ContactRole.EXEC_SPONSOR),
            ),
        )
        create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=account.created_at)
        hosted = {
            "key": "first-week-checklist",
            "kind": "checklist",
            "title": "Your first week: a checklist",
            "summary": "Five things to do before your first job goes live.",
            "minutes": 4,
            "body": "## Before you post\n\n1. Name an owner for the careers site\n2. Agree the numbers\n\n"
            "**Tip:** read [the five-minute application](https://help.northstar.example/apply).",
        }
        save_item(session, ContentItemSchema().load(hosted))


@pytest.mark.browser
def test_editor_browses_imports_fixes_a_template_previews_and_sends_a_test(
    page: Page, live_server: str, library: None, problems: list[str], sink: SendGridSink, database: Database
) -> None:
    sign_in_console(page, live_server, EMAIL, "/admin/content")
    expect(page).to_have_url(live_server + "/admin/content")
    expect(page.get_by_role("heading", name="Content library", level=1)).to_be_visible()
    expect(page.locator("tr[data-item]")).to_have_count(11)
    shoot(page, "admin-content", docs=True)

    page.get_by_label("Stage").select_option("enablement")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr[data-item]")).to_have_count(1)
    page.get_by_role("link", name="Field manager hiring kit: from open role to accepted offer").click()
    expect(page.get_by_label("Title")).to_have_value(
        "Field manager hiring kit: from open role to accepted offer"
    )
    expect(page.locator("#f-tags-stages input[value=enablement]")).to_be_checked()
    shoot(page, "admin-content-item", docs=True)

    page.get_by_role("link", name="Import CSV").click()
    page.get_by_label("…or paste the CSV").fill(
        "key,kind,title,url,milestones,stages\n"
        "intro-video,video,Intro video,https://x.example/v,first_job_posted,onboarding\n"
        "broken,podcast,Broken,https://x.example/b,moon_landing,winter\n"
    )
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".errors-table tr.bad")).to_have_count(3)
    expect(page.locator(".errors-table")).to_contain_text("Must be one of: article")
    expect(page.locator(".errors-table")).to_contain_text("unknown milestone 'moon_landing'")
    shoot(page, "admin-content-import", docs=True)

    page.get_by_role("link", name="Templates").click()
    page.get_by_role("link", name="next_step").click()
    subject = page.get_by_role("textbox", name="Subject email only")
    subject.fill("Next up for {{ acount.name }}")
    page.get_by_role("button", name="Check and save").click()
    expect(page.locator("#err-subject")).to_contain_text("'acount' is undefined")
    shoot(page, "admin-content-template-error", docs=True)
    subject.fill("Your next step at {{ account.name }}: {{ next_milestone.title }}")
    page.get_by_role("button", name="Check and save").click()
    expect(page.get_by_role("status")).to_contain_text("version 2")

    page.get_by_role("link", name="Preview").first.click()
    page.get_by_label("Preview for").select_option(label="sofia@acme.example · Acme Inc")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("[data-subject]")).to_have_text(
        "Your next step at Acme Inc: Publish your first job on the new careers site"
    )
    desktop = page.frame_locator("iframe[title='Desktop preview']")
    expect(desktop.locator("body")).to_contain_text("Hi Sofia")
    expect(page.frame_locator("iframe[title='Mobile preview']").locator("body")).to_contain_text("Hi Sofia")
    expect(page.locator("[data-text]")).to_contain_text("Unsubscribe: http://northstar.test/u/")
    expect(page.locator(".why-list li").first).to_contain_text("helps with the next milestone")
    shoot(page, "admin-content-preview", docs=True)

    page.get_by_label("Send a test to").fill("qa@northstar.example")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("Test sent to qa@northstar.example")
    assert sink.messages()[-1].to == "qa@northstar.example"
    # the page came back with both previews loading again: let them finish before navigating away,
    # or the browser aborts their requests (which the traffic check rightly reports)
    expect(desktop.locator("body")).to_contain_text("Hi Sofia")
    expect(page.frame_locator("iframe[title='Mobile preview']").locator("body")).to_contain_text("Hi Sofia")
    page.wait_for_load_state("load")

    link = desktop.locator("a[href*='/t/']").first.get_attribute("href")
    assert link is not None
    tampered = page.request.get(
        link.replace("http://northstar.test", live_server)[:-3] + "xyz", max_redirects=0
    )
    assert tampered.status == 400
    page.goto(link.replace("http://northstar.test", live_server)[:-3] + "xyz")
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    shoot(page, "track-invalid", docs=True)
    followed = page.request.get(link.replace("http://northstar.test", live_server), max_redirects=0)
    assert followed.status == 302 and followed.headers["location"].startswith(
        "https://help.northstar.example/"
    )
    with database.session() as session:
        assert session.scalar(select(ContentClick.message_id)) is None  # a preview link names no message
        hosted_id = session.scalar(select(ContentItem.id).where(ContentItem.key == "first-week-checklist"))
    page.goto(f"{live_server}/t/{click_token(SECRET, int(hosted_id or 0), None)}")  # an item with no URL
    expect(page.get_by_role("heading", name="Your first week: a checklist")).to_be_visible()
    expect(page.get_by_role("link", name="the five-minute application")).to_have_attribute(
        "rel", "noopener noreferrer"
    )
    shoot(page, "track-item", docs=True)


@pytest.mark.browser
def test_library_rows_line_up_and_each_kind_stays_on_one_line(
    page: Page, live_server: str, library: None, problems: list[str]
) -> None:
    sign_in_console(page, live_server, EMAIL, "/admin/content")
    expect(page.locator("tr[data-item]")).to_have_count(11)
    # Every cell of a row starts and ends where the row does (so their borders are one line), and
    # no kind pill ("Template download") breaks over two lines.
    rows = page.evaluate(
        """() => [...document.querySelectorAll("tr[data-item]")].map((tr) => ({
            item: tr.dataset.item,
            edges: [...new Set([...tr.cells].map((td) => {
              const box = td.getBoundingClientRect();
              return `${Math.round(box.top)}-${Math.round(box.bottom)}`;
            }))],
            kind: (() => {
              const pill = tr.querySelector(".pill");
              return pill.getBoundingClientRect().height / parseFloat(getComputedStyle(pill).fontSize);
            })(),
        }))"""
    )
    uneven = [row for row in rows if len(row["edges"]) != 1]
    assert not uneven, f"cells of a row at different heights: {uneven}"
    wrapped = [row for row in rows if row["kind"] >= 2.5]  # one line is about 1.8 em high
    assert not wrapped, f"kind pills on two lines: {wrapped}"
    shoot(page, "admin-content-rows")

    page.set_viewport_size({"width": 360, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "admin-content-360")
