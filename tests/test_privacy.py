"""Privacy on the real database: a contact's export holds everything about them; erasure removes
the person, keeps anonymised counts, is idempotent and all-or-nothing, and an erased email is never
mailed again (even when a sync creates the contact anew); the console and the API both do it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.guards import suppression
from campaigns.models import Message, MessageStatus, WebhookEvent
from campaigns.privacy import ErasedMessageCount
from campaigns.scheduler import run_tick
from engine.accounts import Account, Contact, ContactRole, upsert_contact
from engine.apitokens import create_token
from engine.audit import AuditEntry
from engine.db import Base, Database
from engine.events.models import Event
from engine.events.service import EventIn, ingest_events
from engine.plans.models import PlanRevision
from engine.plans.service import active_plan
from engine.plans.updates import add_comment
from engine.playbook import import_playbook, resolve_playbook
from engine.privacy import ContactErasure, ErasedEmail, erase_contact, export_contact
from engine.users import Role
from surveys.models import Response
from surveys.service import ContactRef
from tests.factories import answer_outcomes, make_account, outcomes_answers
from tests.test_people import admin_client, sign_in_as

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)  # a Monday, inside every send window
CHAMP = "champ@acme.example"


def customer_with_history(db: Session) -> Contact:
    """A champion who answered the survey (with a comment), was sent the nurture campaign's
    welcome email and in-app card, posted a job, and commented on the plan."""
    import_playbook(db, resolve_playbook("recruiting")[1])
    make_account(
        db, "acme", contacts=((CHAMP, ContactRole.CHAMPION), ("boss@acme.example", ContactRole.EXEC_SPONSOR))
    )
    answers = {**outcomes_answers(NOW.date()), "nps": 4, "comment": "Our ATS export is broken, call me"}
    answer_outcomes(db, ContactRef(CHAMP, "Champ Tester"), answers, now=NOW)
    account = db.scalars(select(Account).where(Account.external_id == "acme")).one()
    enroll_account(db, account.id, "nurture", now=NOW, reason="test")
    run_tick(db, now=NOW)
    ingest_events(
        db, [EventIn("acme", "job_posted", "ev-1", NOW, contact=CHAMP, properties={"job": "Nurse"})], now=NOW
    )
    plan = active_plan(db, account.id)
    assert plan is not None
    add_comment(db, plan, f"Ping me at {CHAMP}", actor=CHAMP, channel="shared", now=NOW)
    db.flush()
    champ = db.scalars(select(Contact).where(Contact.email == CHAMP)).one()
    message = db.scalars(select(Message).where(Message.contact_id == champ.id)).first()
    assert message is not None
    db.add(
        WebhookEvent(
            provider_event_id="sg-1", event="delivered", message_id=message.id, payload={"email": CHAMP}
        )
    )
    db.flush()
    return champ


def tables_holding(db: Session, email: str) -> list[str]:
    """Every table with a row that still mentions `email` anywhere (any column, any JSON)."""
    return [
        table.name
        for table in Base.metadata.sorted_tables
        if db.scalar(
            text(f'SELECT count(*) FROM "{table.name}" t WHERE row_to_json(t)::text ILIKE :email'),
            {"email": f"%{email}%"},
        )
    ]


def test_the_export_holds_everything_about_the_contact(db: Session) -> None:
    champ = customer_with_history(db)
    document = json.loads(json.dumps(export_contact(db, champ.id, now=NOW)))
    assert document["contact"]["email"] == CHAMP
    assert document["account"]["external_id"] == "acme"
    assert [r["answers"]["comment"] for r in document["surveys"]["responses"]] == [
        "Our ATS export is broken, call me"
    ]
    steps = {(m["step"], m["channel"], m["status"]) for m in document["campaigns"]["messages"]}
    assert ("welcome", "email", "queued") in steps
    assert ("plan_ready", "in_app", "queued") in steps
    assert all(m["trace"]["guards"] for m in document["campaigns"]["messages"])
    assert [i["campaign"] for i in document["campaigns"]["inbox"]] == ["nurture"]
    assert any(m["provider_events"] for m in document["campaigns"]["messages"])
    assert [e["name"] for e in document["events"]] == ["job_posted"]
    assert [r["summary"] for r in document["plans"]["revisions"]] == ["Comment"]
    assert "boss@acme.example" not in json.dumps(document)


def test_erasure_removes_the_person_and_keeps_anonymous_counts(db: Session) -> None:
    champ = customer_with_history(db)
    account_id, champ_id = champ.account_id, champ.id
    messages = db.scalar(select(func.count()).where(Message.contact_id == champ_id))
    result = erase_contact(db, champ_id, by="admin@northstar.example", now=NOW)
    db.expire_all()
    assert not result.already
    assert db.get(Contact, champ_id) is None
    assert db.scalar(select(func.count()).where(Message.contact_id == champ_id)) == 0
    counts = db.scalars(select(ErasedMessageCount).where(ErasedMessageCount.account_id == account_id)).all()
    assert sum(c.count for c in counts) == messages
    assert {(c.step_key, c.status) for c in counts} == {("welcome", "queued"), ("plan_ready", "queued")}
    response = db.scalars(select(Response)).one()
    assert response.contact_id is None and "comment" not in response.answers and response.answers["nps"] == 4
    assert db.scalars(select(Event)).one().contact_id is None
    revision = db.scalars(select(PlanRevision).where(PlanRevision.summary == "Comment")).one()
    assert revision.actor == "erased contact" and CHAMP not in json.dumps(revision.change)
    assert db.scalars(select(WebhookEvent)).one().payload == {}
    assert db.scalar(select(func.count()).select_from(ErasedEmail)) == 1
    assert tables_holding(db, CHAMP) == []
    erasure = db.scalars(select(ContactErasure)).one()
    assert CHAMP not in json.dumps(erasure.summary)
    assert erasure.summary["campaigns"]["messages_counted"] == messages


def test_erasing_twice_answers_already_erased(db: Session) -> None:
    champ = customer_with_history(db)
    first = erase_contact(db, champ.id, by="a@northstar.example", now=NOW)
    again = erase_contact(db, champ.id, by="b@northstar.example", now=NOW + dt.timedelta(hours=1))
    assert again.already and again.erased_by == "a@northstar.example" and again.summary == first.summary
    assert db.scalar(select(func.count()).select_from(ContactErasure)) == 1


def test_an_erased_email_is_never_mailed_again_even_as_a_new_contact(db: Session) -> None:
    champ = customer_with_history(db)
    erase_contact(db, champ.id, by="admin@northstar.example", now=NOW)
    again = upsert_contact(
        db, db.scalars(select(Account)).one(), CHAMP.upper(), name="Champ", role=ContactRole.CHAMPION
    )
    other = make_account(
        db, "globex", contacts=((CHAMP, ContactRole.CHAMPION), ("ok@globex.example", ContactRole.CHAMPION))
    )
    db.flush()
    assert suppression(again, "nurture") == "erased: privacy request"
    enroll_account(db, other.id, "nurture", now=NOW, reason="test")
    run_tick(db, now=NOW)
    rows = db.execute(
        select(Contact.email, Message.status, Message.reason)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Contact.account_id == other.id, Message.channel == "email")
    ).all()
    assert sorted((e, s, r) for e, s, r in rows) == [
        (CHAMP, MessageStatus.SUPPRESSED, "erased: privacy request"),
        ("ok@globex.example", MessageStatus.QUEUED, None),
    ]


def test_a_failed_erasure_changes_nothing(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    champ = customer_with_history(db)
    from engine import privacy

    def broken(*_: Any) -> dict[str, int]:
        raise RuntimeError("disk full")

    monkeypatch.setitem(
        privacy._providers, "zz-broken", privacy.PrivacyProvider("zz-broken", lambda *_: {}, broken)
    )
    savepoint = db.begin_nested()
    with pytest.raises(RuntimeError):
        erase_contact(db, champ.id, by="admin@northstar.example", now=NOW)
    savepoint.rollback()
    db.expire_all()
    assert db.get(Contact, champ.id) is not None
    assert db.scalar(select(func.count()).where(Message.contact_id == champ.id)) > 0
    assert db.scalar(select(func.count()).select_from(ErasedEmail)) == 0
    assert db.scalar(select(func.count()).select_from(ErasedMessageCount)) == 0


# -- console and API -----------------------------------------------------------------------------


def _committed_customer(database: Database) -> int:
    with database.transaction() as session:
        return customer_with_history(session).id


def test_console_export_and_typed_confirmation_erase(client: FlaskClient, database: Database) -> None:
    champ_id = _committed_customer(database)
    admin = admin_client(client, database)
    page = admin.get(f"/admin/contacts/{champ_id}/privacy")
    assert page.status_code == 200 and "Erase contact" in page.get_data(as_text=True)
    export = admin.get(f"/admin/contacts/{champ_id}/privacy/export")
    assert export.status_code == 200 and "attachment" in export.headers["Content-Disposition"]
    assert export.get_json()["contact"]["email"] == CHAMP
    csrf = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    wrong = admin.post(
        f"/admin/contacts/{champ_id}/privacy/erase", data={"csrf_token": csrf, "confirm": "champ"}
    )
    assert wrong.status_code == 422 and "Type the contact" in wrong.get_data(as_text=True)
    done = admin.post(
        f"/admin/contacts/{champ_id}/privacy/erase", data={"csrf_token": csrf, "confirm": CHAMP}
    )
    assert done.status_code == 303
    after = admin.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Contact {champ_id} was erased" in after and CHAMP not in after
    # Nothing of the contact is left to link to, but the way back through their account is.
    trail = after.split('<nav class="crumbs" aria-label="Breadcrumb">')[1].split("</nav>")[0]
    assert '<a href="/admin/accounts">Accounts</a>' in trail and ">Acme Inc</a>" in trail
    assert f"<span>Contact {champ_id} (erased)</span>" in trail
    assert '<span aria-current="page">Privacy requests</span>' in trail
    with database.session() as session:
        actions = session.execute(
            select(AuditEntry.action, AuditEntry.actor).where(AuditEntry.object_type == "Contact")
        ).all()
        assert tables_holding(session, CHAMP) == []
    assert sorted(actions) == [("erase", "admin@northstar.example"), ("export", "admin@northstar.example")]


def test_editors_cannot_export_or_erase(client: FlaskClient, database: Database) -> None:
    champ_id = _committed_customer(database)
    editor = sign_in_as(client, database, "erin@northstar.example", Role.EDITOR)
    assert editor.get(f"/admin/contacts/{champ_id}/privacy/export").status_code == 403
    page = editor.get(f"/admin/contacts/{champ_id}/privacy")
    assert page.status_code == 403 and "Only admins" in page.get_data(as_text=True)


def test_api_export_and_erase_need_an_admin_token(client: FlaskClient, database: Database) -> None:
    champ_id = _committed_customer(database)
    with database.transaction() as session:
        admin_token = create_token(session, "privacy-bot", Role.ADMIN)
        editor_token = create_token(session, "sync", Role.EDITOR)
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    refused = client.get(
        f"/api/v1/contacts/{champ_id}/export", headers={"Authorization": f"Bearer {editor_token}"}
    )
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"
    assert "admin token" in refused.get_json()["detail"]
    exported = client.get(f"/api/v1/contacts/{champ_id}/export", headers=as_admin)
    assert exported.status_code == 200 and exported.get_json()["contact"]["email"] == CHAMP
    erased = client.post(f"/api/v1/contacts/{champ_id}/erase", headers=as_admin)
    assert erased.status_code == 200
    body = erased.get_json()
    assert body["already_erased"] is False and body["erased_by"] == "api-token:privacy-bot"
    assert (
        client.post(f"/api/v1/contacts/{champ_id}/erase", headers=as_admin).get_json()["already_erased"]
        is True
    )
    missing = client.get(f"/api/v1/contacts/{champ_id}/export", headers=as_admin)
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    assert client.post("/api/v1/contacts/99999999999/erase", headers=as_admin).status_code == 404
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "post" in paths["/api/v1/contacts/{contact_id}/erase"]
    assert "get" in paths["/api/v1/contacts/{contact_id}/export"]


def test_two_erasures_at_once_erase_once(database: Database) -> None:
    import threading

    champ_id = _committed_customer(database)
    first = database.session()
    erase_contact(first, champ_id, by="first@northstar.example", now=NOW)  # holds the row lock
    results: list[Any] = []

    def second() -> None:
        with database.transaction() as session:
            results.append(erase_contact(session, champ_id, by="second@northstar.example", now=NOW))

    waiting = threading.Thread(target=second)
    waiting.start()
    waiting.join(timeout=0.5)
    assert waiting.is_alive()  # blocked on the contact's row lock
    first.commit()
    first.close()
    waiting.join(timeout=10)
    assert [(r.already, r.erased_by) for r in results] == [(True, "first@northstar.example")]
