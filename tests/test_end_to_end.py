"""The whole skeleton over real HTTP: survey → plan → email at the SendGrid sink → event →
milestone → the campaign's next email → `northstar report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from engine.db import Database
from tests.conftest import TEST_DATABASE_URL
from tests.factories import account_payload, event, response_payload


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_survey_answer_becomes_plan_email_milestone_and_report(
    live_server: str,
    recruiting: dict[str, int],
    api_token: str,
    database: Database,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
) -> None:
    status, body = call(live_server, "PUT", "/api/v1/accounts/acme", account_payload(), api_token)
    assert status == 201, body

    status, body = call(
        live_server, "POST", "/api/v1/surveys/outcomes/responses", response_payload(), api_token
    )
    assert status == 201, body
    assert body["status"] == "completed"
    assert body["plan"]["status"] == "pending"  # the `rules` job makes the plan
    share_url = live_server + body["plan"]["share_url"].removeprefix("http://northstar.test")
    with urllib.request.urlopen(share_url) as page:
        assert page.headers["Refresh"] == "2" and "Preparing your success plan" in page.read().decode()

    run_worker()  # the rules job: decide, make the plan, enrol

    # The same link now opens the plan page (a redirect to the plan's own link), without logging in.
    with urllib.request.urlopen(share_url) as page:
        assert "/p/r/" not in page.url
        html = page.read().decode()
    assert "Acme Staffing" in html
    assert "Careers-site visits" in html or "careers" in html.lower()
    assert "8,000" in html and "12,000" in html

    first_tick = tick_once(database)
    assert first_tick.messages_queued == 2 and len(first_tick.batches) == 1
    run_worker()
    welcome = sink.wait_for(2)
    assert {m.to for m in welcome} == {"sofia@acme.example", "johnny@acme.example"}
    assert all("your success plan for Acme Staffing is ready" in m.subject for m in welcome)
    assert all("/p/" in m.html and "Unsubscribe" in m.html for m in welcome)
    assert all(m.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in welcome)
    assert len(sink.requests) == 1  # one SendGrid request for the whole batch

    status, body = call(
        live_server, "POST", "/api/v1/events", {"events": [event("acme", "job_posted", "e-1")]}, api_token
    )
    assert status == 202, body
    assert body == {"accepted": 1, "duplicates": 0, "milestones_achieved": 1}

    second_tick = tick_once(database)
    assert second_tick.messages_queued == 1
    run_worker()
    messages = sink.wait_for(3)
    follow_up = messages[-1]
    assert follow_up.to == "sofia@acme.example"
    assert follow_up.custom_args["message_id"]

    env = {**os.environ, "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL}
    env.pop("NORTHSTAR_REDIS_URL", None)
    report = subprocess.run(
        [sys.executable, "-m", "web.cli", "report"], env=env, capture_output=True, text=True, timeout=60
    )
    assert report.returncode == 0, report.stderr
    starter = next(line for line in report.stdout.splitlines() if line.startswith("starter"))
    # accounts, surveyed, plans, messages sent, milestones achieved, behind or missed, reviews overdue
    assert starter.split() == ["starter", "1", "1", "1", "3", "1", "0", "0"]
