"""In-app cards in the contact's locale: the German template and content item for a German contact,
the default locale's for everyone else (and for a key with no German version), on real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.inapp import Links, open_inbox
from campaigns.scheduler import run_tick
from engine.accounts import Contact, ContactRole
from engine.playbook import import_playbook, resolve_playbook
from tests.factories import make_account

NOW = dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)
LINKS = Links("https://northstar.example", "secret")
GERMAN_CARD = {
    "key": "plan_ready_card",
    "locale": "de",
    "kind": "in_app",
    "body": "<p>Hallo {{ contact.first_name }}: Ihr Erfolgsplan ist fertig.</p>"
    '{% if content %}<p><a href="{{ content[0].url }}">{{ content[0].title }}</a></p>{% endif %}',
}
ONLY_DEFAULT = {"key": "tip_card", "kind": "in_app", "body": "<p>A tip for {{ contact.first_name }}</p>"}
GERMAN_ITEM = {
    "key": "post-a-job-in-five-minutes",
    "locale": "de",
    "kind": "video",
    "title": "Eine Stelle in fünf Minuten ausschreiben",
    "url": "https://help.northstar.example/de/stelle-in-fuenf-minuten",
    "summary": "Von der Freigabe bis live.",
    "minutes": 3,
    "tags": {"outcomes": ["hire_faster"]},
}
CARDS = {
    "key": "cards",
    "name": "Cards",
    "steps": [
        {
            "key": "ready",
            "kind": "in_app",
            "template": "plan_ready_card",
            "content": ["post-a-job-in-five-minutes"],
        },
        {"key": "tip", "kind": "in_app", "template": "tip_card"},
    ],
}


def test_in_app_cards_come_in_the_contact_locale_with_default_fallback(db: Session) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["templates"].extend([GERMAN_CARD, ONLY_DEFAULT])
    document["content"].append(GERMAN_ITEM)
    document["campaigns"].append(CARDS)
    import_playbook(db, yaml.safe_dump(document))
    people = (
        ("anna@acme.example", ContactRole.CHAMPION),
        ("bob@acme.example", ContactRole.EXEC_SPONSOR),
        ("chloe@acme.example", ContactRole.POWER_USER),
    )
    account = make_account(db, "acme", contacts=people)
    contacts = {c.email: c for c in db.scalars(select(Contact).where(Contact.account_id == account.id))}
    contacts["anna@acme.example"].locale = "de-AT"  # German, by its language
    contacts["chloe@acme.example"].locale = "fr"  # no French version: the default locale's
    enroll_account(db, account.id, "cards", now=NOW, reason="test")
    run_tick(db, now=NOW, caps=Caps(0, 0))

    def cards(email: str) -> str:
        return "\n".join(m.html for m in open_inbox(db, contacts[email], links=LINKS, now=NOW))

    anna = cards("anna@acme.example")
    assert "Hallo Anna: Ihr Erfolgsplan ist fertig." in anna
    assert "Eine Stelle in fünf Minuten ausschreiben" in anna
    assert "https://help.northstar.example/de/stelle-in-fuenf-minuten" in anna
    assert "Your success plan is ready" not in anna
    assert "A tip for Anna" in anna  # no German tip_card: the default one
    for email, name in (("bob@acme.example", "Bob"), ("chloe@acme.example", "Chloe")):
        shown = cards(email)
        assert "Your success plan is ready" in shown and "Hallo" not in shown
        assert "Eine Stelle" not in shown
        assert f"A tip for {name}" in shown
