"""Why was this sent? One contact's enrolments, messages with every guard's result, and the steps
that wrote nothing for them: in the API (token auth) and on the admin console (any role)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.scheduler import run_tick
from campaigns.sink import SendGridSink
from engine.accounts import Account, ContactRole, upsert_contact
from engine.db import Database
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from engine.users import Role
from tests.factories import make_account
from tests.test_admin_surveys import make_user, sign_in, text_of

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday afternoon
VIEWER = "viewer@northstar.example"


def email(key: str, to: str) -> dict[str, Any]:
    return {"key": key, "kind": "email", "template": "next_step", "to": [to]}


@dataclass(frozen=True)
class Story:
    contact_id: int
    plan_id: int


@pytest.fixture
def story(
    database: Database, sink: SendGridSink, run_worker: Callable[[], bool], recruiting: dict[str, int]
) -> Story:
    """Champion Camila: `first` sent her a nudge, `held` held the account out, `third` hit the cap."""
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["campaigns"] += [
        {
            "key": "first",
            "name": "First nudge",
            "steps": [email("hello", "champion"), email("boss", "exec_sponsor")],
        },
        {"key": "held", "name": "Held out nudge", "steps": [email("held-hello", "champion")]},
        {"key": "third", "name": "One too many", "steps": [email("third-hello", "champion")]},
        {
            "key": "evening",
            "name": "Evening nudge",
            "send_window": {"start_hour": 18, "end_hour": 20},
            "steps": [email("evening-hello", "champion")],
        },
    ]
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump(document))
        account = make_account(session, "acme", contacts=(("boss@acme.example", ContactRole.EXEC_SPONSOR),))
        camila = upsert_contact(
            session,
            account,
            "camila@acme.example",
            name="Camila Ortiz",
            role=ContactRole.CHAMPION,
            external_id="crm-42",
        )
        plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=NOW)
        enroll_account(session, account.id, "first", now=NOW, reason="rule 'Hire faster'")
        run_tick(session, now=NOW, caps=Caps(0, 0))
        story = Story(camila.id, plan.id)
    run_worker()
    later = NOW + dt.timedelta(hours=1)
    with database.transaction() as session:
        held, _ = enroll_account(session, account.id, "held", now=later, reason="rule 'Held'")
        held.held_out = True  # as if the stable hash had put the account in this campaign's holdout
        run_tick(session, now=later, caps=Caps(0, 0))
    with database.transaction() as session:
        enroll_account(session, account.id, "third", now=later, reason="trigger milestone_slipped: x")
        run_tick(session, now=later, caps=Caps(account_per_week=1, contact_per_week=10))
    return story


def by_step(audit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["step"]: m for m in audit["messages"] if m["campaign"] in ("first", "held", "third")}


def guards(message: dict[str, Any]) -> dict[str, str]:
    return {g["name"]: g["result"] for g in message["guards"]}


def test_api_lists_each_message_with_its_guard_results(
    client: FlaskClient, auth: dict[str, Any], story: Story
) -> None:
    response = client.get("/api/v1/contacts/crm-42/messages", headers=auth)

    assert response.status_code == 200, response.get_json()
    audit = response.get_json()
    assert audit["contact"]["email"] == "camila@acme.example"
    messages = by_step(audit)
    sent, held, capped = messages["hello"], messages["held-hello"], messages["third-hello"]
    assert sent["status"] == "sent" and sent["reason"] is None
    assert all(g["passed"] for g in sent["guards"]) and sent["enrolled_by"] == "rule 'Hire faster'"
    assert held["status"] == "suppressed" and held["reason"] == "holdout"
    assert guards(held)["holdout"] == "held out of this campaign"
    assert guards(held)["suppression"] == "pass"
    assert capped["status"] == "suppressed"
    assert capped["reason"] == "frequency cap: 1 nudges per account per week"
    assert guards(capped)["account cap"] == capped["reason"] and guards(capped)["holdout"] == "pass"
    enrolments = {e["campaign"]: e for e in audit["enrollments"]}
    assert enrolments["third"]["enrolled_by"] == "trigger milestone_slipped: x"
    assert enrolments["first"]["state"] == "completed" and enrolments["first"]["version"] == 1
    assert [t["event"] for t in enrolments["first"]["transitions"]][0] == "enrolled"
    not_sent = {(n["campaign"], n["step"]): n for n in audit["not_sent"]}
    assert not_sent[("first", "boss")]["reason"] == (
        "their role (champion) is not a recipient of this step (it goes to exec sponsor)"
    )


def test_api_finds_a_contact_without_external_id_by_email_and_account(
    client: FlaskClient, auth: dict[str, Any], story: Story
) -> None:
    response = client.get("/api/v1/contacts/messages?email=boss@acme.example&account=acme", headers=auth)

    assert response.status_code == 200
    audit = response.get_json()
    assert audit["contact"]["role"] == "exec_sponsor"
    assert [m["step"] for m in audit["messages"] if m["campaign"] == "first"] == ["boss"]


def test_api_needs_a_token(client: FlaskClient, story: Story) -> None:
    response = client.get("/api/v1/contacts/crm-42/messages")

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/contacts/nobody/messages",
        "/api/v1/contacts/crm-42/messages?account=someone-else",
        "/api/v1/contacts/messages?email=ghost@acme.example&account=acme",
    ],
)
def test_api_unknown_contact_is_a_404_problem(
    client: FlaskClient, auth: dict[str, Any], story: Story, path: str
) -> None:
    response = client.get(path, headers=auth)

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert "no contact" in response.get_json()["detail"]


def test_api_refuses_bad_parameters(client: FlaskClient, auth: dict[str, Any], story: Story) -> None:
    assert client.get("/api/v1/contacts/messages?email=boss@acme.example", headers=auth).status_code == 422
    assert client.get("/api/v1/contacts/crm-42/messages?limit=0", headers=auth).status_code == 422
    assert client.get("/api/v1/contacts/crm-42/messages?limit=x", headers=auth).status_code == 422


def test_openapi_documents_the_audit(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]

    assert "get" in paths["/api/v1/contacts/{external_id}/messages"]
    assert "get" in paths["/api/v1/contacts/messages"]


def test_viewer_reads_the_audit_page_from_the_plan_page(
    client: FlaskClient, database: Database, story: Story
) -> None:
    make_user(database, VIEWER, Role.VIEWER)
    assert sign_in(client, VIEWER).status_code == 303
    plan_page = text_of(client.get(f"/admin/plans/{story.plan_id}"))
    audit_path = f"/admin/contacts/{story.contact_id}/audit"
    assert f'href="{audit_path}"' in plan_page
    assert "Relationship triangle" in plan_page  # the rest of the section is still there

    response = client.get(audit_path)

    assert response.status_code == 200
    html = text_of(response)
    assert "Why was this sent?" in html and "Camila Ortiz" in html
    block = re.search(r'data-message="held-hello".*?</ul>', html, re.S)
    assert block and "Not sent: holdout" in block.group(0) and "held out of this campaign" in block.group(0)
    capped = re.search(r'data-message="third-hello".*?</ul>', html, re.S)
    assert capped and "frequency cap: 1 nudges per account per week" in capped.group(0)
    sent = re.search(r'data-message="hello".*?</ul>', html, re.S)
    assert sent and 'data-status="sent"' in sent.group(0) and "Not sent" not in sent.group(0)
    assert 'data-not-sent="boss"' in html


def test_admin_audit_page_needs_sign_in_and_404s_for_unknown_contacts(
    client: FlaskClient, database: Database, story: Story
) -> None:
    assert client.get(f"/admin/contacts/{story.contact_id}/audit").status_code == 303
    make_user(database, VIEWER, Role.VIEWER)
    sign_in(client, VIEWER)

    assert client.get("/admin/contacts/999999/audit").status_code == 404
    assert client.get(f"/admin/contacts/{2**40}/audit").status_code == 404


def test_a_deferred_message_says_when_the_window_opens_as_the_console_writes_times(
    client: FlaskClient, database: Database, story: Story
) -> None:
    afternoon = NOW + dt.timedelta(hours=2)  # 17:00 UTC: the evening window opens at 18:00
    with database.transaction() as session:
        acme = session.scalars(select(Account).where(Account.external_id == "acme")).one()
        enroll_account(session, acme.id, "evening", now=afternoon, reason="rule 'Evening'")
        run_tick(session, now=afternoon, caps=Caps(0, 0))
        account_id = acme.id
    make_user(database, VIEWER, Role.VIEWER)
    sign_in(client, VIEWER)

    for page in (f"/admin/contacts/{story.contact_id}/audit", f"/admin/accounts/{account_id}"):
        html = text_of(client.get(page))
        block = re.search(r'data-message="evening-hello".*?</ul>', html, re.S)
        assert block, page
        assert "held until Nov 30, 2026 18:00 UTC" in block.group(0), page
        assert "<strong>send window</strong>: deferred until Nov 30, 2026 18:00 UTC</li>" in block.group(0), (
            page
        )
        assert "2026-11-30T18:00:00" not in block.group(0), page
