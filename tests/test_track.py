"""Tracked links end to end: a nurture email whose step asks for the top recommended item goes out
with signed links; following one records the click on the message and the item and redirects only
to the item's registered URL; tampered, expired and HEAD requests record nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
import yaml
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select

from campaigns.models import Message, MessageStatus
from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from content.emails import personalise
from content.library import save_item
from content.models import ContentClick, ContentItem, ContentSend
from content.schemas import ContentItemSchema
from content.tracking import click_token, record_sends
from engine.db import Database
from engine.playbook import import_playbook, resolve_playbook
from tests.conftest import SECRET
from tests.test_delivery import enrol

LINK = re.compile(r"http://northstar\.test/t/([A-Za-z0-9_.\-]+)")


@pytest.fixture
def recommending(database: Database) -> None:
    """The recruiting playbook whose welcome email also sends the top recommended item."""
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    welcome = next(t for t in document["templates"] if t["key"] == "welcome_plan")
    welcome["body"] += (
        '<p>Start here: <a href="{{ recommended.url }}">{{ recommended.title }}</a> '
        "({{ recommended.why }})</p>\n"
    )
    document["campaigns"][0]["steps"][0]["recommend"] = "next_milestone"
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump(document))


def _sofia_email(sink: SendGridSink) -> tuple[str, str]:
    message = next(m for m in sink.messages() if m.to == "sofia@acme.example")
    return personalise(message.html or "", message.substitutions), personalise(
        message.text or "", message.substitutions
    )


def test_emails_carry_tracked_links_and_a_click_is_recorded_then_redirected(
    recommending: None,
    database: Database,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
    client: FlaskClient,
) -> None:
    enrol(database)
    tick_once(database)
    run_worker()
    html, text = _sofia_email(sink)
    assert "help.northstar.example" not in html  # every content link goes through /t/
    assert "Start here:" in html and "helps with the next milestone" in html
    tokens = LINK.findall(html)
    # the recommended item leads the step's list and the template links it again: 4 items, 5 links
    assert len(tokens) == 5 and len(set(tokens)) == 4
    assert LINK.search(text)
    with database.session() as session:
        email = session.scalar(
            select(Message).where(Message.channel == "email", Message.contact.has(email="sofia@acme.example"))
        )
        assert email is not None and email.status is MessageStatus.SENT
        sent_items = set(
            session.scalars(select(ContentSend.content_item_id).where(ContentSend.message_id == email.id))
        )
        assert len(sent_items) == 4
    with database.transaction() as session:  # a retried job records the same pairs again: ignored
        again = [(email.id, item, email.contact_id) for item in sorted(sent_items)]
        record_sends(session, again + again[:1], now=dt.datetime.now(dt.UTC))
    with database.session() as session:
        recorded = select(func.count()).select_from(ContentSend).where(ContentSend.message_id == email.id)
        assert session.scalar(recorded) == 4
    response = client.get(f"/t/{tokens[0]}?next=https://evil.example/")  # extra parameters change nothing
    assert response.status_code == 302
    with database.session() as session:
        click = session.scalar(select(ContentClick))
        assert click is not None and click.message_id == email.id and click.contact_id == email.contact_id
        clicked = session.get(ContentItem, click.content_item_id)
        assert clicked is not None and response.headers["Location"] == clicked.url  # its registered URL only
        message = session.get(Message, email.id)
        assert (
            message is not None and message.status is MessageStatus.CLICKED and message.clicked_at is not None
        )


def test_the_recommended_item_is_not_sent_again_to_the_same_contact(
    recommending: None, database: Database, sink: SendGridSink, run_worker: Callable[[], bool]
) -> None:
    from content.recommend import recommend
    from engine.accounts import Contact
    from engine.plans.service import active_plan

    enrol(database)
    tick_once(database)
    run_worker()
    with database.session() as session:
        sofia = session.scalar(select(Contact).where(Contact.email == "sofia@acme.example"))
        assert sofia is not None
        plan = active_plan(session, sofia.account_id)
        sent = set(
            session.scalars(select(ContentSend.content_item_id).where(ContentSend.contact_id == sofia.id))
        )
        assert not sent & {r.item.id for r in recommend(session, plan, sofia, 10)}


@pytest.fixture
def item_id(database: Database, recruiting: object) -> int:
    with database.transaction() as session:
        return session.scalar(select(ContentItem.id).where(ContentItem.key == "first-90-days"))  # type: ignore[return-value]


def _clicks(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(ContentClick)) or 0)


def test_tampered_links_get_a_friendly_page_and_record_nothing(
    item_id: int, client: FlaskClient, database: Database
) -> None:
    token = click_token(SECRET, item_id, None)
    for bad in (
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        click_token("another-secret", item_id, None),
        "x" * 600,
    ):
        response = client.get(f"/t/{bad}")
        assert response.status_code == 400
        body = response.get_data(as_text=True)
        assert (
            "This link does not work" in body and "Traceback" not in body and "Nothing was recorded" in body
        )
    assert _clicks(database) == 0


def test_expired_links_get_410_and_head_requests_record_nothing(
    item_id: int, client: FlaskClient, database: Database
) -> None:
    with freeze_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=400)):
        old = click_token(SECRET, item_id, None)
    response = client.get(f"/t/{old}")
    assert response.status_code == 410 and "This link has expired" in response.get_data(as_text=True)
    fresh = click_token(SECRET, item_id, None)
    assert client.head(f"/t/{fresh}").status_code == 302  # a mail scanner checking the link
    assert _clicks(database) == 0
    assert client.get(f"/t/{fresh}").status_code == 302
    assert _clicks(database) == 1


def test_a_deleted_item_and_a_body_only_item(item_id: int, client: FlaskClient, database: Database) -> None:
    with database.transaction() as session:
        hosted = save_item(
            session,
            ContentItemSchema().load(
                {
                    "key": "hosted",
                    "kind": "checklist",
                    "title": "Hosted",
                    "body": "# Do this\n\n- [a link](https://x.example)",
                }
            ),
        )
        hosted_id = hosted.id
        session.delete(session.get(ContentItem, item_id))
    gone = client.get(f"/t/{click_token(SECRET, item_id, None)}")
    assert gone.status_code == 404 and "no longer in our library" in gone.get_data(as_text=True)
    page = client.get(f"/t/{click_token(SECRET, hosted_id, None)}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "<h1>Do this</h1>" in body and 'rel="noopener noreferrer"' in body
    assert _clicks(database) == 1


def test_each_recipient_gets_the_template_in_their_locale(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Callable[[], bool]
) -> None:
    from engine.accounts import Contact

    enrol(database)
    with database.transaction() as session:
        sofia = session.scalar(select(Contact).where(Contact.email == "sofia@acme.example"))
        assert sofia is not None
        sofia.locale = "de-AT"
    tick_once(database)
    run_worker()
    subjects = {m.to: personalise(m.subject or "", m.substitutions) for m in sink.messages()}
    assert subjects["sofia@acme.example"] == "Sofia, Ihr Erfolgsplan für Acme Inc ist fertig"
    assert subjects["johnny@acme.example"].startswith("Johnny, your success plan for Acme Inc")
