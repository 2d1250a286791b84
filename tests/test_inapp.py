"""In-app messages: cards rendered and sanitized, the widget's inbox API on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.models import Message, MessageStatus
from campaigns.scheduler import run_tick
from content.inapp import SAMPLE_CONTENT, CardReader, render_card, sanitize_fragment
from content.models import MessageTemplate
from engine.accounts import Contact
from engine.db import Database, utcnow
from engine.plans.service import create_plan, get_template
from engine.playbook import PlaybookInvalid, import_playbook, resolve_playbook
from engine.workspaces import ensure_workspace
from tests.factories import make_account

ORIGIN = "https://app.acme.example"
FOREIGN = "https://evil.example"
RECRUITING = resolve_playbook("recruiting")[1]
TIPS = {
    "key": "tips",
    "name": "Tips",
    "steps": [{"key": "tip", "kind": "in_app", "template": "plan_ready_card", "to": ["champion"]}],
}


def with_campaigns(*campaigns: dict[str, Any], templates: list[dict[str, Any]] | None = None) -> str:
    document = yaml.safe_load(RECRUITING)
    document["campaigns"].extend(campaigns)
    document["templates"].extend(templates or [])
    return yaml.safe_dump(document)


@dataclass
class Inbox:
    client: FlaskClient
    database: Database
    secret: str

    def token(self, sub: str = "u-sofia", email: str = "sofia@acme.example") -> str:
        claims = {
            "sub": sub,
            "account": "acme",
            "email": email,
            "exp": int((utcnow() + dt.timedelta(minutes=10)).timestamp()),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def headers(self, *, token: str | None = "", origin: str = ORIGIN) -> dict[str, str]:
        found = {"Origin": origin}
        if token is not None:
            found["Authorization"] = f"Bearer {token or self.token()}"
        return found

    def fetch(self, **options: Any) -> Any:
        return self.client.get("/embed/v1/messages", headers=self.headers(**options))

    def act(self, message_id: int, action: str, **options: Any) -> Any:
        return self.client.post(f"/embed/v1/messages/{message_id}/{action}", headers=self.headers(**options))

    def tick(
        self, *campaigns: str, playbook: str | None = None, unsubscribed: list[str] | None = None
    ) -> None:
        """An account with a plan, its champion Sofia and sponsor Johnny, enrolled in `campaigns`;
        one scheduler tick writes their messages."""
        now = utcnow()
        with self.database.transaction() as session:
            if playbook is not None:
                import_playbook(session, playbook)
            account = make_account(session, "acme")
            sofia = contact(session, "sofia@acme.example")
            sofia.unsubscribed_categories = unsubscribed or []
            create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=now)
            for key in campaigns:
                enroll_account(session, account.id, key, now=now, reason="test")
            run_tick(session, now=now, caps=Caps(0, 0))

    def messages(self, channel: str = "in_app") -> list[Message]:
        with self.database.session() as session:
            return list(
                session.scalars(select(Message).where(Message.channel == channel).order_by(Message.id))
            )


def contact(session: Session, email: str) -> Contact:
    return session.scalars(select(Contact).where(Contact.email == email)).one()


@pytest.fixture
def inbox(client: FlaskClient, database: Database, recruiting: dict[str, int]) -> Inbox:
    with database.transaction() as session:
        secret = ensure_workspace(session, origins=[ORIGIN]).jwt_secret
    return Inbox(client, database, secret)


# Rendering and sanitizing ------------------------------------------------------------------------


def test_sanitizer_keeps_text_markup_and_safe_links_only() -> None:
    dirty = (
        '<p class="x" onclick="steal()">Hi <strong>there</strong><script>alert(1)</script></p>'
        '<style>p{}</style><img src=x onerror="alert(2)"><a href="javascript:alert(3)">bad</a>'
        '<a href="https://help.example/a?x=1&amp;y=2" style="color:red" target="_top">good</a>'
        '<iframe src="https://evil.example"><p>inside</p></iframe><form><input></form><ul><li>one</ul>'
    )
    assert sanitize_fragment(dirty) == (
        "<p>Hi <strong>there</strong></p><a>bad</a>"
        '<a href="https://help.example/a?x=1&amp;y=2" target="_blank" rel="noopener noreferrer">good</a>'
        "<ul><li>one</li></ul>"
    )


def test_variables_are_escaped_and_the_card_is_kept_small() -> None:
    reader = CardReader(first_name='<img src=x onerror="alert(1)">', name="x", account_name="A & B")
    html = render_card("<p>Hi {{ contact.first_name }} at {{ account.name }}</p>", reader, [], field="t")
    assert html == '<p>Hi &lt;img src=x onerror="alert(1)"&gt; at A &amp; B</p>'
    with pytest.raises(Exception, match="must stay under"):
        render_card("<p>{{ 'word ' * 2000 }}</p>", reader, SAMPLE_CONTENT, field="t")


def test_playbook_refuses_broken_in_app_templates_and_mismatched_steps(db: Session) -> None:
    email_only = {"key": "bad_card", "kind": "in_app", "body": '<a href="{{ unsubscribe_url }}">x</a>'}
    with pytest.raises(PlaybookInvalid) as refused:
        import_playbook(db, with_campaigns(templates=[email_only]))
    assert "unsubscribe_url" in str(refused.value.errors)
    wrong_kind = {"key": "w", "name": "W", "steps": [{"key": "s", "kind": "in_app", "template": "next_step"}]}
    with pytest.raises(PlaybookInvalid) as refused:
        import_playbook(db, with_campaigns(wrong_kind))
    assert "'next_step' is an email template; in_app steps need an in_app template" in str(
        refused.value.errors
    )


# The inbox API ------------------------------------------------------------------------------------


def test_the_inbox_needs_an_identity(inbox: Inbox) -> None:
    inbox.tick("nurture")
    response = inbox.fetch(token=None)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"] == "call Northstar.identify({token}) first"
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read why
    forged = jwt.encode(
        {"sub": "u-sofia", "account": "acme", "exp": 2_000_000_000},
        "not-the-workspace-secret-but-long-enough",
    )
    assert inbox.fetch(token=forged).status_code == 401
    (message,) = inbox.messages()
    assert message.status is MessageStatus.QUEUED and message.seen_at is None


def test_a_tick_writes_the_card_and_the_first_fetch_marks_it_seen(inbox: Inbox) -> None:
    inbox.tick("nurture")
    (message,) = inbox.messages()
    assert message.status is MessageStatus.QUEUED and message.template_key == "plan_ready_card"
    assert message.trace["step"] == "plan_ready"

    response = inbox.fetch()
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["strings"] == {"title": "Messages", "dismiss": "Dismiss"}
    (card,) = response.json["messages"]
    assert card["id"] == message.id and card["status"] == "queued"
    assert dt.datetime.fromisoformat(card["created_at"]) == message.created_at
    assert "<strong>Your success plan is ready</strong>" in card["html"]
    assert "Sofia, Acme Inc's plan is one page" in card["html"]
    assert '<a href="http://northstar.test/p/' in card["html"] and 'target="_blank"' in card["html"]
    assert "Post a job in five minutes" in card["html"]  # the step's content item
    seen = inbox.messages()[0]
    assert seen.status is MessageStatus.SEEN and seen.seen_at is not None

    again = inbox.fetch().json["messages"]
    assert [(m["id"], m["status"]) for m in again] == [(message.id, "seen")]
    assert inbox.messages()[0].seen_at == seen.seen_at
    assert inbox.fetch(origin=ORIGIN).json["messages"][0]["html"] == card["html"]


def test_other_contacts_messages_are_invisible(inbox: Inbox) -> None:
    inbox.tick("nurture")
    (message,) = inbox.messages()
    johnny = inbox.token("u-johnny", "johnny@acme.example")
    assert inbox.fetch(token=johnny).json["messages"] == []  # the card went to the champion only
    for action in ("clicked", "dismissed"):
        refused = inbox.act(message.id, action, token=johnny)
        assert refused.status_code == 404 and refused.mimetype == "application/problem+json"
    assert inbox.act(message.id + 1000, "clicked").status_code == 404
    emails = inbox.messages("email")
    assert emails and inbox.act(emails[0].id, "clicked").status_code == 404  # not an in-app message
    assert (
        inbox.client.post(f"/embed/v1/messages/{message.id}/opened", headers=inbox.headers()).status_code
        == 404
    )
    assert inbox.messages()[0].status is MessageStatus.QUEUED


def test_clicked_and_dismissed_are_idempotent_and_dismissed_never_come_back(inbox: Inbox) -> None:
    inbox.tick("nurture", "tips", playbook=with_campaigns(TIPS))
    first, second = inbox.messages()
    assert [m["id"] for m in inbox.fetch().json["messages"]] == [second.id, first.id]  # newest first

    clicked = inbox.act(first.id, "clicked")
    assert clicked.status_code == 200 and clicked.json == {"id": first.id, "status": "clicked"}
    assert clicked.headers["Access-Control-Allow-Origin"] == ORIGIN
    clicked_at = inbox.messages()[0].clicked_at
    assert inbox.act(first.id, "clicked").json["status"] == "clicked"
    assert inbox.messages()[0].clicked_at == clicked_at is not None
    assert [m["id"] for m in inbox.fetch().json["messages"]] == [second.id]

    assert inbox.act(second.id, "dismissed").json == {"id": second.id, "status": "dismissed"}
    assert inbox.act(second.id, "dismissed").json["status"] == "dismissed"
    assert inbox.act(second.id, "clicked").json["status"] == "dismissed"  # a dismissal is final
    assert inbox.fetch().json["messages"] == []
    _, dismissed = inbox.messages()
    assert dismissed.status is MessageStatus.DISMISSED
    assert dismissed.dismissed_at is not None and dismissed.clicked_at is not None


def test_suppressed_messages_never_show(inbox: Inbox) -> None:
    inbox.tick("nurture", unsubscribed=["nurture"])
    (message,) = inbox.messages()
    assert message.status is MessageStatus.SUPPRESSED
    assert inbox.fetch().json["messages"] == []
    assert inbox.act(message.id, "clicked").status_code == 404
    assert inbox.messages()[0].status is MessageStatus.SUPPRESSED


def test_deferred_messages_show_only_once_the_window_opens(inbox: Inbox) -> None:
    start = (utcnow().hour + 2) % 24
    tips = {**TIPS, "send_window": {"start_hour": start, "end_hour": start + 1}}
    inbox.tick("tips", playbook=with_campaigns(tips))
    (message,) = inbox.messages()
    assert message.status is MessageStatus.DEFERRED and message.not_before is not None
    assert inbox.fetch().json["messages"] == []
    assert inbox.act(message.id, "dismissed").status_code == 404
    with inbox.database.transaction() as session:
        run_tick(session, now=message.not_before, caps=Caps(0, 0))
    assert [m["id"] for m in inbox.fetch().json["messages"]] == [message.id]


def test_a_card_that_no_longer_renders_is_marked_failed_not_shown(inbox: Inbox) -> None:
    inbox.tick("nurture")
    with inbox.database.transaction() as session:
        template = session.scalars(
            select(MessageTemplate).where(MessageTemplate.key == "plan_ready_card")
        ).one()
        template.body = "<p>{{ plan.owner.name }}</p>"
    assert inbox.fetch().json["messages"] == []
    (message,) = inbox.messages()
    assert message.status is MessageStatus.FAILED and message.reason is not None
    assert message.reason.startswith("render failed: ")


def test_cors_for_allowed_origins_only(inbox: Inbox) -> None:
    inbox.tick("nurture")
    (message,) = inbox.messages()
    for path in ("/embed/v1/messages", f"/embed/v1/messages/{message.id}/clicked"):
        preflight = inbox.client.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,x-northstar-workspace",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    refused = inbox.fetch(origin=FOREIGN)
    assert refused.status_code == 403
    assert refused.json["detail"].startswith(f"{FOREIGN} is not an allowed origin of workspace 'default'")
    assert refused.headers["Access-Control-Allow-Origin"] == FOREIGN  # readable, so the developer learns why
    assert inbox.act(message.id, "clicked", origin=FOREIGN).status_code == 403
    assert inbox.messages()[0].status is MessageStatus.QUEUED  # nothing read or changed

    allowed = inbox.fetch()
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in allowed.headers["Vary"]


def test_the_inbox_speaks_the_widgets_locale(inbox: Inbox) -> None:
    inbox.tick("nurture")
    response = inbox.client.get("/embed/v1/messages?locale=de-AT", headers=inbox.headers())
    assert response.json["strings"] == {"title": "Nachrichten", "dismiss": "Ausblenden"}
