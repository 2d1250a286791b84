"""Small factories that build real rows (and real API payloads) for tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from engine.accounts import Account, ContactRole, upsert_account, upsert_contact
from surveys.rules_queue import apply_queued_rules_job
from surveys.service import ContactRef, ResponseIn, SubmitResult, submit_response


def make_account(
    session: Session,
    external_id: str = "acme",
    *,
    segment: str = "starter",
    contacts: tuple[tuple[str, ContactRole], ...] = (
        ("sofia@acme.example", ContactRole.CHAMPION),
        ("johnny@acme.example", ContactRole.EXEC_SPONSOR),
    ),
    **traits: Any,
) -> Account:
    account = upsert_account(
        session, external_id, name=f"{external_id.title()} Inc", segment=segment, traits=traits
    )
    for email, role in contacts:
        upsert_contact(session, account, email, name=email.split("@")[0].title() + " Tester", role=role)
    return account


def account_payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Acme Staffing",
        "segment": "starter",
        "contacts": [
            {"email": "sofia@acme.example", "name": "Sofia Varga", "role": "champion"},
            {"email": "johnny@acme.example", "name": "Johnny Denver", "role": "exec_sponsor"},
        ],
    }
    body.update(overrides)
    return body


def outcomes_answers(today: dt.date | None = None) -> dict[str, Any]:
    today = today or dt.date.today()
    return {
        "outcomes": ["hire_faster"],
        "objectives": ["careers_site_traffic"],
        "key_results": {
            "careers_site_traffic": {
                "baseline": 8000,
                "target": 12000,
                "due_date": (today + dt.timedelta(days=120)).isoformat(),
            }
        },
        "nps": 9,
    }


def response_payload(account: str = "acme", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_response_id": str(uuid.uuid4()),
        "account": account,
        "channel": "in_app",
        "contact": {"email": "sofia@acme.example", "name": "Sofia Varga"},
        "answers": outcomes_answers(),
    }
    body.update(overrides)
    return body


def event(account: str, name: str, key: str, when: dt.datetime | None = None) -> dict[str, Any]:
    return {
        "account": account,
        "name": name,
        "idempotency_key": key,
        "timestamp": (when or dt.datetime.now(dt.UTC)).isoformat(),
    }


RESPONSES_URL = "/api/v1/surveys/{key}/responses"


def submit_and_apply(
    client: FlaskClient, payload: dict[str, Any], survey: str = "outcomes", **kw: Any
) -> Any:
    """POST a completed response, run the `rules` job (which makes the plan), and return the body of
    the same POST replayed: its `plan` is then the plan made (`status` "ready"), not the pending link."""
    url = RESPONSES_URL.format(key=survey)
    first = client.post(url, json=payload, **kw)
    assert first.status_code in (200, 201), first.get_data(as_text=True)
    apply_queued_rules_job()
    replay = client.post(url, json=payload, **kw)
    assert replay.status_code == 200, replay.get_data(as_text=True)
    return replay.get_json()


def answer_outcomes(
    session: Session,
    contact: ContactRef,
    answers: dict[str, Any],
    *,
    now: dt.datetime,
    account: str = "acme",
    channel: str = "api",
) -> SubmitResult:
    """`contact` answers the outcomes survey for `account`, through the service the API uses (in
    the caller's transaction: a hosted or API answer makes its plan at once)."""
    return submit_response(
        session,
        "outcomes",
        ResponseIn(
            client_response_id=str(uuid.uuid4()),
            account=account,
            answers=answers,
            channel=channel,
            contact=contact,
        ),
        now=now,
    )
