"""The widget's "Open your plan" link in real headless Chromium, opened before the `rules` job has
made the plan: a page that says so, checks again by itself (no JavaScript needed) and becomes the
plan page once the job has run. Screenshot: docs/screenshots/plan-pending.png."""

from __future__ import annotations

import threading
import time

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Page, expect

from engine.db import Database
from surveys.rules_queue import apply_queued_rules_job
from tests.browser.conftest import shoot
from tests.factories import make_account, response_payload


@pytest.mark.browser
def test_the_pending_link_turns_into_the_plan_page_by_itself(
    page: Page, live_server: str, api_client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    with database.transaction() as session:
        make_account(session, "acme")
    body = api_client.post("/api/v1/surveys/outcomes/responses", json=response_payload("acme")).get_json()
    assert body["plan"]["status"] == "pending"
    link = live_server + body["plan"]["share_url"].removeprefix("http://northstar.test")

    page.set_viewport_size({"width": 360, "height": 780})  # the widget runs on phones too
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("Preparing your success plan…")
    expect(page.get_by_role("status")).to_contain_text("as soon as it is ready")
    shoot(page, "plan-pending", docs=True)

    # The job runs while the page waits; its Refresh header brings the customer to the plan.
    def run_the_job() -> None:
        time.sleep(0.5)
        apply_queued_rules_job()

    worker = threading.Thread(target=run_the_job)
    worker.start()
    heading = page.get_by_role("heading", level=1)
    expect(heading).not_to_have_text("Preparing your success plan…", timeout=15_000)
    worker.join()
    assert "/p/r/" not in page.url
    expect(page.get_by_text("Acme Inc").first).to_be_visible()
