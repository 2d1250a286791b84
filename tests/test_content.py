"""The content library on the real database: safe Markdown, known tags, CSV import (dry run, then all
or nothing), recommendations, email composition, and the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from content.csvimport import apply_import, plan_import
from content.emails import compose_email, personalise, recipient_substitutions
from content.library import find_item, save_item
from content.models import ContentClick, ContentItem, ContentSend
from content.recommend import recommend
from content.schemas import ContentItemSchema
from engine.accounts import ContactRole
from engine.config import Settings
from engine.db import Database
from engine.errors import ValidationFailed
from engine.plans.models import MilestoneStatus
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from migrations.runner import upgrade
from tests.factories import make_account
from web.cli import cli
from web.wiring import connect_all

HEADER = "key,kind,title,url,summary,body,minutes,locale,outcomes,objectives,milestones,stages,roles\n"


@pytest.fixture
def library(db: Session) -> Session:
    import_playbook(db, resolve_playbook("recruiting")[1])
    return db


def item(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "key": "guide",
        "kind": "article",
        "title": "A guide",
        "url": "https://help.example/g",
    }
    data.update(overrides)
    return ContentItemSchema().load(data)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Intro\n\n<script>alert(1)</script>", "line 3: raw <script> is not allowed"),
        ("[click](javascript:alert(1))", "line 1: javascript: URLs are not allowed"),
        ("ok\n<img src=x onerror=alert(1)>", "line 2: event-handler attributes"),
        ('<a href="data:text/html,hi">x</a>', "line 1: data: URLs are not allowed"),
        ("<iframe src=https://evil.example></iframe>", "raw <iframe>"),
    ],
)
def test_unsafe_markdown_is_refused_naming_the_line(body: str, expected: str) -> None:
    with pytest.raises(Exception) as failed:
        item(body=body)
    assert expected in str(failed.value)


def test_markdown_bodies_are_rendered_and_sanitized(library: Session) -> None:
    row = save_item(
        library, item(url=None, body="# Steps\n\n1. **Post** a [job](https://x.example)\n\n<b title=x>ok</b>")
    )
    assert "<h1>Steps</h1>" in row.body_html and "<strong>Post</strong>" in row.body_html
    assert 'rel="noopener noreferrer"' in row.body_html and "title" not in row.body_html


def test_unknown_tags_are_refused_with_the_group_named(library: Session) -> None:
    with pytest.raises(ValidationFailed) as failed:
        save_item(
            library,
            item(tags={"milestones": ["first_job_posted", "moon_landing"], "outcomes": ["world_peace"]}),
        )
    assert failed.value.errors == {
        "tags.milestones": "unknown milestone 'moon_landing'",
        "tags.outcomes": "unknown outcome 'world_peace'",
    }
    assert library.scalar(select(ContentItem).where(ContentItem.key == "guide")) is None


def test_items_fall_back_to_the_default_locale(library: Session) -> None:
    save_item(library, item())
    save_item(library, item(locale="de", title="Eine Anleitung"))
    assert find_item(library, "guide", "de-CH").title == "Eine Anleitung"
    assert find_item(library, "guide", "fr").title == "A guide"


def test_csv_dry_run_reports_what_would_change_and_writes_nothing(library: Session) -> None:
    text = (
        HEADER
        + 'first-90-days,article,"Keep the people you hire: getting the first 90 days right",'
        + "https://help.northstar.example/recruiting/first-90-days,Changed summary,,7,en,keep_people,,,,\n"
        + 'new-guide,checklist,New guide,,"Short",'
        + '"# Title\n\nA body on two lines",4,de,hire_faster,careers_site_traffic,first_job_posted,'
        + "onboarding;adoption,champion\n"
    )
    before = library.scalar(select(func.count()).select_from(ContentItem))
    report, _ = plan_import(library, text)
    assert report.ok, report.errors
    assert [(r.line, r.key, r.action) for r in report.rows] == [
        (2, "first-90-days", "update"),
        (3, "new-guide", "create"),
    ]
    assert "summary" in report.rows[0].changed and "tags" in report.rows[0].changed
    assert report.summary() == "1 would be created, 1 would be updated, 0 unchanged"
    assert library.scalar(select(func.count()).select_from(ContentItem)) == before
    apply_import(library, text)
    assert find_item(library, "new-guide", "de").tags["stages"] == ["onboarding", "adoption"]
    assert "<h1>Title</h1>" in find_item(library, "new-guide", "de").body_html


def test_broken_csv_rows_are_all_reported_by_line_and_column_and_nothing_is_imported(
    library: Session,
) -> None:
    text = (
        HEADER
        + "good-one,article,Good,https://x.example,,,5,en,,,,,\n"
        + "bad-kind,podcast,Bad kind,https://x.example,,,5,en,,,,,\n"
        + "no-title,article,,https://x.example,,,5,en,,,,,\n"
        + "bad-tags,article,Tags,https://x.example,,,five,en,,,moon_landing,winter,\n"
        + "unsafe,article,Unsafe,,,<script>x</script>,5,en,,,,,\n"
        + "short,row\n"
        + "good-one,article,Twice,https://x.example,,,5,en,,,,,\n"
    )
    report, _ = plan_import(library, text)
    found = {(e.line, e.field) for e in report.errors}
    assert {
        (3, "kind"),
        (4, "title"),
        (5, "minutes"),
        (5, "stages"),
        (6, "body"),
        (7, ""),
        (8, "key"),
    } <= found
    assert (5, "milestones") in found  # every problem on a row is listed, not only the first kind
    with pytest.raises(ValidationFailed):
        apply_import(library, text)
    assert library.scalar(select(ContentItem).where(ContentItem.key == "good-one")) is None


def test_csv_header_problems_are_named(library: Session) -> None:
    report, _ = plan_import(library, "key,kind,colour\nx,article,red\n")
    assert [str(e) for e in report.errors] == [
        "line 1, colour: unknown column (the columns are: key, kind, title, url, summary, body, minutes, "
        "locale, "
        "outcomes, objectives, milestones, stages, roles)",
        "line 1, title: required column is missing",
    ]
    report, _ = plan_import(library, HEADER + 'a,article,"unclosed,,,,5,en,,,,,\n')
    assert report.errors


def _plan_for(session: Session) -> tuple[object, object]:
    account = make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
    plan = create_plan(
        session, account, get_template(session, "hire_faster_plan"), [], now=dt.datetime.now(dt.UTC)
    )
    return plan, account.contacts[0]


def test_recommendations_are_deterministic_explained_and_skip_what_was_sent_or_clicked(
    library: Session,
) -> None:
    plan, contact = _plan_for(library)
    first = recommend(library, plan, contact, 3)  # type: ignore[arg-type]
    again = recommend(library, plan, contact, 3)  # type: ignore[arg-type]
    assert [r.item.key for r in first] == [r.item.key for r in again]
    top = first[0]
    assert "first_job_posted" in top.item.tags["milestones"]
    assert "next milestone" in top.why and "champions" in top.why
    assert [r.score for r in first] == sorted((r.score for r in first), reverse=True)
    library.add(ContentClick(content_item_id=top.item.id, contact_id=contact.id))  # type: ignore[attr-defined]
    library.flush()
    after = recommend(library, plan, contact, 3)  # type: ignore[arg-type]
    assert top.item.key not in [r.item.key for r in after]


def test_the_next_milestone_moves_the_recommendation(library: Session) -> None:
    plan, contact = _plan_for(library)
    plan.milestones[0].status = MilestoneStatus.ACHIEVED  # type: ignore[attr-defined]
    top = recommend(library, plan, contact, 1, for_next_milestone=True)[0]  # type: ignore[arg-type]
    assert "first_applications" in top.item.tags["milestones"]


def test_an_email_is_composed_with_inlined_css_a_preheader_tracked_links_and_text(library: Session) -> None:
    email = compose_email(
        library,
        "welcome_plan",
        content_keys=["post-a-job-in-five-minutes"],
        campaign_name="Nurture",
        postal_address="1 Harbour St",
        locale="fr",  # no French template: the default one
    )
    assert email.locale == "en" and len(email.content_ids) == 1
    assert 'style="' in email.html and "@media only screen" in email.html  # inlined, media query kept
    assert "One page: your hiring goal" in email.html  # preheader
    assert "%ns:content.0.url%" in email.html and "help.northstar.example" not in email.html
    substitutions = recipient_substitutions(
        {"content.0.url": "https://t.example/t/x", "contact.first_name": "Sofia"}
    )
    text = personalise(email.text, substitutions)
    assert "Post a job in five minutes (https://t.example/t/x)" in text
    assert "Unsubscribe: %nst:unsubscribe_url%" in text


def test_a_german_contact_gets_the_german_template_with_the_same_content(library: Session) -> None:
    german = compose_email(
        library,
        "welcome_plan",
        content_keys=["first-90-days"],
        campaign_name="N",
        postal_address="x",
        locale="de-AT",
    )
    assert german.locale == "de" and german.subject.startswith("%nst:contact.first_name%, Ihr Erfolgsplan")
    assert '<html lang="de"' in german.html and "Erfolgsplan öffnen" in german.html


def test_content_cli_dry_run_then_import(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ns.db'}"
    upgrade(url)  # set up in-process; only the commands under test run as subprocesses
    database = Database(Settings(database_url=url))
    connect_all()  # the playbook sections (the app does this at start-up)
    with database.transaction() as session:
        import_playbook(session, resolve_playbook("recruiting")[1])
    database.engine.dispose()
    env = {"NORTHSTAR_DATABASE_URL": url}
    runner = CliRunner()  # in-process: a subprocess per command costs seconds of imports

    def northstar(*args: str, env: dict[str, str]) -> Any:
        result = runner.invoke(cli, list(args), env=env)
        result.returncode = result.exit_code
        return result

    good = tmp_path / "good.csv"
    good.write_text(HEADER + "cli-item,video,CLI item,https://x.example/v,,,3,en,hire_faster,,,,\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "cli-bad,video,Bad,https://x.example/v,,,3,en,,,moon_landing,,\n")
    dry = northstar("content", "import", str(good), "--dry-run", env=env)
    assert dry.returncode == 0 and "line 2: create cli-item [en]" in dry.stdout and "dry run" in dry.stdout
    refused = northstar("content", "import", str(bad), env=env)
    assert refused.returncode == 2
    assert "line 2, milestones: unknown milestone 'moon_landing'" in refused.stderr
    done = northstar("content", "import", str(good), env=env)
    assert done.returncode == 0 and "imported: 1 created" in done.stdout


def test_content_sends_are_unique_per_message_and_item(library: Session) -> None:
    # Guards the table recommend() reads: one row per message and item.
    assert ContentSend.__table__.primary_key.columns.keys() == ["message_id", "content_item_id"]
