"""Playbook export: what a workspace holds, as YAML another workspace imports back exactly."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session

from engine.db import make_engine
from engine.playbook import export_playbook, import_playbook, read_playbook, resolve_playbook
from engine.rules import service as rules
from migrations.runner import upgrade
from tests.scratch_databases import empty_database

RECRUITING = resolve_playbook("recruiting")[1]


@pytest.fixture
def second_workspace() -> Iterator[str]:
    """Another, empty database: the workspace the playbook is shared with."""
    with empty_database("export") as target:
        upgrade(target)
        yield target


def by_key(items: list[dict], key: str = "key") -> dict:
    return {item[key]: item for item in items}


def test_export_round_trips_exactly_into_another_workspace(db: Session, second_workspace: str) -> None:
    import_playbook(db, RECRUITING)
    draft = rules.start_draft(db)
    rules.save_rule(
        db,
        draft,
        {
            "name": "Large accounts → tag",
            "priority": 400,
            "condition": {">=": [{"var": "account.traits.seats"}, 100]},
            "actions": [{"type": "tag_account", "value": "large"}],
        },
    )
    rules.publish(db, draft)
    exported = export_playbook(db, name="recruiting-copy")

    engine = make_engine(second_workspace)
    with Session(engine) as other:
        counts = import_playbook(other, exported)
        other.commit()
        assert counts["rules"] == len(draft.rules)
        again = export_playbook(other, name="recruiting-copy")
        assert again == exported  # byte for byte
        assert import_playbook(other, exported)["rules"] == 0  # nothing new to publish
    engine.dispose()


def test_exported_sections_equal_the_source_playbook(db: Session) -> None:
    import_playbook(db, RECRUITING)
    source = read_playbook(RECRUITING)
    exported = read_playbook(export_playbook(db))
    assert exported["rules"] == source["rules"]  # order is evaluation-relevant: kept exactly
    for section in (
        "plan_templates",
        "campaigns",
        "content",
        "templates",
        "surveys",
        "outcomes",
        "objectives",
    ):
        assert by_key(exported[section]) == by_key(source[section]), section
    assert by_key(exported["event_types"], "name") == by_key(source["event_types"], "name")
    assert set(yaml.safe_load(export_playbook(db))) >= {"name", "rules", "campaigns", "plan_templates"}


def test_cli_export_writes_a_file_that_imports(tmp_path: Path, db: Session) -> None:
    env = {"NORTHSTAR_DATABASE_URL": f"sqlite:///{tmp_path / 'ws.sqlite3'}", "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "web.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert run("db", "upgrade").returncode == 0
    assert run("playbook", "import", "recruiting").returncode == 0
    out = tmp_path / "playbook.yaml"
    result = run("playbook", "export", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "rules:" in out.read_text()
    bad = run("playbook", "export", "-o", str(tmp_path / "missing" / "dir" / "x.yaml"))
    assert bad.returncode == 1 and "cannot write" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_rules_validate_and_simulate(tmp_path: Path) -> None:
    env = {"NORTHSTAR_DATABASE_URL": f"sqlite:///{tmp_path / 'ws.sqlite3'}", "PATH": "/usr/bin:/bin"}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "web.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert run("db", "upgrade").returncode == 0
    assert run("playbook", "import", "recruiting").returncode == 0
    valid = run("rules", "validate", "published")
    assert valid.returncode == 0, valid.stderr
    assert "0 errors" in valid.stdout and "conflict" in valid.stdout
    missing = run("rules", "simulate")  # no draft yet
    assert missing.returncode == 1 and "no draft rule set" in missing.stderr
    simulated = run("rules", "simulate", "published", "--sample", "all")
    assert simulated.returncode == 0, simulated.stderr
    assert "accounts evaluated" in simulated.stdout
    bad = run("rules", "simulate", "published", "--sample", "-3")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_playbook_rules_reading_unknown_fields_are_refused(db: Session) -> None:
    document = yaml.safe_load(RECRUITING)
    document["rules"][0]["condition"] = {"==": [{"var": "acount.segment"}, "smb"]}
    from engine.playbook import PlaybookInvalid

    with pytest.raises(PlaybookInvalid) as caught, db.begin_nested():
        import_playbook(db, yaml.safe_dump(document))
    assert any(k.startswith("rules[0].condition") for k in caught.value.errors), caught.value.errors
