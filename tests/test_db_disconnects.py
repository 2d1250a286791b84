"""The database goes away under a running app (a restart, a failover): an idle pooled connection
is pinged and replaced before use; one used within the ping window fails its request with a 503
problem (nothing saved) and the next request works (engine.db._ping_when_idle, web/problems.py)."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.pool import NullPool

import engine.db
from engine.db import Database
from surveys.models import Response
from tests.factories import response_payload

URL = "/api/v1/surveys/outcomes/responses"


OTHERS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def kill_connections(pg_engine: Engine) -> int:
    """Terminate every other backend of the test database, as a server restart would, and wait
    until they are gone (termination is a signal: the backends exit a moment later). Autocommit:
    pg_stat_activity is a snapshot per transaction."""
    admin = create_engine(pg_engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = len(conn.execute(text(f"SELECT pg_terminate_backend(pid) {OTHERS}")).all())
            deadline = time.monotonic() + 10
            while conn.scalar(text(f"SELECT count(*) {OTHERS}")) and time.monotonic() < deadline:
                time.sleep(0.05)
            return killed
    finally:
        admin.dispose()


def stored(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(Response)) or 0)


def test_an_idle_connection_is_pinged_and_replaced(
    api_client: FlaskClient, database: Database, pg_engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = [pg_engine.connect() for _ in range(3)]  # the pool holds several idle connections
    for conn in held:
        conn.close()
    assert kill_connections(pg_engine) >= 3
    monkeypatch.setattr(engine.db, "PING_AFTER_IDLE_S", 0.0)  # every pooled connection counts as idle

    response = api_client.post(URL, json=response_payload(acme))

    assert response.status_code == 201, response.get_json()
    assert stored(database) == 1
    # One failed ping replaced every connection pooled before it: none left to fail unpinged.
    monkeypatch.setattr(engine.db, "PING_AFTER_IDLE_S", 3600.0)
    again = [pg_engine.connect() for _ in range(3)]
    try:
        assert [conn.scalar(text("SELECT 1")) for conn in again] == [1, 1, 1]
    finally:
        for conn in again:
            conn.close()


def test_a_connection_lost_within_the_window_is_a_503_and_the_next_request_works(
    api_client: FlaskClient, database: Database, pg_engine: Engine, acme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.db, "PING_AFTER_IDLE_S", 3600.0)  # no ping: as if just used
    assert api_client.get("/api/v1/contacts/nobody/answers").status_code == 404
    kill_connections(pg_engine)

    lost = api_client.post(URL, json=response_payload(acme))

    assert lost.status_code == 503, lost.get_data(as_text=True)
    assert lost.mimetype == "application/problem+json"
    assert "nothing was saved" in lost.get_json()["detail"]
    assert lost.headers["Retry-After"] == "5"
    again = api_client.post(URL, json=response_payload(acme))
    assert again.status_code == 201, again.get_json()
    assert stored(database) == 1
