"""`northstar demo` runs with no services at all, and exercises the real stack when given one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaigns.sink import SendGridSink
from tests.conftest import TEST_REDIS_URL
from tests.scratch_databases import empty_database

SUMMARY = re.compile(
    r"^demo: accounts=(\d+) responses=(\d+) plans=(\d+) messages=(\d+) milestones_achieved=(\d+)$"
)


def run_demo(
    tmp_path: Path, extra_env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], tuple[int, ...]]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **extra_env}
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "demo", "--dir", str(tmp_path / "demo"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    match = SUMMARY.match(last)
    assert match, last
    return result, tuple(int(n) for n in match.groups())


@pytest.mark.slow
def test_demo_needs_no_services(tmp_path: Path) -> None:
    result, (accounts, responses, plans, messages, milestones) = run_demo(tmp_path, {}, "--accounts", "60")
    assert accounts == 60 and 0 < responses <= accounts and plans == responses
    assert messages > 0 and milestones > 0
    assert "synchronous mode" in result.stderr  # said plainly in the log
    emails = list((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(emails) == messages
    assert (tmp_path / "demo" / "northstar.sqlite3").exists()
    assert "Traceback" not in result.stderr


@pytest.fixture
def demo_database() -> Iterator[str]:
    with empty_database("demo") as url:
        yield url


@pytest.mark.slow
def test_demo_uses_postgres_redis_and_sendgrid_when_configured(
    tmp_path: Path, demo_database: str, sink: SendGridSink
) -> None:
    env = {
        "NORTHSTAR_DATABASE_URL": demo_database,
        "NORTHSTAR_REDIS_URL": TEST_REDIS_URL,
        "NORTHSTAR_MAIL_BACKEND": "sendgrid",
        "SENDGRID_API_KEY": "SG.demo",
        "NORTHSTAR_SENDGRID_API_HOST": sink.url,
    }
    result, (_accounts, _responses, plans, messages, _milestones) = run_demo(
        tmp_path, env, "--accounts", "40"
    )
    assert plans > 0 and messages > 0
    assert f"RQ on {TEST_REDIS_URL}" in result.stderr
    assert len(sink.messages()) == messages
    ids = [m.custom_args["message_id"] for m in sink.messages()]
    assert len(ids) == len(set(ids))  # nothing sent twice
    assert not (tmp_path / "demo" / "outbox").exists() or not list(
        (tmp_path / "demo" / "outbox").glob("*.eml")
    )


@pytest.mark.slow
def test_demo_falls_back_to_synchronous_jobs_when_its_redis_is_unreachable(tmp_path: Path) -> None:
    result, (_a, _r, plans, messages, _m) = run_demo(
        tmp_path, {"NORTHSTAR_REDIS_URL": "redis://127.0.0.1:1/0"}, "--accounts", "15"
    )
    assert plans > 0 and messages > 0
    assert "unreachable: RQ runs in synchronous mode" in result.stderr
