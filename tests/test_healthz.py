"""GET /healthz: 200 when PostgreSQL and Redis answer, 503 with a JSON body saying which one does not."""

from __future__ import annotations

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
