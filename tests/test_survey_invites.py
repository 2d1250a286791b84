"""The survey invite: the bundled playbook's campaign, its checks at import, and the email with a
signed answer link per option and recipient."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.enrollment import enroll_account
from campaigns.sink import SendGridSink
from campaigns.ticker import tick_once
from engine.accounts import Account
from engine.config import Settings
from engine.db import Database, utcnow
from engine.playbook import PlaybookInvalid, import_playbook
from surveys.links import (
    read_answer_token,
)
from tests.factories import make_account
from tests.test_survey_tokens import RECRUITING, token_of

# --- the email ------------------------------------------------------------------------------------


def test_survey_invite_email_carries_signed_links_per_recipient(
    recruiting: dict[str, int],
    database: Database,
    sink: SendGridSink,
    run_worker: Callable[[], bool],
    settings: Settings,
) -> None:
    with database.transaction() as session:
        account = make_account(session, "acme")
        enroll_account(session, account.id, "survey_invite", now=utcnow(), reason="test")
    tick_once(database)
    run_worker()
    messages = {m.to: m for m in sink.messages()}
    assert set(messages) == {"sofia@acme.example", "johnny@acme.example"}
    links: dict[str, list[str]] = {}
    for to, message in messages.items():
        assert message.html is not None and message.text is not None
        assert "%ns" not in message.html and "%nst" not in message.text
        links[to] = re.findall(r'href="(http://northstar\.test/s/outcomes/a/[^"]+)"', message.html)
        assert len(links[to]) == 4
        assert all(link in message.text for link in links[to])  # the plain-text part has them too
        assert "Which outcomes matter most to your team this year?" in message.html
    assert not set(links["sofia@acme.example"]) & set(links["johnny@acme.example"])
    with database.session() as session:
        click = read_answer_token(session, settings, token_of(links["johnny@acme.example"][1]))
        assert (click.contact.email, click.option_value) == ("johnny@acme.example", "hire_faster")
        assert session.scalars(select(Account)).one().external_id == "acme"


# --- the playbook ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"template": "outcomes_survey", "survey": "ghost"}, "no survey 'ghost'"),
        ({"template": "outcomes_survey"}, "uses survey.*"),
        ({"template": "welcome_plan", "survey": "objectives_first"}, "cannot be answered from an email"),
    ],
)
def test_campaign_survey_steps_are_checked_at_import(db: Session, step: dict[str, Any], message: str) -> None:
    document = yaml.safe_load(RECRUITING)
    document["surveys"].append(
        {
            "key": "objectives_first",
            "title": "Objectives",
            "questions": [{"key": "objectives", "kind": "objective_pick", "title": "Which?"}],
        }
    )
    document["campaigns"].append(
        {"key": "probe", "name": "Probe", "steps": [{"key": "s", "kind": "email", **step}]}
    )
    probe = len(document["campaigns"]) - 1
    with pytest.raises(PlaybookInvalid) as caught:
        import_playbook(db, yaml.safe_dump(document))
    assert message in caught.value.errors[f"campaigns[{probe}].steps[0].survey"]


def test_bundled_playbook_has_the_survey_invite_campaign(db: Session) -> None:
    import_playbook(db, RECRUITING)
    from campaigns.models import Campaign

    campaign = db.scalars(select(Campaign).where(Campaign.key == "survey_invite")).one()
    assert [(s.kind.value, s.config) for s in campaign.steps] == [
        ("email", {"template": "outcomes_survey", "survey": "outcomes", "to": ["champion", "exec_sponsor"]})
    ]
