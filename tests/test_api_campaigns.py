"""The campaigns API on real PostgreSQL: list, create, read and replace the draft with an If-Match
version check (412 stale, 428 missing), errors keyed by step and field, publish, pause/resume,
stats, and bad input as problems, never a 500."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.testing import FlaskClient

from campaigns.enrollment import enroll_account
from engine.db import Database
from tests.factories import make_account

STEPS: list[dict[str, Any]] = [
    {"key": "hello", "kind": "email", "template": "welcome_plan", "to": ["champion"]},
    {
        "key": "first_job",
        "kind": "wait_until",
        "milestone": "first_job_posted",
        "timeout_days": 7,
        "on_timeout": "nudge",
    },
    {"key": "done", "kind": "exit"},
    {"key": "nudge", "kind": "email", "template": "next_step"},
]


def test_create_edit_publish_and_read_a_campaign(api_client: FlaskClient, recruiting: Any) -> None:
    created = api_client.post("/api/v1/campaigns", json={"key": "onboarding", "name": "Onboarding"})
    assert created.status_code == 201 and created.headers["ETag"] == '"0.1"'
    draft = api_client.get("/api/v1/campaigns/onboarding/draft")
    assert draft.json["has_draft"] and draft.json["document"]["steps"] == []

    body = {
        "name": "Onboarding",
        "steps": STEPS,
        "reentry_days": 30,
        "send_window": {"start_hour": 9, "end_hour": 17},
    }
    saved = api_client.put("/api/v1/campaigns/onboarding/draft", json=body, headers={"If-Match": '"0.1"'})
    assert saved.status_code == 200, saved.json
    assert saved.headers["ETag"] == '"0.2"' and saved.json["document"]["reentry_days"] == 30

    published = api_client.post(
        "/api/v1/campaigns/onboarding/publish", json={"note": "v1"}, headers={"If-Match": '"0.2"'}
    )
    assert published.status_code == 200 and published.json["version"] == 1
    listed = {c["key"]: c for c in api_client.get("/api/v1/campaigns").json["campaigns"]}
    assert listed["onboarding"] | {"by_state": {}} == {
        "key": "onboarding",
        "name": "Onboarding",
        "status": "live",
        "version": 1,
        "paused": False,
        "has_draft": False,
        "enrolled": 0,
        "by_state": {},
    }
    assert api_client.get("/api/v1/campaigns/onboarding/draft").headers["ETag"] == '"1.0"'


def test_a_stale_or_missing_if_match_is_refused(api_client: FlaskClient, recruiting: Any) -> None:
    etag = api_client.get("/api/v1/campaigns/nurture/draft").headers["ETag"]
    document = api_client.get("/api/v1/campaigns/nurture/draft").json["document"]
    first = api_client.put(
        "/api/v1/campaigns/nurture/draft", json=dict(document, name="First"), headers={"If-Match": etag}
    )
    assert first.status_code == 200
    stale = api_client.put(
        "/api/v1/campaigns/nurture/draft", json=dict(document, name="Second"), headers={"If-Match": etag}
    )
    assert stale.status_code == 412 and stale.mimetype == "application/problem+json"
    assert "someone else saved this draft" in stale.json["detail"] and stale.json["etag"] == "1.1"
    missing = api_client.put("/api/v1/campaigns/nurture/draft", json=document)
    assert missing.status_code == 428 and "If-Match" in missing.json["detail"]
    assert api_client.get("/api/v1/campaigns/nurture/draft").json["document"]["name"] == "First"
    stale_publish = api_client.post("/api/v1/campaigns/nurture/publish", headers={"If-Match": etag})
    assert stale_publish.status_code == 412
    forced = api_client.put(
        "/api/v1/campaigns/nurture/draft", json=dict(document, name="Forced"), headers={"If-Match": "*"}
    )
    assert forced.status_code == 200 and forced.json["document"]["name"] == "Forced"


def test_validation_errors_are_keyed_by_step_and_field(api_client: FlaskClient, recruiting: Any) -> None:
    steps = [
        dict(STEPS[0], template="nope"),
        dict(STEPS[1], on_timeout="hello"),
        {"kind": "branch", "condition": {"==": [{"var": "x.y"}, 1]}},
    ]
    response = api_client.put(
        "/api/v1/campaigns/nurture/draft", json={"name": "N", "steps": steps}, headers={"If-Match": '"1.0"'}
    )
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    errors = response.json["errors"]
    assert errors["steps.0.template"] == "unknown template 'nope'"
    assert "goes back to 'hello'" in errors["steps.1.on_timeout"]
    assert "steps.2.condition/==/0" in errors


def test_pause_resume_and_stats(api_client: FlaskClient, recruiting: Any, database: Database) -> None:
    with database.transaction() as session:
        account = make_account(session, "acme")
        enroll_account(session, account.id, "nurture", now=dt.datetime.now(dt.UTC), reason="test")
    assert api_client.post("/api/v1/campaigns/nurture/pause").json["paused"] is True
    assert api_client.post("/api/v1/campaigns/nurture/resume").json["paused"] is False
    stats = api_client.get("/api/v1/campaigns/nurture/stats").json
    assert stats["versions"][0]["by_state"] == {"active": 1}
    assert stats["versions"][0]["steps"][0] == {"key": "welcome", "kind": "email", "by_state": {"active": 1}}


def test_bad_input_is_a_problem_never_a_500(
    api_client: FlaskClient, client: FlaskClient, recruiting: Any
) -> None:
    assert client.get("/api/v1/campaigns").status_code == 401
    assert api_client.get("/api/v1/campaigns/nope/draft").status_code == 404
    assert api_client.get("/api/v1/campaigns/nope/stats").status_code == 404
    assert api_client.post("/api/v1/campaigns/nope/pause").status_code == 404
    assert api_client.post("/api/v1/campaigns", json={"key": "Bad Key", "name": "x"}).status_code == 422
    assert api_client.post("/api/v1/campaigns", json={"key": "nurture", "name": "x"}).status_code == 422
    assert (
        api_client.post("/api/v1/campaigns", data="not json", content_type="application/json").status_code
        == 400
    )
    for body in (
        [],
        {"steps": "x"},
        {"name": "n", "steps": [None, 3, {"kind": "teleport"}]},
        {"key": "other", "name": "n", "steps": STEPS},
    ):
        response = api_client.put("/api/v1/campaigns/nurture/draft", json=body, headers={"If-Match": '"1.0"'})
        assert response.status_code in (400, 422), (body, response.json)
    assert api_client.post("/api/v1/campaigns/nurture/publish").status_code == 409  # no draft
    api_client.post("/api/v1/campaigns", json={"key": "fresh", "name": "Fresh"})
    assert api_client.get("/api/v1/campaigns/fresh/stats").status_code == 409  # not published yet
    assert api_client.post("/api/v1/campaigns/fresh/publish").status_code == 422  # no steps
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"/api/v1/campaigns", "/api/v1/campaigns/{key}/draft", "/api/v1/campaigns/{key}/stats"} <= set(
        paths
    )
