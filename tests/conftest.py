"""Fixtures on the real services: PostgreSQL (SAVEPOINT per test, or truncation for live tests),
Redis (a dedicated DB number flushed per test), RQ SimpleWorker in burst mode, a SendGrid sink."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from campaigns.sink import SendGridSink
from engine import db as engine_db
from engine import refcache
from engine.config import Settings
from engine.db import Base, Database, make_engine
from engine.queue import QUEUE_NAMES
from migrations.runner import upgrade
from web import create_app
from web.wiring import connect_all

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


def _per_worker(database_url: str, redis_url: str) -> tuple[str, str]:
    """Under pytest-xdist each worker (gw0, gw1, ...) gets its own database (`<name>_gw1`) and the
    next Redis DB numbers, so workers never share a schema or flush each other's queues."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return database_url, redis_url
    index = int(worker[2:])
    db_url = make_url(database_url)
    db_url = db_url.set(database=f"{db_url.database}_{worker}")
    r_url = make_url(redis_url)
    r_url = r_url.set(database=str((int(r_url.database or 0) + index) % 16))
    return db_url.render_as_string(hide_password=False), r_url.render_as_string(hide_password=False)


TEST_DATABASE_URL, TEST_REDIS_URL = _per_worker(
    os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
)
SECRET = "test-secret-key-0123456789"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_configure(config: pytest.Config) -> None:
    if not TEST_DATABASE_URL.startswith("postgresql"):
        raise pytest.UsageError("tests run on PostgreSQL only (TEST_DATABASE_URL), never SQLite")


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """A fresh schema, built by the migrations (not create_all), once per test session."""
    _create_database_if_missing(TEST_DATABASE_URL)
    engine = make_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(TEST_DATABASE_URL)
    connect_all()
    yield engine
    engine.dispose()


def _create_database_if_missing(url: str) -> None:
    """Parallel runs (several developers' agents on one machine) each set their own
    TEST_DATABASE_URL; create that database on first use."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        )
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


@pytest.fixture
def db(pg_engine: Engine) -> Iterator[Session]:
    """A session whose every commit is a SAVEPOINT inside one transaction rolled back at the end."""
    connection = pg_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        refcache.clear()  # what this test cached is gone with its rolled-back rows


def truncate_all(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    refcache.clear()  # TRUNCATE bypasses the ORM, so the reference cache cannot see it


@pytest.fixture
def redis_conn() -> Iterator[Redis]:
    conn = Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def sink() -> Iterator[SendGridSink]:
    with SendGridSink() as running:
        yield running


@pytest.fixture
def settings(sink: SendGridSink, tmp_path: Path) -> Settings:
    return Settings(
        database_url=TEST_DATABASE_URL,
        redis_url=TEST_REDIS_URL,
        secret_key=SECRET,
        mail_backend="sendgrid",
        sendgrid_api_key="SG.test-key",
        sendgrid_api_host=sink.url,
        sendgrid_timeout_s=2.0,
        outbox_dir=tmp_path / "outbox",
        public_url="http://northstar.test",
    )


@pytest.fixture
def app(pg_engine: Engine, redis_conn: Redis, settings: Settings) -> Iterator[Flask]:
    """The real app on committed data (jobs and HTTP need it); every table is truncated after."""
    database = Database(settings, engine=pg_engine)
    application = create_app({"SETTINGS": settings, "DATABASE": database, "TESTING": True})
    try:
        yield application
    finally:
        truncate_all(pg_engine)
        engine_db.configure(database)


@pytest.fixture
def database(app: Flask) -> Database:
    found: Database = app.extensions["northstar.db"]
    return found


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def run_worker(app: Flask, redis_conn: Redis) -> Callable[[], bool]:
    """Drain every queue with an RQ SimpleWorker in burst mode (in this process)."""

    def run() -> bool:
        worker = SimpleWorker(list(QUEUE_NAMES), connection=redis_conn)
        return bool(worker.work(burst=True, logging_level="WARNING"))

    return run


@pytest.fixture
def recruiting(database: Database) -> dict[str, int]:
    from engine.playbook import import_playbook, resolve_playbook

    with database.transaction() as session:
        return import_playbook(session, resolve_playbook("recruiting")[1])


@pytest.fixture
def acme(database: Database, recruiting: dict[str, int]) -> str:
    """The account "acme" (two contacts, tests.factories.make_account) beside the recruiting playbook."""
    from tests.factories import make_account

    with database.transaction() as session:
        return make_account(session, "acme").external_id


@pytest.fixture
def api_token(database: Database) -> str:
    from engine.apitokens import create_token

    with database.transaction() as session:
        return create_token(session, "tests")


@pytest.fixture
def auth(api_token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {api_token}"}


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app served over real HTTP on a free port, in a thread of this process."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (`playwright install` is never needed)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("browser tests need the `chromium` executable on PATH (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh, isolated light-mode desktop page (1280 x 800) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


@pytest.fixture
def api_client(app: Flask, api_token: str) -> FlaskClient:
    """A test client that sends the API token, as a host's backend would (server-to-server)."""
    found = app.test_client()
    found.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {api_token}"
    return found
