"""Playbooks: the bundled recruiting playbook imports idempotently; bad files fail whole, by path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign
from content.models import ContentItem, MessageTemplate
from engine.library import Objective, Outcome
from engine.plans.models import PlanTemplate
from engine.playbook import PlaybookInvalid, import_playbook, resolve_playbook
from engine.rules.models import RuleSet, RuleSetStatus
from surveys.models import Survey, SurveyVersion
from tests.conftest import TEST_DATABASE_URL

RECRUITING = resolve_playbook("recruiting")[1]


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_bundled_recruiting_playbook_has_the_seed_example(db: Session) -> None:
    counts = import_playbook(db, RECRUITING)
    assert 3 <= counts["outcomes"] <= 4
    assert 6 <= counts["objectives"] <= 10
    assert counts["plan_templates"] == 2
    assert count(db, ContentItem) >= 6
    campaign = db.scalar(select(Campaign).where(Campaign.key == "nurture"))
    assert campaign is not None and len(campaign.steps) >= 3
    assert db.scalar(select(Survey).where(Survey.key == "outcomes")) is not None
    assert db.get(Outcome, "hire_faster") is not None


def test_importing_twice_changes_nothing(db: Session) -> None:
    import_playbook(db, RECRUITING)
    before = {
        m: count(db, m)
        for m in (
            Outcome,
            Objective,
            PlanTemplate,
            SurveyVersion,
            RuleSet,
            ContentItem,
            MessageTemplate,
            Campaign,
        )
    }
    second = import_playbook(db, RECRUITING)
    after = {m: count(db, m) for m in before}
    assert after == before
    assert second["rules"] == 0  # identical rules publish no new ruleset version
    published = db.scalars(select(RuleSet).where(RuleSet.status == RuleSetStatus.PUBLISHED)).all()
    assert len(published) == 1


def test_changed_rules_publish_a_new_version_and_archive_the_old(db: Session) -> None:
    import_playbook(db, RECRUITING)
    document = yaml.safe_load(RECRUITING)
    document["rules"][0]["priority"] += 1
    import_playbook(db, yaml.safe_dump(document))
    statuses = sorted((r.version, r.status.value) for r in db.scalars(select(RuleSet)))
    assert statuses == [(1, "archived"), (2, "published")]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["objectives"][0].update(outcome="nope"), "objectives[0].outcome"),
        (lambda d: d["rules"][1].update(condition={"bogus_op": [1]}), "rules[1].condition"),
        (
            lambda d: d["rules"][1]["actions"].append({"type": "enroll", "campaign": "ghost"}),
            "rules[1].actions[2].campaign",
        ),
        (lambda d: d["campaigns"][0]["steps"][0].update(template="ghost"), "campaigns[0].steps[0].template"),
        (lambda d: d["campaigns"][0]["steps"][2].pop("timeout_days"), "campaigns[0].steps[2].timeout_days"),
        (
            lambda d: d["plan_templates"][0]["milestones"][0].update(due_days=-3),
            "plan_templates[0].milestones[0].due_days",
        ),
        (lambda d: d["templates"][0].update(body="{% if %}"), "templates[0].body"),
        (lambda d: d.update(surprise=[]), "surprise"),
    ],
)
def test_invalid_playbook_names_the_bad_key_and_imports_nothing(db: Session, mutate, path: str) -> None:  # type: ignore[no-untyped-def]
    document = yaml.safe_load(RECRUITING)
    mutate(document)
    with pytest.raises(PlaybookInvalid) as caught, db.begin_nested():
        import_playbook(db, yaml.safe_dump(document))
    assert path in caught.value.errors, caught.value.errors
    assert count(db, Outcome) == 0 and count(db, RuleSet) == 0


def test_cli_prints_the_file_path_and_reason_and_exits_2(tmp_path: Path, pg_engine: object) -> None:
    bad = tmp_path / "broken.yaml"
    document = yaml.safe_load(RECRUITING)
    document["objectives"][0]["baseline"] = document["objectives"][0]["target"]
    bad.write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "playbook", "import", str(bad)],
        env={"NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert str(bad) in result.stderr
    assert "objectives[0].target: target must differ from baseline" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_rejects_yaml_that_does_not_parse(tmp_path: Path, pg_engine: object) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("outcomes: [\n  - key: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "web.cli", "playbook", "import", str(bad)],
        env={"NORTHSTAR_DATABASE_URL": TEST_DATABASE_URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "not valid YAML" in result.stderr and "line" in result.stderr
