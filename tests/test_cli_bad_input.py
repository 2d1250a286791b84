"""Bad input to `northstar` gets one clear line and a non-zero exit, never a traceback, and nothing
half-written: unreachable or unmigrated services, bad option values, bad files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from redis import Redis
from sqlalchemy import func, select

from campaigns import ticker
from campaigns.ticker import LOCK_NAME
from engine.apitokens import ApiToken
from engine.db import Database, utcnow
from engine.library import Outcome
from engine.users import User, authenticate
from engine.workspaces import Workspace
from migrations.runner import head_revision
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.scratch_databases import empty_database
from tests.test_config_and_cli import northstar
from web.cli import cli

ENV = {"NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL, "NORTHSTAR_REDIS_URL": TEST_REDIS_URL}


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})}, input=stdin)


def refused(result: Result, code: int, *phrases: str) -> str:
    """The command ended with `code` through click (a message), not an exception; returns its output."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for phrase in phrases:
        assert phrase in result.output, result.output
    return result.output


def test_an_unmigrated_database_is_named_with_the_command_that_fixes_it() -> None:
    with empty_database("cli_bare") as url:
        for command in (["report"], ["playbook", "import", "recruiting"], ["rules", "validate"]):
            out = refused(run(*command, env={"NORTHSTAR_DATABASE_URL": url}), 1, "run `northstar db upgrade`")
            assert f"this code expects {head_revision()}" in out


def test_an_unreachable_database_or_redis_is_one_line() -> None:
    down = run("report", env={"NORTHSTAR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    refused(down, 1, "the database failed", "NORTHSTAR_DATABASE_URL")
    no_redis = run("reports", "rebuild", env={"NORTHSTAR_REDIS_URL": "redis://127.0.0.1:1/0"})
    refused(no_redis, 1, "Redis does not answer")  # before the rebuild, not after its commit


def test_a_process_killed_by_a_missing_service_prints_no_traceback() -> None:
    result = northstar("report", env={"NORTHSTAR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Error: the database failed" in result.stderr


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("postgresql+psycopg2://u@h/db", "driver that is not installed"),
        ("sqlitex:///x.db", "driver that is not installed"),
        ("postgresql://u@[::1/x", "NORTHSTAR_DATABASE_URL"),
    ],
)
def test_database_urls_that_cannot_work_are_refused_at_start(url: str, phrase: str) -> None:
    refused(run("report", env={"NORTHSTAR_DATABASE_URL": url}), 1, phrase)


def test_db_upgrade_says_where_the_database_is(database: Database) -> None:
    head = head_revision()
    older = run("db", "upgrade", "--revision", "0001")
    assert older.exit_code == 0 and f"database at {head}" in older.output
    assert "upgrade never goes back" in older.output
    refused(run("db", "upgrade", "--revision", "bogus"), 1, "cannot upgrade to 'bogus'")
    refused(run("db", "upgrade", "--revision", " "), 2, "--revision")


def _counts(database: Database) -> tuple[int, ...]:
    with database.session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Workspace, ApiToken, User)
        )


def test_workspaces_tokens_and_users_refuse_what_the_database_would(database: Database) -> None:
    before = _counts(database)
    refused(run("workspace", "set", "BAD KEY"), 1, "a workspace key is")
    refused(run("workspace", "set", "k" * 300), 1, "a workspace key is")
    refused(run("workspace", "set", "fine", "--name", "n" * 600), 1, "1 to 200 printable")
    refused(run("workspace", "set", "fine", "--origin", "https://" + "a" * 3000 + ".example"), 1, "at most")
    refused(run("api-token", "create", "t" * 500), 1, "at most 120")
    refused(run("api-token", "create", "bell\x07"), 1, "printable")
    refused(
        run(
            "user",
            "create",
            "u@example.com",
            "--name",
            "n" * 500,
            "--password-stdin",
            stdin="long enough pw\n",
        ),
        1,
        "at most 200",
    )
    assert _counts(database) == before


def test_a_password_piped_with_a_windows_line_end_is_the_password(database: Database) -> None:
    made = run("user", "create", "crlf@example.com", "--password-stdin", stdin="long enough pw\r\n")
    assert made.exit_code == 0, made.output
    with database.transaction() as session:
        assert authenticate(session, "crlf@example.com", "long enough pw", now=utcnow()) is not None


@pytest.fixture
def playbook_dir(tmp_path: Path) -> Path:
    return tmp_path


def _outcomes(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Outcome)) or 0


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ("outcomes:\n  - {key: a, title: A}\noutcomes:\n  - {key: b, title: B}\n", "appears twice"),
        ('outcomes:\n  - {key: a, title: "A\\0"}\n', "NUL"),
        ("outcomes:\n  - {key: Bad Key, title: A}\n", "outcomes[0].key: use lower-case letters, digits"),
        ("rules:\n  - " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        (
            "outcomes:\n  - {key: a, title: A}\nobjectives:\n  - {key: o, outcome: a, title: O, metric: m,"
            " unit: " + "u" * 41 + ", baseline: 1, target: 2, days: 30}\n",
            "objectives[0].unit",
        ),
        (
            "rules:\n  - {name: r, priority: 99999999999999, condition: true, actions: [{type: stop}]}\n",
            "priority",
        ),
    ],
)
def test_playbook_files_the_database_would_refuse_are_refused_whole(
    database: Database, playbook_dir: Path, content: str, phrase: str
) -> None:
    before = _outcomes(database)
    path = playbook_dir / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    refused(run("playbook", "import", str(path)), 2, "nothing was imported", phrase)
    assert _outcomes(database) == before


def test_playbook_files_that_cannot_be_read_are_named(database: Database, playbook_dir: Path) -> None:
    latin = playbook_dir / "latin.yaml"
    latin.write_bytes("outcomes:\n  - {key: a, title: Caf\xe9}\n".encode("latin-1"))
    refused(run("playbook", "import", str(latin)), 2, "not UTF-8")
    refused(run("playbook", "import", "x" * 300), 2, "no bundled playbook")


def test_content_import_reads_no_more_than_its_limit(database: Database, playbook_dir: Path) -> None:
    big = playbook_dir / "big.csv"
    big.write_bytes(b"key,kind,title\n" + b"x" * 6_000_000)
    refused(run("content", "import", str(big)), 2, "larger than 5 MB")


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "simulate", "--sample", "²"],
        ["scheduler", "--interval", "0"],
        ["scheduler", "--interval", "nan"],
        ["scheduler", "--interval", "inf"],
        ["web", "--port", "99999"],
        ["web", "--workers", "0"],
        ["demo", "--accounts", "-5"],
    ],
)
def test_option_values_out_of_range_are_usage_errors(args: list[str]) -> None:
    refused(run(*args), 2)


def test_a_rule_set_version_that_is_not_a_number_is_named(database: Database) -> None:
    refused(run("rules", "validate", "²"), 1, "no '²' rule set")
    refused(run("rules", "validate", "99999999999999999999"), 1, "no '99999999999999999999' rule set")


def test_the_demo_names_a_directory_it_cannot_use(tmp_path: Path) -> None:
    taken = tmp_path / "a-file"
    taken.write_text("")
    refused(run("demo", "--dir", str(taken)), 1, str(taken))


@pytest.fixture
def scheduler_lock(redis_conn: Redis) -> Iterator[Redis]:
    redis_conn.delete(LOCK_NAME)
    yield redis_conn
    redis_conn.delete(LOCK_NAME)


def stopped_scheduler(until_started: Callable[[subprocess.Popen[str]], None]) -> str:
    """Start `northstar scheduler --interval 600`, wait `until_started` says it is where the test
    wants it, send SIGTERM as a process manager does; what it wrote to stderr (killed if it hangs)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "scheduler", "--interval", "600"],
        env={**ENV, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        until_started(process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in stderr
    return stderr


def test_a_stopped_scheduler_releases_its_lock_at_once(database: Database, scheduler_lock: Redis) -> None:
    def holding_the_lock(process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while scheduler_lock.get(LOCK_NAME) is None:
            assert time.monotonic() < deadline and process.poll() is None, "the scheduler never took its lock"
            time.sleep(0.1)
        assert (scheduler_lock.ttl(LOCK_NAME) or 0) > 60  # interval × 6: a restart would wait an hour

    stopped_scheduler(holding_the_lock)
    assert scheduler_lock.get(LOCK_NAME) is None


def test_a_scheduler_waiting_for_the_lock_stops_at_once(database: Database, scheduler_lock: Redis) -> None:
    """Another scheduler holds the lock; this one waits for it (one attempt at a time, stops held
    only during each) and still ends at once on SIGTERM, leaving the other's lock alone."""
    scheduler_lock.set(LOCK_NAME, "another-scheduler", ex=120)

    def waiting(process: subprocess.Popen[str]) -> None:
        time.sleep(3)  # started, and waiting for the lock
        assert process.poll() is None

    stopped_scheduler(waiting)
    assert scheduler_lock.get(LOCK_NAME) == b"another-scheduler"


def test_a_stop_while_the_lock_is_being_taken_arrives_after_it() -> None:
    arrived: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: arrived.append("stop"))
    try:
        with ticker._stops_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert arrived == []  # held: the lock's token is recorded before any stop runs
        time.sleep(0.05)
        assert arrived == ["stop"]  # pending, not lost
    finally:
        signal.signal(signal.SIGTERM, previous)
