"""SendGrid's signed event webhook and the reconciler of timed-out sends, on real PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, select, update

from campaigns import scheduler
from campaigns.jobs import deliver_batch
from campaigns.models import Message, MessageStatus, WebhookEvent
from campaigns.sink import SendGridSink
from campaigns.ticker import refresh_all_plans, tick_once
from campaigns.webhooks import UNKNOWN_FAILED_REASON, reconcile_unknown
from engine.accounts import Contact, ContactRole
from engine.config import Settings, settings_from_env
from engine.db import Database, utcnow
from engine.errors import ConfigurationError
from surveys.service import ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers

URL = "/webhooks/sendgrid/events"
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
# What SendGrid's dashboard shows as the verification key: base64 DER, no PEM armour.
PUBLIC_KEY = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
TEAM = (
    ("ann@acme.example", ContactRole.CHAMPION),
    ("bob@acme.example", ContactRole.EXEC_SPONSOR),
    ("cat@acme.example", ContactRole.POWER_USER),
    ("dan@acme.example", ContactRole.OTHER),
)
Worker = Callable[[], bool]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(sendgrid_webhook_public_key=PUBLIC_KEY)


def sign(body: bytes, timestamp: int, key: ec.EllipticCurvePrivateKey = PRIVATE_KEY) -> dict[str, str]:
    """As SendGrid does: ECDSA P-256 / SHA-256 over the timestamp header followed by the raw body."""
    signature = key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }


def post(client: FlaskClient, events: Any, *, body: bytes | None = None, **sign_kwargs: Any) -> Any:
    raw = body if body is not None else json.dumps(events).encode()
    timestamp = sign_kwargs.pop("timestamp", int(time.time()))
    return client.post(
        URL, data=raw, headers=sign(raw, timestamp, **sign_kwargs), content_type="application/json"
    )


def sg_event(kind: str, message: Message | None, **extra: Any) -> dict[str, Any]:
    """One event as SendGrid posts it: our custom_args (message_id) arrive as top-level keys."""
    body: dict[str, Any] = {
        "email": message.contact.email if message else "stranger@elsewhere.example",
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "abc123.filter0001",
        "category": ["nurture"],
    }
    if message is not None:
        body["message_id"] = str(message.id)
    body.update(extra)
    return body


def enrol(database: Database, contacts: tuple[tuple[str, ContactRole], ...] = TEAM) -> None:
    with database.transaction() as session:
        make_account(session, "acme", contacts=contacts)
        submit_response(
            session,
            "outcomes",
            ResponseIn(client_response_id="acme-response", account="acme", answers=outcomes_answers()),
            now=utcnow(),
        )


def messages(database: Database) -> dict[str, Message]:
    """Every email by its recipient's address (one each in these tests), contact loaded."""
    with database.session() as session:
        found = session.scalars(select(Message).where(Message.channel == "email").order_by(Message.id)).all()
        for message in found:
            _ = message.contact.email
        return {m.contact.email: m for m in found}


def contact(database: Database, email: str) -> Contact:
    with database.session() as session:
        return session.scalars(select(Contact).where(Contact.email == email)).one()


@pytest.fixture
def sent(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> dict[str, Message]:
    """The welcome email sent to the whole team through the SendGrid sink."""
    enrol(database)
    tick_once(database)
    run_worker()
    assert len(sink.messages()) == len(TEAM)
    return messages(database)


def stored_events(database: Database) -> list[WebhookEvent]:
    with database.session() as session:
        return list(session.scalars(select(WebhookEvent).order_by(WebhookEvent.id)))


def test_a_signed_batch_updates_messages_and_contacts(
    client: FlaskClient, database: Database, sent: dict[str, Message]
) -> None:
    ann, bob, cat, dan = (sent[email] for email, _role in TEAM)
    response = post(
        client,
        [
            sg_event("processed", ann),
            sg_event("delivered", ann, response="250 OK"),
            sg_event("open", ann),
            sg_event("click", ann, url="https://northstar.test/p/plan"),
            sg_event("bounce", bob, type="bounce", reason="550 5.1.1 mailbox does not exist"),
            sg_event("dropped", cat, reason="Invalid SMTPAPI header"),
            sg_event("delivered", dan),
            sg_event("spamreport", dan),
            sg_event("group_unsubscribe", dan, asm_group_id=7),
        ],
    )

    assert response.status_code == 200
    assert response.json == {
        "received": 9,
        "stored": 9,
        "duplicates": 0,
        "unmatched": 0,
        "unknown_types": 0,
        "skipped": 0,
    }
    now = messages(database)
    assert now["ann@acme.example"].status == MessageStatus.CLICKED
    assert None not in (now["ann@acme.example"].delivered_at, now["ann@acme.example"].opened_at)
    assert now["ann@acme.example"].clicked_at is not None
    assert now["bob@acme.example"].status == MessageStatus.BOUNCED
    assert "mailbox does not exist" in (now["bob@acme.example"].reason or "")
    assert now["cat@acme.example"].status == MessageStatus.DROPPED
    assert now["cat@acme.example"].reason == "dropped: Invalid SMTPAPI header"
    assert now["dan@acme.example"].status == MessageStatus.DELIVERED
    assert contact(database, "bob@acme.example").bounced_at is not None
    assert contact(database, "cat@acme.example").bounced_at is None  # an invalid header is not a bounce
    dan_contact = contact(database, "dan@acme.example")
    assert dan_contact.spam_reported_at is not None and dan_contact.unsubscribed_at is not None
    assert contact(database, "ann@acme.example").mailable
    assert [e.message_id for e in stored_events(database)][:2] == [ann.id, ann.id]


def test_a_forged_signature_is_refused_and_changes_nothing(
    client: FlaskClient, database: Database, sent: dict[str, Message]
) -> None:
    events = [sg_event("bounce", sent["ann@acme.example"], type="bounce")]
    forged = post(client, events, key=ec.generate_private_key(ec.SECP256R1()))
    raw = json.dumps(events).encode()
    tampered = client.post(
        URL,
        data=raw.replace(b"bounce", b"click"),
        headers=sign(raw, int(time.time())),
        content_type="application/json",
    )
    unsigned = client.post(URL, data=raw, content_type="application/json")
    junk = client.post(
        URL,
        data=raw,
        content_type="application/json",
        headers={**sign(raw, int(time.time())), "X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
    )

    for response in (forged, tampered, unsigned, junk):
        assert response.status_code == 403
        assert response.mimetype == "application/problem+json"
    assert "signature" in forged.json["detail"]
    assert stored_events(database) == []
    assert messages(database)["ann@acme.example"].status == MessageStatus.SENT
    assert contact(database, "ann@acme.example").bounced_at is None


def test_a_replayed_batch_changes_nothing(
    client: FlaskClient, database: Database, sent: dict[str, Message]
) -> None:
    ann = sent["ann@acme.example"]
    events = [sg_event("delivered", ann), sg_event("open", ann), sg_event("unsubscribe", ann)]
    assert post(client, events).json["stored"] == 3
    before = messages(database)["ann@acme.example"]
    unsubscribed_at = contact(database, "ann@acme.example").unsubscribed_at

    replayed = post(client, events)  # SendGrid retrying a post it thinks failed, re-signed

    assert replayed.status_code == 200
    assert replayed.json["stored"] == 0 and replayed.json["duplicates"] == 3
    after = messages(database)["ann@acme.example"]
    assert (after.status, after.opened_at, after.updated_at) == (
        before.status,
        before.opened_at,
        before.updated_at,
    )
    assert contact(database, "ann@acme.example").unsubscribed_at == unsubscribed_at
    assert len(stored_events(database)) == 3


@pytest.mark.parametrize("skew", [-301, 301, -3600])
def test_a_stale_or_future_timestamp_is_refused(
    client: FlaskClient, database: Database, sent: dict[str, Message], skew: int
) -> None:
    response = post(
        client, [sg_event("delivered", sent["ann@acme.example"])], timestamp=int(time.time()) + skew
    )
    assert response.status_code == 403
    assert "300 s" in response.json["detail"]
    assert stored_events(database) == []


def test_a_timestamp_that_is_not_a_number_is_400(client: FlaskClient, app: Flask) -> None:
    raw = b"[]"
    headers = {**sign(raw, int(time.time())), "X-Twilio-Email-Event-Webhook-Timestamp": "yesterday"}
    response = client.post(URL, data=raw, headers=headers, content_type="application/json")
    assert response.status_code == 400
    assert "Unix time" in response.json["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b'[{"event": "delivered",', 400, "not valid JSON"),
        (b'{"event": "delivered"}', 400, "JSON array"),
        (b"[NaN]", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b"\xff\xfe[]", 403, "signature"),  # SendGrid signs UTF-8 text: bytes that are not cannot match
    ],
)
def test_a_malformed_body_is_a_problem_not_a_500(
    client: FlaskClient, app: Flask, body: bytes, status: int, detail: str
) -> None:
    response = post(client, None, body=body)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert detail in response.json["detail"]


def test_unknown_messages_and_event_types_are_stored_logged_and_answered_200(
    client: FlaskClient, database: Database, sent: dict[str, Message], caplog: pytest.LogCaptureFixture
) -> None:
    stranger = sg_event("delivered", None, message_id="99999999", sg_event_id="stranger-1")
    foreign = sg_event("delivered", None, sg_event_id="foreign-1")  # another system's mail, no custom_args
    future = sg_event("machine_opened", sent["ann@acme.example"], sg_event_id="future-1")
    nul = sg_event("open", sent["bob@acme.example"], useragent="Mozilla\u0000/5.0")
    with caplog.at_level(logging.WARNING, logger="campaigns.webhooks"):
        response = post(client, [stranger, foreign, future, nul, "not an event", 42])

    assert response.status_code == 200
    assert response.json == {
        "received": 6,
        "stored": 4,
        "duplicates": 0,
        "unmatched": 2,
        "unknown_types": 1,
        "skipped": 2,
    }
    by_id = {e.provider_event_id: e for e in stored_events(database)}
    assert by_id["stranger-1"].message_id is None and by_id["stranger-1"].payload["message_id"] == "99999999"
    assert by_id["foreign-1"].message_id is None
    assert by_id["future-1"].message_id == sent["ann@acme.example"].id
    assert "stranger-1" in caplog.text and "message_id='99999999'" in caplog.text
    assert "machine_opened" in caplog.text
    assert messages(database)["bob@acme.example"].status == MessageStatus.OPENED


def test_status_only_moves_forward(client: FlaskClient, database: Database, sent: dict[str, Message]) -> None:
    ann = sent["ann@acme.example"]
    earlier = int(time.time()) - 60
    assert post(client, [sg_event("click", ann)]).status_code == 200
    # SendGrid posts from several servers: the delivered and open events arrive after the click.
    assert (
        post(client, [sg_event("delivered", ann, timestamp=earlier), sg_event("open", ann)]).status_code
        == 200
    )
    assert post(client, [sg_event("processed", ann, timestamp=earlier)]).status_code == 200

    now = messages(database)["ann@acme.example"]
    assert now.status == MessageStatus.CLICKED
    assert now.delivered_at == dt.datetime.fromtimestamp(earlier, dt.UTC)
    assert now.opened_at is not None


def test_a_bounce_suppresses_the_next_send(
    client: FlaskClient, database: Database, sent: dict[str, Message], sink: SendGridSink
) -> None:
    bounce = sg_event("bounce", sent["ann@acme.example"], type="bounce", reason="550 no such user")
    assert post(client, [bounce]).status_code == 200

    with database.transaction() as session:  # a week on: the nurture's next step is due for Ann
        result = scheduler.run_tick(session, now=utcnow() + dt.timedelta(days=8))

    assert result.messages_suppressed >= 1
    with database.session() as session:
        to_ann = session.scalars(
            select(Message)
            .join(Contact)
            .where(Contact.email == "ann@acme.example", Message.channel == "email")
            .order_by(Message.id.desc())
        ).first()
    assert to_ann is not None and to_ann.id != sent["ann@acme.example"].id
    assert (to_ann.status, to_ann.reason) == (MessageStatus.SUPPRESSED, "bounced")
    assert len(sink.messages()) == len(TEAM)


def test_a_blocked_bounce_marks_the_message_but_does_not_suppress_the_contact(
    client: FlaskClient, database: Database, sent: dict[str, Message]
) -> None:
    blocked = sg_event("bounce", sent["ann@acme.example"], type="blocked", reason="421 try again later")
    assert post(client, [blocked]).status_code == 200
    assert messages(database)["ann@acme.example"].status == MessageStatus.BOUNCED
    assert contact(database, "ann@acme.example").bounced_at is None


def test_without_a_public_key_every_post_is_refused_with_what_to_set(
    client: FlaskClient, app: Flask, database: Database, settings: Settings
) -> None:
    app.extensions["northstar.settings"] = settings.with_overrides(sendgrid_webhook_public_key=None)
    response = post(client, [sg_event("delivered", None)])
    assert response.status_code == 503
    assert "NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json["detail"]
    assert stored_events(database) == []


def test_a_large_batch_costs_the_same_statements_as_a_small_one(
    client: FlaskClient, database: Database, sent: dict[str, Message], pg_engine: Engine
) -> None:
    def statements(batch: list[dict[str, Any]]) -> int:
        count = 0

        def counted(*_args: Any) -> None:
            nonlocal count
            count += 1

        event.listen(pg_engine, "before_cursor_execute", counted)
        try:
            assert post(client, batch).status_code == 200
        finally:
            event.remove(pg_engine, "before_cursor_execute", counted)
        return count

    team = list(sent.values())
    small = statements([sg_event("open", team[i % 4]) for i in range(8)])
    large = statements([sg_event("click", team[i % 4]) for i in range(1500)])  # again moves all four
    assert large == small <= 4  # lock the messages, store the events, update the messages
    assert len(stored_events(database)) == 1508


@pytest.fixture
def timed_out(recruiting: object, database: Database, sink: SendGridSink) -> dict[str, Message]:
    """Ann's and Bob's welcome: SendGrid took it but the answer came after the client gave up."""
    enrol(database, TEAM[:2])
    batch = tick_once(database).batches[0]
    sink.delay_next(3.0)  # longer than the test settings' 2 s client timeout
    deliver_batch(batch)
    sink.wait_for(2)
    found = messages(database)
    assert {m.status for m in found.values()} == {MessageStatus.UNKNOWN}
    return found


def test_events_settle_an_unknown_send_as_they_arrive(
    client: FlaskClient, database: Database, timed_out: dict[str, Message]
) -> None:
    assert post(client, [sg_event("processed", timed_out["ann@acme.example"])]).status_code == 200
    ann = messages(database)["ann@acme.example"]
    assert ann.status == MessageStatus.SENT
    assert "was unknown" in (ann.reason or "")
    assert messages(database)["bob@acme.example"].status == MessageStatus.UNKNOWN


def test_the_reconciler_resolves_unknown_sends_from_events_and_fails_silent_ones_without_resending(
    client: FlaskClient,
    database: Database,
    timed_out: dict[str, Message],
    sink: SendGridSink,
    run_worker: Worker,
) -> None:
    ann, bob = timed_out["ann@acme.example"], timed_out["bob@acme.example"]
    assert post(client, [sg_event("delivered", ann), sg_event("open", ann)]).status_code == 200
    with database.transaction() as session:
        # Events that were stored before the row became `unknown` (the crash recovery marks rows
        # whose worker died mid-send) are only seen by the reconciler.
        session.execute(update(Message).where(Message.id == ann.id).values(status=MessageStatus.UNKNOWN))

    with database.transaction() as session:
        first = reconcile_unknown(session, now=utcnow())
    assert (first.resolved, first.failed, first.waiting) == (1, 0, 1)
    assert messages(database)["ann@acme.example"].status == MessageStatus.OPENED
    assert messages(database)["bob@acme.example"].status == MessageStatus.UNKNOWN  # within the 24 h

    with database.transaction() as session:  # a day on, SendGrid never said a word about Bob's
        session.execute(
            update(Message)
            .where(Message.id == bob.id)
            .values(sent_at=utcnow() - dt.timedelta(hours=25), updated_at=utcnow() - dt.timedelta(hours=25))
        )
    refresh_all_plans(database)  # the scheduler's hourly pass

    bob_now = messages(database)["bob@acme.example"]
    assert (bob_now.status, bob_now.reason) == (MessageStatus.FAILED, UNKNOWN_FAILED_REASON)
    assert messages(database)["ann@acme.example"].status == MessageStatus.OPENED
    run_worker()
    time.sleep(0.2)
    assert len(sink.requests) == 1 and len(sink.messages()) == 2  # the one timed-out request, never again


def test_a_late_event_corrects_a_reconciled_failure(
    client: FlaskClient, database: Database, timed_out: dict[str, Message]
) -> None:
    with database.transaction() as session:
        reconcile_unknown(session, now=utcnow() + dt.timedelta(hours=25))
    assert messages(database)["bob@acme.example"].status == MessageStatus.FAILED
    assert post(client, [sg_event("delivered", timed_out["bob@acme.example"])]).status_code == 200
    assert messages(database)["bob@acme.example"].status == MessageStatus.DELIVERED


def test_the_public_key_is_checked_at_start_up() -> None:
    assert settings_from_env(
        {"NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY": PUBLIC_KEY}
    ).sendgrid_webhook_public_key
    pem = (
        PRIVATE_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert settings_from_env({"NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY": pem}).sendgrid_webhook_public_key
    with pytest.raises(
        ConfigurationError, match="NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid"
    ) as bad:
        settings_from_env({"NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY": "copy-paste-went-wrong"})
    assert "\n" not in bad.value.detail
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError, match="P-256"):
        settings_from_env({"NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(p384).decode()})
