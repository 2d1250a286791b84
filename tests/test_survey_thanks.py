"""The hosted survey's thank-you page says what the answers did to the account's plan: made it,
changed it (a second contact's new objective joins the plan with their numbers), or left it as it
was (the rules keep an account's active plan, and what it measures already). The pages and links
themselves: tests/test_survey_links.py."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.accounts import Contact
from engine.config import Settings
from engine.db import Database
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook
from surveys.links import survey_link
from tests.factories import make_account
from tests.test_survey_links import post_page
from tests.test_survey_tokens import RECRUITING


@pytest.fixture
def acme(database: Database, recruiting: dict[str, int], settings: Settings) -> dict[str, Any]:
    """Acme and its champion's hosted survey link."""
    with database.transaction() as session:
        champion = make_account(session, "acme").contacts[0]
        return {"survey": survey_link(settings, champion, "outcomes").removeprefix(settings.public_url)}


def complete_hosted_survey(
    client: FlaskClient, path: str, outcome: str, objective: str, target: str | None = None
) -> str:
    """Answer every page of the hosted outcomes survey (key results as prefilled, but for `target`
    when given, due in 100 days); the thank-you page."""
    first = post_page(client, path, {"q.outcomes": [outcome]})
    second = post_page(client, first.headers["Location"], {"q.objectives": [objective]})
    numbers = {f"kr.{objective}.due_date": (dt.date.today() + dt.timedelta(days=100)).isoformat()}
    if target is not None:
        numbers[f"kr.{objective}.target"] = target
    third = post_page(client, second.headers["Location"], numbers)
    done = post_page(client, third.headers["Location"], {"q.role": "exec", "q.nps": "10"})
    assert done.status_code == 303 and done.headers["Location"].endswith("&done=1"), done.get_data(
        as_text=True
    )
    return str(client.get(done.headers["Location"]).get_data(as_text=True))


@pytest.fixture
def colleague(database: Database, acme: dict[str, Any], settings: Settings) -> str:
    """The hosted survey link of acme's second contact."""
    with database.session() as session:
        contact = session.scalars(select(Contact).where(Contact.email == "johnny@acme.example")).one()
        return survey_link(settings, contact, "outcomes").removeprefix(settings.public_url)


def plan_objectives(database: Database) -> list[str]:
    with database.session() as session:
        plan = session.scalars(select(SuccessPlan)).one()
        return [kr.objective_key for kr in plan.key_results]


def after_the_champion(
    client: FlaskClient, acme: dict[str, Any], colleague: str, outcome: str, objective: str, target: str
) -> str:
    """The champion's answers make the plan (time to fill); then the colleague answers: his thank-you."""
    first = complete_hosted_survey(client, acme["survey"], "hire_faster", "time_to_fill")
    assert "We turned your answers into a one-page success plan" in first
    return complete_hosted_survey(client, colleague, outcome, objective, target)


def test_a_second_contacts_new_objective_joins_the_plan_with_their_numbers(
    client: FlaskClient, acme: dict[str, Any], colleague: str, database: Database
) -> None:
    thanks = after_the_champion(client, acme, colleague, "keep_people", "regrettable_attrition", "2.5")
    # The rules keep the account's plan; his objective joins it, with his target and date.
    assert plan_objectives(database) == ["time_to_fill", "regrettable_attrition"]
    with database.session() as session:
        plan = session.scalars(select(SuccessPlan)).one()
        added = plan.key_results[1]
        assert added.target == 2.5 and added.due_date == dt.date.today() + dt.timedelta(days=100)
        revision = plan.revisions[-1]
        assert (revision.actor, revision.channel) == ("customer via survey", "hosted")
        assert revision.summary.startswith("Measure added: ")
    assert "We updated Acme Inc’s one-page success plan from your answers:" in thanks
    assert "already has a one-page success plan" not in thanks
    # The plan's own page tells the customer who added it.
    plan_page = client.get(re.findall(r'href="(/p/[^"]+)"', thanks)[0]).get_data(as_text=True)
    assert "Your team (survey answer)" in plan_page


def test_a_second_contacts_answers_keep_the_plan_and_the_thank_you_says_so(
    client: FlaskClient, acme: dict[str, Any], colleague: str, database: Database
) -> None:
    thanks = after_the_champion(client, acme, colleague, "hire_faster", "time_to_fill", "25")
    # The plan measures his objective already: its numbers are changed on the plan, not by a
    # second survey; the plan is left as it was, and the page says so.
    assert plan_objectives(database) == ["time_to_fill"]
    with database.session() as session:
        assert session.scalars(select(SuccessPlan)).one().key_results[0].target == 30
    assert "Thank you! We have your answers." in thanks
    assert "Acme Inc already has a one-page success plan, so your answers did not change it." in thanks
    assert "saved and shared with your customer success team" in thanks
    assert "We turned your answers" not in thanks and "Your success plan is ready" not in thanks
    assert re.search(r'<a class="button" href="/p/[^"]+">Open your plan</a>', thanks)
    # Opening his link again later says the same, not "your success plan is ready".
    again = client.get(colleague).get_data(as_text=True)
    assert (
        "You already answered — thank you" in again
        and "Acme Inc already has a one-page success plan" in again
    )
    assert "your success plan is ready" not in again
    assert "Your answers are in, and your success plan is ready." in client.get(acme["survey"]).get_data(
        as_text=True
    )


def test_a_second_contacts_answers_that_a_rule_adds_to_the_plan_say_it_was_updated(
    client: FlaskClient, acme: dict[str, Any], colleague: str, database: Database
) -> None:
    document = yaml.safe_load(RECRUITING)
    rule = {
        "name": "Retention on a plan → add the attrition measure",
        "priority": 250,
        "condition": {"in": ["keep_people", {"var": ["outcomes", []]}]},
        "actions": [{"type": "add_objective", "key": "regrettable_attrition"}],
        "stop": False,
    }
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump({**document, "rules": [rule, *document["rules"]]}))
    complete_hosted_survey(client, acme["survey"], "hire_faster", "time_to_fill")
    thanks = complete_hosted_survey(client, colleague, "keep_people", "regrettable_attrition")
    assert plan_objectives(database) == ["time_to_fill", "regrettable_attrition"]
    assert "We updated Acme Inc’s one-page success plan from your answers:" in thanks
    assert "already has a one-page success plan" not in thanks
