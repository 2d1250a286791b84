"""The admin audit log on the real database: people's changes (console or API token) to audited
models are recorded with before/after, nobody has to call anything, the scheduler's own writes are
not logged, secrets are hidden, and the page filters by who, what and when."""

from __future__ import annotations

import datetime as dt
import re

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.scheduler import run_tick
from engine.audit import AuditEntry, acting_as
from engine.db import Database
from engine.playbook import import_playbook, resolve_playbook
from engine.users import Role, create_user
from engine.workspaces import ensure_workspace, rotate_secret
from tests.factories import make_account
from tests.test_people import admin_client, csrf_of, sign_in_as, text_of

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)


def entries(db: Session) -> list[tuple[str, str, str, dict[str, list[object]]]]:
    rows = db.scalars(select(AuditEntry).order_by(AuditEntry.id))
    return [(e.actor, e.action, e.object_type, e.changes) for e in rows]


def test_changes_made_by_a_person_are_logged_with_before_and_after(db: Session) -> None:
    with acting_as("ada@northstar.example", "console"):
        workspace = ensure_workspace(db, "acme", name="Acme")
        workspace.name = "Acme Corp"
        rotate_secret(db, workspace, now=NOW)
        db.flush()
        db.delete(workspace)
        db.flush()
    logged = entries(db)
    assert [(a, act, t) for a, act, t, _ in logged] == [
        ("ada@northstar.example", "insert", "Workspace"),
        ("ada@northstar.example", "update", "Workspace"),
        ("ada@northstar.example", "delete", "Workspace"),
    ]
    update = logged[1][3]
    assert update["name"] == ["Acme", "Acme Corp"]
    assert update["jwt_secret"] == ["(hidden)", "(hidden)"]  # secrets never reach the log
    assert logged[0][3]["key"] == [None, "acme"]


def test_writes_without_a_person_are_not_logged(db: Session) -> None:
    import_playbook(db, resolve_playbook("recruiting")[1])  # like the CLI
    account = make_account(db, "acme")
    enroll_account(db, account.id, "nurture", now=NOW, reason="test")
    run_tick(db, now=NOW)  # the scheduler
    create_user(db, "cli@northstar.example", "a long password", role=Role.ADMIN)
    assert entries(db) == []


def test_console_and_api_changes_are_logged_and_the_page_filters_them(
    client: FlaskClient, database: Database, recruiting: dict[str, int], auth: dict[str, str]
) -> None:
    editor = sign_in_as(client, database, "erin@northstar.example", Role.EDITOR)
    csrf = csrf_of(text_of(editor.get("/admin/rules")))
    assert editor.post("/admin/rules/draft", data={"csrf_token": csrf}).status_code == 303
    editor.post("/admin/logout", data={"csrf_token": csrf})
    draft = client.get("/api/v1/rulesets/draft", headers=auth).get_json()
    rule = draft["rules"][0]
    document = {k: v for k, v in rule.items() if k != "id"}
    changed = client.put(
        f"/api/v1/rulesets/draft/rules/{rule['id']}",
        json={**document, "name": "Renamed by the API"},
        headers=auth,
    )
    assert changed.status_code == 200, changed.get_json()
    with database.session() as session:
        logged = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    by_editor = [e for e in logged if e.actor == "erin@northstar.example"]
    assert {e.object_type for e in by_editor} >= {"RuleSet", "Rule"}
    rename = [e for e in logged if e.actor == "api-token:tests" and "name" in e.changes]
    assert [e.changes["name"] for e in rename] == [[rule["name"], "Renamed by the API"]]
    assert rename[0].actor_kind == "api"

    admin = admin_client(client, database)
    page = admin.get("/admin/audit?actor=api-token:tests&type=Rule")
    html = text_of(page)
    assert (
        page.status_code == 200 and "Renamed by the API" in html and "erin@northstar.example</td>" not in html
    )
    today = dt.date.today()
    dated = text_of(admin.get(f"/admin/audit?from={today}&to={today}&actor=erin@northstar.example"))
    assert re.search(r'href="/admin/audit\?type=RuleSet&amp;object=\d+">Rule set \d+</a>', dated)
    tomorrow = today + dt.timedelta(days=1)
    assert "No changes match" in text_of(admin.get(f"/admin/audit?from={tomorrow}"))
    bad = admin.get("/admin/audit?from=yesterday")
    assert bad.status_code == 422 and "a date like" in text_of(bad)


def test_people_changes_are_logged_without_password_hashes(client: FlaskClient, database: Database) -> None:
    admin = admin_client(client, database)
    with database.transaction() as session:
        ada = create_user(session, "ada@example.com", "a long password", role=Role.VIEWER).id
    csrf = csrf_of(text_of(admin.get("/admin/people")))
    admin.post(f"/admin/people/{ada}/role", data={"csrf_token": csrf, "role": "editor"})
    with database.session() as session:
        change = session.scalars(select(AuditEntry).where(AuditEntry.object_type == "User")).one()
    assert (change.actor, change.object_id, change.changes) == (
        "admin@northstar.example",
        str(ada),
        {"role": ["viewer", "editor"]},
    )
    text = text_of(admin.get("/admin/audit?type=User"))
    assert "ada@example.com" in text and "$argon2" not in text


def test_data_feeds_through_the_api_are_not_logged(
    client: FlaskClient, database: Database, recruiting: dict[str, int], auth: dict[str, str]
) -> None:
    from tests.factories import account_payload

    assert client.put("/api/v1/accounts/acme", json=account_payload(), headers=auth).status_code == 201
    with database.session() as session:
        assert entries(session) == []


def test_the_what_filter_names_each_kind_of_object_in_words_and_filters_by_its_type(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    admin = admin_client(client, database)
    csrf = csrf_of(text_of(admin.get("/admin/rules")))
    assert admin.post("/admin/rules/draft", data={"csrf_token": csrf}).status_code == 303
    page = text_of(admin.get("/admin/audit"))
    what = re.search(r'<select name="type">(.*?)</select>', page, re.S)
    assert what, "no What filter"
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]+)</option>', what.group(1))
    assert options[0] == ("", "Anything")
    shown = dict(options[1:])
    assert {
        "CampaignDraft": "Campaign draft",
        "RuleSet": "Rule set",
        "ApiToken": "API token",
        "Step": "Campaign step",
        "SuccessPlan": "Success plan",
        "AccountNote": "Account note",
    }.items() <= shown.items()
    assert [title for _, title in options[1:]] == sorted(shown.values(), key=str.lower)  # by what people read
    with database.session() as session:
        draft = session.scalars(select(AuditEntry.object_id).where(AuditEntry.object_type == "RuleSet")).one()
    chosen = text_of(admin.get(f"/admin/audit?type=RuleSet&object={draft}"))
    assert '<option value="RuleSet" selected>Rule set</option>' in chosen
    assert f"Changes to rule set {draft}" in chosen and f">Rule set {draft}</a>" in chosen
    assert "Changes to API token 7" in text_of(admin.get("/admin/audit?type=ApiToken&object=7"))
