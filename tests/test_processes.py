"""The long-running commands as an operator starts them: web, worker, scheduler, demo --serve."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from campaigns.sink import SendGridSink
from engine.db import Database, utcnow
from surveys.service import ResponseIn, submit_response
from tests.conftest import SECRET, TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import make_account, outcomes_answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(url: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def stack_env(sink: SendGridSink) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL,
        "NORTHSTAR_REDIS_URL": TEST_REDIS_URL,
        "NORTHSTAR_SECRET_KEY": SECRET,
        "NORTHSTAR_MAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": "SG.process-test",
        "NORTHSTAR_SENDGRID_API_HOST": sink.url,
    }


Start = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Start]:
    """Start a northstar command in the background (its output in a log file); stop it after."""
    started: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def start(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"process-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd
        )
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.slow
def test_web_serves_health_with_gunicorn(app: object, stack_env: dict[str, str], background: Start) -> None:
    port = free_port()
    process = background("web", "--port", str(port), "--workers", "1", env=stack_env)
    body = json.loads(wait_for_http(f"http://127.0.0.1:{port}/healthz"))
    assert body["checks"] == {"database": {"ok": True}, "redis": {"ok": True}}

    # Stopping `northstar web` (a process manager's SIGTERM) stops gunicorn: nothing left serving.
    process.terminate()
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"something still serves on port {port} after `northstar web` was stopped")


@pytest.mark.slow
@pytest.mark.parametrize("mode", [(), ("--fork",)], ids=["jobs-in-process", "fork-per-job"])
def test_scheduler_and_worker_processes_deliver_a_nudge(
    recruiting: object,
    database: Database,
    stack_env: dict[str, str],
    sink: SendGridSink,
    mode: tuple[str, ...],
) -> None:
    with database.transaction() as session:
        make_account(session, "acme")
        submit_response(
            session,
            "outcomes",
            ResponseIn(client_response_id="acme-process", account="acme", answers=outcomes_answers()),
            now=utcnow(),
        )
    scheduler = subprocess.run(
        [sys.executable, "-m", "web.cli", "scheduler", "--once"],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scheduler.returncode == 0, scheduler.stderr
    worker = subprocess.run(
        [sys.executable, "-m", "web.cli", "worker", "--burst", *mode],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    assert sorted(m.to for m in sink.wait_for(2)) == ["johnny@acme.example", "sofia@acme.example"]


def test_the_wsgi_module_freezes_what_start_up_made(tmp_path: Path) -> None:
    """gunicorn's workers import web.wsgi: the app and everything start-up made leave the garbage
    collector's generations (web.process.freeze_startup_heap), so a full collection is cheap."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NORTHSTAR_DATABASE_URL": f"sqlite:///{tmp_path / 'n.sqlite3'}",
    }
    probe = "import gc, web.wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    frozen, tracked = map(int, result.stdout.split())
    assert frozen > 50_000 and tracked < frozen / 10


def test_worker_and_scheduler_refuse_to_start_without_redis() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL}
    for command in ("worker", "scheduler"):
        result = subprocess.run(
            [sys.executable, "-m", "web.cli", command], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode != 0
        assert "NORTHSTAR_REDIS_URL is not set" in result.stderr


@pytest.mark.slow
def test_demo_serve_shows_accounts_and_plans(tmp_path: Path, background: Start) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    background("demo", "--dir", str(tmp_path / "d"), "--accounts", "12", "--serve", env=env, cwd=tmp_path)
    page = wait_for_http("http://127.0.0.1:5000/", timeout=90).decode()
    assert "Accounts and their success plans" in page and "/p/" in page
