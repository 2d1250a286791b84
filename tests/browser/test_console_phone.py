"""The console's admin pages in real headless Chromium at 1280 and 360 px: settings (with a long
token name), people, the audit log after ordinary work (a rules draft, a new campaign) and the
survey preview never scroll sideways; stacked tables keep the card's padding on every line on a
phone; and a refused workspace or API token comes back with what was typed. Screenshots go to
test-artifacts/screenshots/console-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine.apitokens import ApiToken, create_token
from engine.db import Database, utcnow
from engine.plans.models import Milestone, MilestoneStatus
from engine.users import Role, create_user, invite_user
from engine.workspaces import Workspace, ensure_workspace
from tests.admin_client import PASSWORD
from tests.browser.conftest import shoot
from tests.browser.console_pages import sign_in_console
from tests.conftest import SECRET
from tests.test_admin_accounts import build_story

ADMIN = "ada@northstar.example"
PHONE = {"width": 360, "height": 800}
# No space or hyphen anywhere: the browser may only break it where the page allows any break.
LONG_TOKEN = "warehouse_nightly_sync_for_the_recruiting_integration_in_the_staging_environment_eu_west_1"
ORIGINS = ["https://app.acme.example"]


@pytest.fixture
def console(database: Database) -> None:
    """The recruiting playbook, an account with a plan whose milestone is behind, an admin, an
    open invitation, the default workspace and an API token with a long name."""
    build_story(database)
    with database.transaction() as session:
        create_user(session, ADMIN, PASSWORD, role=Role.ADMIN, name="Ada Admin")
        invite_user(
            session,
            "recruiting-operations-lead@field-hiring.acme.example",
            Role.EDITOR,
            invited_by=ADMIN,
            secret=SECRET,
            now=utcnow(),
        )
        ensure_workspace(session, "default", name="Acme Hiring", origins=ORIGINS)
        create_token(session, LONG_TOKEN, Role.VIEWER)
        milestone = session.scalars(select(Milestone).order_by(Milestone.id)).first()
        assert milestone is not None
        milestone.status = MilestoneStatus.BEHIND


def sign_in(page: Page, live_server: str, target: str) -> None:
    sign_in_console(page, live_server, ADMIN, target)
    expect(page).to_have_url(live_server + target)


def sideways(page: Page) -> str:
    """Empty when the page is no wider than the window; else how wide it is and what sticks out."""
    found: str = page.evaluate(
        """() => {
          const width = window.innerWidth, page = document.documentElement.scrollWidth;
          if (page <= width) return "";
          const out = [...document.querySelectorAll("main *")]
            .filter((e) => e.getBoundingClientRect().right > width + 0.5)
            .map((e) => {
              const name = [e.tagName.toLowerCase(), ...e.classList].join(".");
              return `${name} ends at ${Math.round(e.getBoundingClientRect().right)}`;
            });
          return `${page} px wide at ${width} px: ${out.slice(-6).join("; ")}`;
        }"""
    )
    return found


def fits(page: Page, name: str) -> None:
    shoot(page, name)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), sideways(page)


@pytest.mark.browser
@pytest.mark.slow
def test_settings_people_audit_and_survey_preview_never_scroll_sideways(
    page: Page, live_server: str, console: None, problems: list[str]
) -> None:
    # Ordinary work that writes long values to the audit log: a rules draft and a new campaign.
    sign_in(page, live_server, "/admin/rules")
    page.get_by_role("button", name="Start a draft").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft: version")
    page.goto(live_server + "/admin/campaigns/new")
    page.get_by_label("Name").fill("Quarterly review nudges")
    page.get_by_label("Key").fill("quarterly_review")
    page.get_by_label("Description").fill("Reminds the champion of the review date " * 6)
    page.get_by_role("button", name="Create and open the builder").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Quarterly review nudges")

    page.goto(live_server + "/admin/audit")
    log = page.get_by_role("region", name="Changes")
    expect(log.locator("tr", has_text="Campaign draft")).to_have_count(1)
    document = log.locator("tr", has_text="Campaign draft").locator("details", has_text="document")
    expect(document.locator(".audit-value")).to_be_hidden()  # long values start folded
    fits(page, "console-audit-long")
    document.locator("summary").click()
    expect(document.locator(".audit-value")).to_contain_text('"description": "Reminds the champion')
    fits(page, "console-audit-long-open")

    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 800})
        for path, name in (
            ("/admin/settings", "console-settings"),
            ("/admin/people", "console-people"),
            ("/admin/audit", "console-audit"),
            ("/admin/surveys/outcomes/preview", "console-survey-preview"),
        ):
            page.goto(live_server + path)
            expect(page.locator("main h1")).to_be_visible()
            fits(page, f"{name}-{width}")
            if path == "/admin/settings":
                tokens = page.get_by_role("region", name="API tokens")
                card, box = tokens.bounding_box(), tokens.get_by_text(LONG_TOKEN).bounding_box()
                assert card and box and box["x"] + box["width"] <= card["x"] + card["width"], "the name wraps"
            if path == "/admin/people":
                expect(page.get_by_role("region", name="Open invitations")).to_contain_text("pending until")
            if path == "/admin/audit":
                page.locator("tr", has_text="Campaign draft").locator("details summary").first.click()
                fits(page, f"console-audit-open-{width}")

    # On the phone, a new token's secret (shown once) wraps too.
    page.goto(live_server + "/admin/settings")
    tokens = page.get_by_role("region", name="API tokens")
    tokens.get_by_label("Token name").fill("dashboards")
    tokens.get_by_role("button", name="Create token").click()
    expect(tokens.get_by_role("status")).to_contain_text("shown only this once")
    fits(page, "console-settings-new-token-360")


@pytest.mark.browser
def test_stacked_tables_keep_the_cards_padding_on_every_line_on_a_phone(
    page: Page, live_server: str, console: None, problems: list[str]
) -> None:
    sign_in(page, live_server, "/admin/")
    page.set_viewport_size(PHONE)
    for path, table, name in (
        ("/admin/", ".risk-table", "console-dashboard-360"),
        ("/admin/rules", ".rules-table", "console-rules-360"),
    ):
        page.goto(live_server + path)
        expect(page.locator(table)).to_be_visible()
        shoot(page, name)
        # Every cell's content keeps at least 16 px from the card's edges, and the cells that begin
        # a line (the first, and those that wrapped) all start at the same inset.
        cells = page.evaluate(
            """(table) => {
              const card = document.querySelector(table).closest(".card").getBoundingClientRect();
              return [...document.querySelectorAll(`${table} tbody tr`)].flatMap((tr) => {
                let above = -Infinity;
                return [...tr.cells].map((td) => {
                  const box = td.getBoundingClientRect(), style = getComputedStyle(td);
                  const starts = box.top >= above - 1;
                  above = Math.max(above, box.bottom);
                  return {label: td.dataset.label || "first", starts,
                          left: Math.round(box.left + parseFloat(style.paddingLeft) - card.left),
                          right: Math.round(card.right - box.right + parseFloat(style.paddingRight))};
                });
              });
            }""",
            table,
        )
        assert cells, f"no rows in {table}"
        tight = [c for c in cells if c["left"] < 16 or c["right"] < 16]
        assert not tight, f"{path}: cells closer than 16 px to the card's edge: {tight}"
        insets = {c["left"] for c in cells if c["starts"]}
        assert len(insets) == 1, f"{path}: lines start at different insets: {cells}"


@pytest.mark.browser
def test_a_refused_workspace_comes_back_with_what_was_typed_and_the_error_beside_the_field(
    page: Page, live_server: str, console: None, database: Database, problems: list[str]
) -> None:
    sign_in(page, live_server, "/admin/settings")
    form = page.get_by_role("form", name="Workspace default")
    form.get_by_label("Name").fill("Acme Recruiting")
    form.get_by_label("Allowed origins").fill("https://careers.acme.example\nnot a url")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        form.get_by_role("button", name="Save workspace").click()
    assert posted.value.status == 422
    form = page.get_by_role("form", name="Workspace default")
    expect(form.get_by_label("Name")).to_have_value("Acme Recruiting")
    expect(form.get_by_label("Allowed origins")).to_have_value("https://careers.acme.example\nnot a url")
    origins = form.get_by_label("Allowed origins")
    expect(origins).to_have_attribute("aria-invalid", "true")
    expect(origins).to_have_accessible_description(
        "'not a url' is not an origin like https://app.example.com"
    )
    expect(form.get_by_label("Name")).not_to_have_attribute("aria-invalid", "true")
    shoot(page, "console-settings-workspace-refused")
    with database.session() as session:
        saved = session.scalars(select(Workspace).where(Workspace.key == "default")).one()
        assert (saved.name, saved.allowed_origins) == ("Acme Hiring", ORIGINS)  # nothing was saved

    # Fixed, it saves, and the page shows what is stored.
    form.get_by_label("Allowed origins").fill("https://careers.acme.example")
    form.get_by_role("button", name="Save workspace").click()
    expect(page.get_by_role("status")).to_contain_text("Workspace default saved.")
    form = page.get_by_role("form", name="Workspace default")
    expect(form.get_by_label("Name")).to_have_value("Acme Recruiting")
    expect(form.get_by_label("Allowed origins")).to_have_value("https://careers.acme.example")


@pytest.mark.browser
def test_a_refused_api_token_comes_back_with_the_name_and_role_typed(
    page: Page, live_server: str, console: None, database: Database, problems: list[str]
) -> None:
    sign_in(page, live_server, "/admin/settings")
    form = page.get_by_role("form", name="New API token")
    form.get_by_label("Token name").fill(LONG_TOKEN)  # taken already
    form.get_by_label("Role").select_option("editor")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        form.get_by_role("button", name="Create token").click()
    assert posted.value.status == 422
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    form = page.get_by_role("form", name="New API token")
    expect(form.get_by_label("Token name")).to_have_value(LONG_TOKEN)
    expect(form.get_by_label("Role")).to_have_value("editor")
    with database.session() as session:
        roles = session.scalars(select(ApiToken.role).where(ApiToken.name == LONG_TOKEN)).all()
    assert roles == [Role.VIEWER]  # the first token is untouched, and no second one was made


@pytest.mark.browser
def test_settings_give_the_embed_snippet_and_the_secret_and_rotating_asks_first(
    page: Page, live_server: str, console: None, database: Database, problems: list[str]
) -> None:
    with database.session() as session:
        before = session.scalars(select(Workspace).where(Workspace.key == "default")).one().jwt_secret
    sign_in(page, live_server, "/admin/settings")
    embed = page.get_by_role("group", name="Embed the widget for default")
    expect(embed.locator("pre.snippet")).to_contain_text(
        '/embed/v1/widget.js" data-workspace="default" async>'
    )
    expect(embed.locator("pre.snippet")).to_contain_text("window.Northstar=window.Northstar||")
    secret = embed.locator("details.secret code")
    expect(secret).to_be_hidden()
    embed.get_by_text("Show the signing secret").click()
    expect(secret).to_have_text(before)
    # One click opens the confirmation; only its own button rotates.
    embed.get_by_text("Rotate the widget secret…").click()
    shoot(page, "console-settings-rotate-confirm")
    with database.session() as session:
        assert session.scalars(select(Workspace.jwt_secret).where(Workspace.key == "default")).one() == before
    embed.get_by_role("button", name="Rotate the secret of default").click()
    expect(page.get_by_role("status")).to_contain_text("has a new widget secret")
    with database.session() as session:
        after = session.scalars(select(Workspace).where(Workspace.key == "default")).one()
        assert after.jwt_secret != before and after.previous_jwt_secret == before
    embed = page.get_by_role("group", name="Embed the widget for default")
    embed.get_by_text("Show the signing secret").click()
    expect(embed.locator("details.secret code")).to_have_text(after.jwt_secret)
    fits(page, "console-settings-embed-1280")
    page.set_viewport_size(PHONE)
    fits(page, "console-settings-embed-360")


@pytest.mark.browser
def test_deactivating_asks_first_and_the_last_admin_is_told_on_the_people_page(
    page: Page, live_server: str, console: None, database: Database, problems: list[str]
) -> None:
    with database.transaction() as session:
        create_user(session, "eve@acme.example", PASSWORD, role=Role.EDITOR, name="Eve Editor")
    sign_in(page, live_server, "/admin/people")
    eve = page.locator("tr", has_text="eve@acme.example")
    eve.get_by_text("Deactivate…").click()
    expect(eve.get_by_role("button", name="Deactivate Eve Editor")).to_be_visible()
    eve.get_by_role("button", name="Deactivate Eve Editor").click()
    expect(page.get_by_role("status")).to_contain_text("eve@acme.example is deactivated")
    me = page.locator("tr", has_text=ADMIN)
    me.get_by_text("Deactivate…").click()
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        me.get_by_role("button", name="Deactivate Ada Admin").click()
    assert posted.value.status == 409
    expect(page.get_by_role("heading", name="People", exact=True)).to_be_visible()
    expect(page.locator("tr", has_text=ADMIN).locator(".field-error")).to_have_text(
        f"{ADMIN} is the last admin: make someone else an admin first."
    )
    shoot(page, "console-people-last-admin")
