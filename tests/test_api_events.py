"""POST /api/v1/events: token-only, idempotent by key, all-or-nothing per batch, milestones follow."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from engine.db import Database
from engine.events.models import Event
from engine.plans.models import Milestone, MilestoneStatus
from tests.factories import event, response_payload, submit_and_apply

URL = "/api/v1/events"


def event_count(database: Database) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def test_events_need_a_bearer_token(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post(URL, json={"events": [event(acme, "job_posted", "e-1")]})

    body = assert_problem(response, 401)
    assert "Bearer" in body["detail"]
    assert event_count(database) == 0


def test_events_refuse_a_wrong_token(
    client: FlaskClient, database: Database, acme: str, api_token: str
) -> None:
    response = client.post(
        URL,
        json={"events": [event(acme, "job_posted", "e-1")]},
        headers={"Authorization": "Bearer ns_not-the-real-token"},
    )

    body = assert_problem(response, 401)
    assert "not valid" in body["detail"]
    assert event_count(database) == 0


def test_batch_reports_accepted_and_duplicates(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    batch = [
        event(acme, "job_posted", "e-1"),
        event(acme, "application_received", "e-2"),
        event(acme, "application_received", "e-2"),
    ]

    response = client.post(URL, json={"events": batch}, headers=auth)

    assert response.status_code == 202, response.get_json()
    assert response.get_json() == {"accepted": 2, "duplicates": 1, "milestones_achieved": 0}
    assert event_count(database) == 2


def test_replayed_batch_stores_nothing_new(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    batch = {"events": [event(acme, "job_posted", "e-1"), event(acme, "application_received", "e-2")]}
    client.post(URL, json=batch, headers=auth)

    replay = client.post(URL, json=batch, headers=auth)

    assert replay.status_code == 202, replay.get_json()
    assert replay.get_json() == {"accepted": 0, "duplicates": 2, "milestones_achieved": 0}
    assert event_count(database) == 2


def test_event_achieves_a_plan_milestone(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    plan = submit_and_apply(client, response_payload(acme), headers=auth)["plan"]

    response = client.post(URL, json={"events": [event(acme, "job_posted", "e-1")]}, headers=auth)

    assert response.status_code == 202, response.get_json()
    assert response.get_json()["milestones_achieved"] == 1
    with database.transaction() as session:
        milestone = session.scalars(
            select(Milestone).where(Milestone.plan_id == plan["id"], Milestone.key == "first_job_posted")
        ).one()
        assert milestone.status == MilestoneStatus.ACHIEVED
        assert milestone.achieved_at is not None


def test_replayed_event_does_not_achieve_a_milestone_again(
    client: FlaskClient, acme: str, auth: dict[str, Any]
) -> None:
    submit_and_apply(client, response_payload(acme), headers=auth)
    batch = {"events": [event(acme, "job_posted", "e-1")]}
    assert client.post(URL, json=batch, headers=auth).get_json()["milestones_achieved"] == 1

    replay = client.post(URL, json=batch, headers=auth)

    assert replay.get_json() == {"accepted": 0, "duplicates": 1, "milestones_achieved": 0}


def test_unknown_account_rejects_the_whole_batch(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    batch = [event(acme, "job_posted", "e-1"), event("globex", "job_posted", "e-2")]

    response = client.post(URL, json={"events": batch}, headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"events.1.account"}
    assert "globex" in body["errors"]["events.1.account"]
    assert event_count(database) == 0


def test_undeclared_event_name_rejects_the_whole_batch(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    batch = [event(acme, "job_posted", "e-1"), event(acme, "logged_in", "e-2")]

    response = client.post(URL, json={"events": batch}, headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"events.1.name"}
    assert "logged_in" in body["errors"]["events.1.name"]
    assert event_count(database) == 0


def test_timestamp_in_the_future_rejects_the_whole_batch(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    batch = [event(acme, "job_posted", "e-1"), event(acme, "job_posted", "e-2", when=later)]

    response = client.post(URL, json={"events": batch}, headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"events.1.timestamp"}
    assert event_count(database) == 0


def test_slightly_fast_client_clock_is_tolerated(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)

    response = client.post(URL, json={"events": [event(acme, "job_posted", "e-1", when=soon)]}, headers=auth)

    assert response.status_code == 202, response.get_json()
    assert event_count(database) == 1


def test_batch_over_a_thousand_events_is_refused(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    batch = [event(acme, "job_posted", f"e-{i}") for i in range(1001)]

    response = client.post(URL, json={"events": batch}, headers=auth)

    body = assert_problem(response, 422)
    assert "events" in body["errors"]
    assert event_count(database) == 0


def test_missing_timestamp_is_named(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    untimed = event(acme, "job_posted", "e-2")
    del untimed["timestamp"]

    response = client.post(URL, json={"events": [event(acme, "job_posted", "e-1"), untimed]}, headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"events.1.timestamp"}
    assert event_count(database) == 0


def test_timestamp_without_timezone_is_read_as_utc(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    naive = event(acme, "job_posted", "e-1")
    naive["timestamp"] = "2026-01-05T09:30:00"

    response = client.post(URL, json={"events": [naive]}, headers=auth)

    assert response.status_code == 202, response.get_json()
    with database.transaction() as session:
        stored = session.scalars(select(Event)).one()
        assert stored.occurred_at == dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)


def test_missing_events_list_is_named(client: FlaskClient, database: Database, auth: dict[str, Any]) -> None:
    response = client.post(URL, json={}, headers=auth)

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"events"}


def test_nan_in_event_properties_is_a_400_problem(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    raw = (
        '{"events": [{"account": "acme", "name": "job_posted", "idempotency_key": "e-1",'
        ' "timestamp": "2026-01-05T09:30:00Z", "properties": {"salary": NaN}}]}'
    )

    response = client.post(URL, data=raw, content_type="application/json", headers=auth)

    assert "NaN" in assert_problem(response, 400)["detail"]
    assert event_count(database) == 0


def test_timestamp_before_the_calendar_starts_in_utc_is_named(
    client: FlaskClient, database: Database, acme: str, auth: dict[str, Any]
) -> None:
    ancient = {**event(acme, "job_posted", "e-1"), "timestamp": "0001-01-01T00:00:00+14:00"}

    response = client.post(URL, json={"events": [ancient]}, headers=auth)

    body = assert_problem(response, 422)
    assert body["errors"] == {"events.0.timestamp": "timestamp is out of range"}
    assert event_count(database) == 0
