"""GET /api/v1/reports/<name>[.csv], report jobs on the `reports` queue, and the facts the reports
read being recorded by the pages (shared plan page opened, hosted survey page opened)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from engine.db import Database
from engine.plans.sharing import plan_token
from engine.reports.models import PlanPageView
from surveys.links import respondent_token
from surveys.models import Response, ResponseStatus
from surveys.reports import SurveyChoice, SurveyReach, _on_response_completed
from tests.conftest import SECRET
from tests.test_reports import JUNE, World, build_world

QUERY = "from=2026-06-01&to=2026-06-30"


@pytest.fixture
def world(database: Database) -> World:
    with database.transaction() as session:
        return build_world(session)


def problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["detail"]
    return body


def test_report_as_json(client: FlaskClient, auth: dict[str, Any], world: World) -> None:
    response = client.get(f"/api/v1/reports/milestones?{QUERY}&group_by=segment", headers=auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["name"] == "milestones"
    assert body["filters"] == {**JUNE, "group_by": "segment"}
    assert [row["group"] for row in body["rows"]] == ["enterprise", "starter", "all"]
    assert body["rows"][-1]["ttv_median"] == 10.0
    assert body["headline"]["plans"] == 4
    assert {"kind", "title", "labels", "series", "unit"} <= set(body["charts"][0])


def test_every_report_answers(client: FlaskClient, auth: dict[str, Any], world: World) -> None:
    listing = client.get("/api/v1/reports", headers=auth).get_json()
    assert listing["filters"]["campaigns"] == ["onboard"]
    for report in listing["reports"]:
        response = client.get(f"{report['json']}?{QUERY}&trait.industry=staffing", headers=auth)
        assert response.status_code == 200, (report["name"], response.get_data(as_text=True))
        assert response.get_json()["rows"], report["name"]


def test_report_as_csv(client: FlaskClient, auth: dict[str, Any], world: World) -> None:
    response = client.get(f"/api/v1/reports/campaign-funnel.csv?{QUERY}", headers=auth)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "campaign-funnel_2026-06-01_2026-06-30.csv" in response.headers["Content-Disposition"]
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0].startswith("Campaign,Enrolled,Held out,Sent,Delivered,Opened,Clicked,Milestone achieved")
    assert lines[-1].startswith("all,4,1,2,2,1,1,2,")


def test_reports_need_a_token(client: FlaskClient, world: World) -> None:
    problem(client.get(f"/api/v1/reports/milestones?{QUERY}"), 401)
    problem(client.get("/api/v1/reports/milestones.csv"), 401)


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/reports/churn", 404, None),
        ("/api/v1/reports/churn.csv", 404, None),
        ("/api/v1/reports/milestones?from=2026-07-01&to=2026-06-01", 422, "from"),
        ("/api/v1/reports/milestones?from=2020-01-01&to=2026-06-01", 422, "to"),
        ("/api/v1/reports/milestones.csv?segment=galactic", 422, "segment"),
        ("/api/v1/reports/outcomes?trait.size=big", 422, "trait.size"),
        ("/api/v1/reports/holdout-lift?group_by=weather", 422, "group_by"),
        ("/api/v1/reports/plan-adoption?group_by=channel", 422, "group_by"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field(
    client: FlaskClient, auth: dict[str, Any], world: World, path: str, status: int, field: str | None
) -> None:
    body = problem(client.get(path, headers=auth), status)
    if field:
        assert field in body["errors"]


def test_report_job_runs_on_the_reports_queue(
    client: FlaskClient, auth: dict[str, Any], world: World, run_worker: Callable[[], bool]
) -> None:
    started = client.post(f"/api/v1/reports/holdout-lift/jobs?{QUERY}", headers=auth)
    assert started.status_code == 202, started.get_data(as_text=True)
    status_url = started.get_json()["status_url"]
    queued = client.get(status_url, headers=auth).get_json()
    assert (queued["state"], queued["progress"]) == ("queued", 0.0)
    run_worker()
    done = client.get(status_url, headers=auth).get_json()
    assert (done["state"], done["progress"]) == ("finished", 1.0)
    assert done["result"]["rows"][-1]["messaged"] == 3
    problem(client.get("/api/v1/reports/jobs/not-a-job", headers=auth), 404)
    # characters RQ refuses in a job id (its ValueError was a 500): not found, like any unknown id
    for bad in ("a.b", "%C3%A7%20x", "x" * 101):
        problem(client.get(f"/api/v1/reports/jobs/{bad}", headers=auth), 404)
    problem(client.post("/api/v1/reports/churn/jobs", headers=auth), 404)
    problem(client.post("/api/v1/reports/outcomes/jobs?from=x", headers=auth), 422)


def test_completed_response_refreshes_the_choice_summary_in_a_job(
    database: Database, world: World, run_worker: Callable[[], bool]
) -> None:
    with database.transaction() as session:
        response = session.scalars(select(Response).where(Response.status == ResponseStatus.PARTIAL)).one()
        response.status = ResponseStatus.COMPLETED
        response.completed_at = dt.datetime(2026, 6, 6, tzinfo=dt.UTC)
        response.answers = {"outcomes": ["grow"]}
        _on_response_completed(None, session=session, response_id=response.id)
        response_id = response.id
    with database.transaction() as session:  # nothing yet: the job runs after the commit, in a worker
        assert (
            session.scalars(select(SurveyChoice).where(SurveyChoice.response_id == response_id)).all() == []
        )
    run_worker()
    with database.transaction() as session:
        rows = session.execute(
            select(SurveyChoice.kind, SurveyChoice.item_key).where(SurveyChoice.response_id == response_id)
        )
        assert rows.all() == [("outcome", "grow")]


def test_opening_the_shared_plan_page_is_recorded(
    client: FlaskClient, database: Database, world: World
) -> None:
    plan = world.plans["p3"]
    path = f"/p/{plan_token(SECRET, plan)}"
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    with database.transaction() as session:
        views = session.scalars(select(PlanPageView.views).where(PlanPageView.plan_id == plan.id)).all()
    assert views == [2]


def test_opening_the_hosted_survey_is_a_reach(
    client: FlaskClient, database: Database, world: World, settings: Any
) -> None:
    contact = world.contacts["bolt"]
    with database.transaction() as session:
        session.add(contact)
        token = respondent_token(settings, "onboarding", contact)
    assert client.get(f"/s/onboarding?t={token}").status_code == 200
    with database.transaction() as session:
        reaches = session.execute(
            select(SurveyReach.channel)
            .where(SurveyReach.contact_id == contact.id)
            .order_by(SurveyReach.channel)
        ).all()
    assert [r[0] for r in reaches] == ["hosted", "in_app"]
