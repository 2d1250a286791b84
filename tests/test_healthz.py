"""GET /healthz: 200 when PostgreSQL and Redis answer, 503 with a JSON body saying which one does not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine import queue
from engine.config import Settings
from engine.db import Database
from web import create_app

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CLOSED_PORT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def restore_job_runner(app: Flask) -> Iterator[None]:
    """create_app reconfigures the process's job runner; put the `app` fixture's one back."""
    yield
    queue.configure(app.extensions["northstar.jobs"])


def test_healthz_is_ok_when_database_and_redis_answer(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}


@pytest.mark.usefixtures("restore_job_runner")
def test_healthz_is_503_when_redis_is_unreachable(settings: Settings, database: Database) -> None:
    broken = create_app(
        {"SETTINGS": settings.with_overrides(redis_url=CLOSED_PORT_REDIS), "DATABASE": database}
    )

    response = broken.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.is_json
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]


@pytest.mark.usefixtures("restore_job_runner")
def test_healthz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    unreachable = Database(settings.with_overrides(database_url=CLOSED_PORT_DATABASE))
    broken = create_app({"SETTINGS": settings, "DATABASE": unreachable})
    try:
        response = broken.test_client().get("/healthz")
    finally:
        unreachable.engine.dispose()

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["redis"] == {"ok": True}


@pytest.mark.usefixtures("restore_job_runner", "acme")
def test_a_request_that_loses_redis_after_its_commit_is_a_503_to_retry(
    settings: Settings, database: Database, app: Flask
) -> None:
    from sqlalchemy import func, select

    from engine.apitokens import create_token
    from engine.db import utcnow
    from surveys.models import Response
    from surveys.rules_queue import sweep_stranded
    from tests.factories import response_payload

    with database.transaction() as session:
        token = create_token(session, "integration")
    broken = create_app(
        {"SETTINGS": settings.with_overrides(redis_url=CLOSED_PORT_REDIS), "DATABASE": database}
    )

    payload = response_payload()
    response = broken.test_client().post(
        "/api/v1/surveys/outcomes/responses",
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
    )

    # The response is stored (the commit came first); queueing its `rules` job needed Redis. The
    # client is told to retry, and the retry is a replay; the scheduler's sweep re-queues the job.
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == "5"
    assert "retry the request" in response.get_json()["detail"]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Response)) == 1

    queue.configure(app.extensions["northstar.jobs"])  # Redis is back
    retried = app.test_client().post(
        "/api/v1/surveys/outcomes/responses", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    assert retried.status_code == 200 and retried.get_json()["replayed"] is True
    with database.transaction() as session:
        assert sweep_stranded(session, now=utcnow() + dt.timedelta(minutes=1))  # its job, queued again
