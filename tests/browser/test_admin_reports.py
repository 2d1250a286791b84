"""The console's reports in real headless Chromium, light and dark: the index of six cards, the
campaign funnel and holdout lift with their charts and tables, a bad filter answered inline, and
the weekly digest email. Screenshots go to docs/screenshots/reports-*.png."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, text

from campaigns.digest_compose import compose_digest, summarise
from campaigns.digests import week_due
from engine.db import Database, utcnow
from engine.users import Role, create_user
from tests.admin_client import PASSWORD
from tests.browser.conftest import Traffic, shoot
from tests.browser.console_pages import sign_in_console
from web.admin import reports as admin_reports

EMAIL = "vera@northstar.example"
ACCOUNTS = 600


@pytest.fixture
def report_data(pg_engine: Engine, database: Database) -> None:
    """A few hundred accounts with everything the six reports read, from the benchmark's generator
    (the same SQL at 1/1000 of its scale), plus a viewer to sign in as."""
    from bench.seed_reports import SEQUENCES, STEPS
    from surveys.reports import REBUILD_CHOICES_SQL

    with pg_engine.begin() as conn:
        for _name, statement in STEPS:
            sql = REBUILD_CHOICES_SQL if statement == "REBUILD_CHOICES" else statement
            sql = sql.replace(":n", str(ACCOUNTS)).replace(":e", "3")
            for part in (p for p in sql.split(";\n") if p.strip()):
                conn.exec_driver_sql(part.replace("%", "%%"))
        for table in SEQUENCES:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
            )
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.VIEWER, name="Vera Viewer")


def sign_in(page: Page, live_server: str) -> None:
    sign_in_console(page, live_server, EMAIL, "/admin/reports")
    expect(page).to_have_url(f"{live_server}/admin/reports")


def visit(page: Page, url: str, shot: str, dark: Page) -> None:
    page.goto(url)
    shoot(page, shot, docs=True)
    dark.goto(url)
    shoot(dark, f"{shot}-dark", docs=True)


@pytest.mark.browser
@pytest.mark.slow
def test_reports_index_and_two_reports_in_light_and_dark(
    browser: Browser,
    page: Page,
    live_server: str,
    traffic: Traffic,
    report_data: None,
    database: Database,
    run_worker: Callable[[], bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sign_in(page, live_server)
    signed_in = page.context.storage_state()
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="dark", storage_state=signed_in
    )
    dark = context.new_page()
    try:
        cards = page.locator(".report-card")
        expect(cards).to_have_count(6)
        expect(cards.first.locator("dd").first).not_to_have_text("")
        visit(page, f"{live_server}/admin/reports", "reports-index", dark)

        page.get_by_role("link", name="Campaign funnel").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Campaign funnel")
        chart = page.get_by_role("img").first
        expect(chart).to_be_visible()
        expect(page.locator(".chart-block table").first).to_contain_text("Enrolled")
        expect(page.get_by_role("link", name="Download CSV").first).to_be_visible()
        visit(page, page.url, "reports-campaign-funnel", dark)

        page.goto(f"{live_server}/admin/reports/holdout-lift?group_by=segment")
        expect(page.locator("svg.ns-interval").first).to_be_visible()
        expect(page.locator("g.ns-errorbar").first).to_be_attached()
        visit(page, page.url, "reports-holdout-lift", dark)

        # A bad filter: the form answers inline with the field's message, no report is run.
        page.locator("input[name=from]").fill("2026-06-01")
        page.locator("input[name=to]").fill("2026-05-01")
        page.get_by_role("button", name="Run report").click()
        expect(page.locator("#from-error")).to_contain_text("must be on or before")
        expect(page.locator("input[name=from]")).to_have_attribute("aria-invalid", "true")
        shoot(page, "reports-bad-filter")

        # A large data set: the report runs as a job; the page polls it and shows the result itself.
        monkeypatch.setattr(admin_reports, "INLINE_MAX_ACCOUNTS", 0)
        page.goto(f"{live_server}/admin/reports/milestones?segment=smb")
        expect(page.locator("[data-report-job] progress")).to_be_visible()
        shoot(page, "reports-job-running")
        run_worker()
        expect(page.locator("svg.ns-chart").first).to_be_visible(timeout=15_000)
        expect(page.locator("[data-report-job]")).to_have_count(0)
        assert "job=" in page.url and "segment=smb" in page.url

        # The weekly digest for one segment, as the mail client shows it (same frame as campaign emails).
        week = week_due(utcnow()) or dt.date(2026, 11, 16)
        with database.session() as session:
            summaries = summarise(session, database.settings, "smb", week)
        email = compose_digest(database.settings, "smb", week, summaries, personal=True)
        mail = browser.new_context(viewport={"width": 800, "height": 800})  # a mail client, not the console
        try:
            reader = mail.new_page()
            reader.set_content(email.html)
            expect(reader.get_by_role("heading", name="Holdout lift")).to_be_visible()
            shoot(reader, "reports-digest-email", docs=True)
        finally:
            mail.close()
    finally:
        context.close()


@pytest.mark.browser
def test_holdout_lift_without_a_holdout_says_where_to_set_one(
    page: Page, live_server: str, database: Database, recruiting: dict[str, int]
) -> None:
    with database.transaction() as session:
        create_user(session, EMAIL, PASSWORD, role=Role.VIEWER, name="Vera Viewer")
    sign_in(page, live_server)
    page.goto(f"{live_server}/admin/reports/holdout-lift")
    empty = page.locator("[data-no-holdout]")
    expect(empty).to_contain_text("No campaign holds anyone out")
    expect(empty.get_by_role("link", name="Open Campaigns, pick a campaign and choose Edit")).to_be_visible()
    expect(page.get_by_text("No data for these filters")).to_have_count(0)
    shoot(page, "reports-holdout-lift-no-holdout")
