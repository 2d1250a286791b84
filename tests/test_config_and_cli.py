"""Settings come from the environment once; a bad one stops start-up with one clear line."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import update

from engine.config import Settings, settings_from_env
from engine.db import Database, utcnow
from engine.errors import ConfigurationError
from engine.queue import QUEUE_NAMES
from surveys.models import Response
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import make_account, response_payload


def northstar(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_laptop_defaults_are_sqlite_and_the_outbox() -> None:
    settings = settings_from_env({})
    assert settings == Settings()
    assert settings.is_sqlite and settings.mail_backend == "outbox" and settings.redis_url is None


def test_the_job_linger_is_set_in_milliseconds_and_reaches_the_job_runner() -> None:
    from engine.queue import build_runner

    assert Settings().job_linger_ms == 250
    settings = settings_from_env({"NORTHSTAR_JOB_LINGER_MS": "0", "NORTHSTAR_REDIS_URL": TEST_REDIS_URL})
    assert settings.job_linger_ms == 0
    assert build_runner(settings).linger_s == 0
    assert build_runner(Settings(redis_url=TEST_REDIS_URL)).linger_s == 0.25


def test_postgres_urls_are_normalised_to_psycopg3() -> None:
    settings = settings_from_env({"NORTHSTAR_DATABASE_URL": "postgres://u@h/db"})
    assert settings.database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NORTHSTAR_MAIL_BACKEND": "carrier-pigeon"}, "NORTHSTAR_MAIL_BACKEND"),
        ({"NORTHSTAR_MAIL_BACKEND": "sendgrid"}, "SENDGRID_API_KEY"),
        ({"NORTHSTAR_DATABASE_URL": "mysql://x"}, "NORTHSTAR_DATABASE_URL"),
        ({"NORTHSTAR_REDIS_URL": "http://x"}, "NORTHSTAR_REDIS_URL"),
        ({"NORTHSTAR_SECRET_KEY": "short"}, "NORTHSTAR_SECRET_KEY"),
        ({"NORTHSTAR_SENDGRID_API_HOST": "ftp://x"}, "NORTHSTAR_SENDGRID_API_HOST"),
        ({"NORTHSTAR_JOB_LINGER_MS": "0.25"}, "NORTHSTAR_JOB_LINGER_MS"),
        ({"NORTHSTAR_JOB_LINGER_MS": "-1"}, "NORTHSTAR_JOB_LINGER_MS"),
        ({"NORTHSTAR_JOB_LINGER_MS": "60000"}, "from 0 to 10000"),
        ({"NORTHSTAR_JOB_LINGER_MS": "³"}, "NORTHSTAR_JOB_LINGER_MS"),  # a digit to isdigit(), not to int()
        ({"NORTHSTAR_CAP_ACCOUNT_PER_WEEK": "²"}, "NORTHSTAR_CAP_ACCOUNT_PER_WEEK"),
        ({"NORTHSTAR_REDIS_URL": "redis://127.0.0.1:6379/notanumber"}, "the database after the port"),
        ({"NORTHSTAR_REDIS_URL": "redis://127.0.0.1:abc/0"}, "the port is not a number"),
        ({"NORTHSTAR_REDIS_URL": "redis://:hunter2@127.0.0.1:6379/x"}, r"redis://:\*\*\*@"),
        ({"NORTHSTAR_DATABASE_URL": "postgresql+psycopg2://u@h/db"}, "driver that is not installed"),
        ({"NORTHSTAR_RESPONSE_LIMIT_PER_IP": "abc/def"}, "NORTHSTAR_RESPONSE_LIMIT_PER_IP"),
        ({"NORTHSTAR_OUTBOX_DIR": "/etc/hostname"}, "not a directory"),
    ],
)
def test_invalid_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        settings_from_env(env)


def test_cli_start_up_error_is_one_line_and_non_zero() -> None:
    result = northstar("report", env={"NORTHSTAR_MAIL_BACKEND": "carrier-pigeon"})
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NORTHSTAR_MAIL_BACKEND" in lines[0]


def test_api_token_create_prints_a_token_once(pg_engine: object) -> None:
    env = {"NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL}
    name = f"cli-{os.getpid()}"
    first = northstar("api-token", "create", name, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith("ns_")
    again = northstar("api-token", "create", name, env=env)
    assert again.returncode != 0 and "already exists" in again.stderr


def doctor_on_test_services(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`northstar doctor` against the test PostgreSQL and Redis."""
    env = {
        "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL,
        "NORTHSTAR_REDIS_URL": TEST_REDIS_URL,
        "NORTHSTAR_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    return northstar("doctor", env=env)


@contextmanager
def registered_worker(redis: Redis, queues: tuple[str, ...]) -> Iterator[None]:
    """An RQ worker registered in Redis, as `northstar worker` registers itself (on any machine)."""
    worker = SimpleWorker([Queue(name, connection=redis) for name in queues], connection=redis)
    worker.register_birth()
    try:
        yield
    finally:
        worker.register_death()


def test_doctor_reports_each_service(pg_engine: object, redis_conn: Redis, tmp_path: Path) -> None:
    with registered_worker(redis_conn, QUEUE_NAMES):
        healthy = doctor_on_test_services(tmp_path)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.count("ok  ") == 5
    assert "rules queue: no response waits for its plan" in healthy.stdout
    assert "ok   workers: 1 running (per queue: default 1, delivery 1, reports 1)" in healthy.stdout

    broken = northstar(
        "doctor",
        env={
            "NORTHSTAR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none",
            "NORTHSTAR_REDIS_URL": "redis://127.0.0.1:1/0",
            "NORTHSTAR_OUTBOX_DIR": str(tmp_path / "outbox"),
        },
    )
    assert broken.returncode == 1
    assert "FAIL database: cannot connect" in broken.stdout
    assert "FAIL redis: cannot reach redis://127.0.0.1:1/0" in broken.stdout
    assert "Traceback" not in broken.stderr


def test_doctor_says_when_no_worker_runs_or_a_queue_has_none(
    pg_engine: object, redis_conn: Redis, tmp_path: Path
) -> None:
    alone = doctor_on_test_services(tmp_path)
    assert alone.returncode == 1
    assert "FAIL workers: none running: start `northstar worker`" in alone.stdout

    with registered_worker(redis_conn, ("delivery",)), registered_worker(redis_conn, ("delivery",)):
        partial = doctor_on_test_services(tmp_path)
    assert partial.returncode == 1
    assert (
        "FAIL workers: 2 running, none on default, reports (default 0, delivery 2, reports 0)"
        in partial.stdout
    )


def test_doctor_says_when_responses_wait_too_long_for_their_plan(
    api_client: FlaskClient, database: Database, recruiting: dict[str, int], tmp_path: Path
) -> None:
    with database.transaction() as session:
        make_account(session, "acme")
    assert api_client.post("/api/v1/surveys/outcomes/responses", json=response_payload()).status_code == 201
    with database.transaction() as session:  # no worker has run for ten minutes
        session.execute(update(Response).values(rules_queued_at=utcnow() - dt.timedelta(minutes=10)))

    result = doctor_on_test_services(tmp_path)

    assert result.returncode == 1
    assert "FAIL rules queue: 1 responses wait for their plan, the oldest for 6" in result.stdout
    assert "is `northstar worker` running?" in result.stdout


def test_doctor_says_when_the_schema_is_behind(tmp_path: Path) -> None:
    result = northstar(
        "doctor", env={"NORTHSTAR_DATABASE_URL": f"sqlite:///{tmp_path}/empty.sqlite3"}, cwd=tmp_path
    )
    assert result.returncode == 1
    assert "run 'northstar db upgrade'" in result.stdout


def test_db_upgrade_then_doctor_is_happy_on_sqlite(tmp_path: Path) -> None:
    env = {
        "NORTHSTAR_DATABASE_URL": f"sqlite:///{tmp_path}/n.sqlite3",
        "NORTHSTAR_OUTBOX_DIR": str(tmp_path / "o"),
    }
    assert northstar("db", "upgrade", env=env).returncode == 0
    result = northstar("doctor", env=env)
    assert "ok   database" in result.stdout
