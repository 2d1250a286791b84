"""People and privacy in real headless Chromium: an admin invites an editor, who accepts and signs
in; then the admin exports a contact's data, erases the contact with a typed confirmation, and
reads both in the audit log. Screenshots go to docs/screenshots/people-*.png and privacy-*.png."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Browser, Page, expect

from campaigns.sink import SendGridSink
from engine.db import Database
from engine.users import Role, create_user
from engine.workspaces import ensure_workspace
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.test_privacy import CHAMP, customer_with_history

ADMIN = "ada@northstar.example"


@pytest.fixture
def champion(database: Database) -> int:
    with database.transaction() as session:
        create_user(session, ADMIN, PASSWORD, role=Role.ADMIN, name="Ada Admin")
        ensure_workspace(session, "default", name="Acme Hiring", origins=["https://app.acme.example"])
        return customer_with_history(session).id


def sign_in(page: Page, live_server: str, email: str, target: str) -> None:
    sign_in_console(page, live_server, email, target)
    expect(page).to_have_url(live_server + target)


@pytest.mark.browser
@pytest.mark.slow
def test_invite_accept_then_export_and_erase_a_contact(
    browser: Browser, page: Page, live_server: str, champion: int, sink: SendGridSink, problems: list[str]
) -> None:
    sign_in(page, live_server, ADMIN, "/admin/people")
    invite = page.get_by_role("form", name="Invite someone")
    invite.get_by_label("Email").fill("nina@example.com")
    invite.get_by_label("Role").select_option("editor")
    invite.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation sent to nina@example.com (editor)")
    expect(page.get_by_role("region", name="Open invitations")).to_contain_text("pending until")
    shoot(page, "people-invite", docs=True)

    email = next(m for m in sink.messages() if m.to == "nina@example.com")
    link = re.search(r"http://northstar\.test(/admin/invite/\S+)", email.text or "")
    assert link, email.text
    invitee = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light").new_page()
    invitee.set_default_timeout(10_000)
    try:
        invitee.goto(live_server + link.group(1))
        expect(invitee.get_by_text("You were invited as editor")).to_be_visible()
        invitee.get_by_label("Your name").fill("Nina Ops")
        invitee.get_by_label(re.compile(r"^Password at least")).fill(PASSWORD)
        invitee.get_by_label("Password again").fill("not the same one")
        invitee.get_by_role("button", name="Create my account").click()
        expect(invitee.locator("#confirm-error")).to_have_text("the two passwords differ")
        invitee.get_by_label(re.compile(r"^Password at least")).fill(PASSWORD)
        invitee.get_by_label("Password again").fill(PASSWORD)
        shoot(invitee, "people-accept", docs=True)
        invitee.get_by_role("button", name="Create my account").click()
        expect(invitee.get_by_role("status")).to_contain_text("Your account is ready")
        sign_in(invitee, live_server, "nina@example.com", "/admin/rules")
        expect(invitee.locator(".who")).to_contain_text("editor")
    finally:
        invitee.context.close()

    page.goto(live_server + "/admin/people")
    expect(page.get_by_role("region", name="Users")).to_contain_text("Nina Ops")
    shoot(page, "people-list", docs=True)

    page.goto(f"{live_server}/admin/contacts/{champion}/audit")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export data").click()
    exported = json.loads(download.value.path().read_text())
    assert exported["contact"]["email"] == CHAMP
    assert {"surveys", "campaigns", "plans", "events"} <= set(exported)
    page.get_by_role("link", name="Erase contact…").click()
    expect(page.get_by_role("heading", name="Privacy requests")).to_be_visible()
    page.get_by_label("Type champ@acme.example to confirm").fill("champ@acme")
    page.get_by_role("button", name="Erase contact").click()
    expect(page.get_by_role("alert")).to_contain_text("Type the contact's email")
    page.get_by_label("Type champ@acme.example to confirm").fill(CHAMP)
    shoot(page, "privacy-erase", docs=True)
    page.get_by_role("button", name="Erase contact").click()
    expect(page.get_by_role("status")).to_contain_text(f"Contact {champion} is erased")
    expect(page.get_by_role("heading", name=f"Contact {champion} was erased")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text(CHAMP)
    shoot(page, "privacy-erased", docs=True)

    page.goto(live_server + "/admin/audit")
    log = page.get_by_role("region", name="Changes")
    expect(log.locator("tr", has_text="erased").first).to_contain_text(f"Contact {champion}")
    expect(log).to_contain_text("exported")
    expect(log).to_contain_text("nina@example.com")
    shoot(page, "people-audit-log", docs=True)
    page.goto(live_server + "/admin/settings")
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    shoot(page, "people-settings", docs=True)
