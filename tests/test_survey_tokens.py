"""Signed survey links on their own: answer, respondent and form tokens round trip, and are refused
when tampered with, expired, for another survey or respondent, or signed with a retired key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from freezegun import freeze_time
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.config import Settings
from engine.playbook import import_playbook, resolve_playbook
from surveys.links import (
    FormExpired,
    FormRejected,
    LinkExpired,
    LinkInvalid,
    answer_link,
    check_form_token,
    form_token,
    one_click_question,
    read_answer_token,
    read_respondent_token,
    respondent_token,
    survey_link,
)
from tests.factories import make_account

RECRUITING = resolve_playbook("recruiting")[1]
OLD_KEY = "the-old-secret-key-0123456789"
NEW_KEY = "the-new-secret-key-9876543210"


@pytest.fixture
def champion(db: Session) -> Contact:
    import_playbook(db, RECRUITING)
    account = make_account(db, "acme")
    db.flush()
    return account.contacts[0]


def other_signature(token: str) -> str:
    """`token` with the first character of its signature changed. (Not the last: base64's last
    character carries padding bits, so "B" → "A" there can decode to the very same signature.)"""
    payload, _, signature = token.rpartition(".")
    return f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_answer_link_round_trips_to_the_click(db: Session, champion: Contact) -> None:
    settings = Settings(secret_key=NEW_KEY, public_url="https://ns.example")
    question = one_click_question(db, "outcomes")
    link = answer_link(settings, champion, question.version, question.question_key, "hire_faster")
    assert link.startswith("https://ns.example/s/outcomes/a/")
    click = read_answer_token(db, settings, token_of(link))
    assert (click.contact.id, click.version.id, click.question_key) == (
        champion.id,
        question.version.id,
        "outcomes",
    )
    assert click.answer() == ["hire_faster"]


def test_first_question_options_are_the_outcome_library(db: Session, champion: Contact) -> None:
    question = one_click_question(db, "outcomes")
    assert question.survey_title == "What does success look like for your team?"
    assert [o.value for o in question.options] == [
        "hire_better",
        "hire_faster",
        "keep_people",
        "manager_control",
    ]


def test_respondent_link_is_bound_to_its_survey(db: Session, champion: Contact) -> None:
    settings = Settings(secret_key=NEW_KEY)
    link = survey_link(settings, champion, "outcomes")
    token = link.split("?t=", 1)[1]
    assert read_respondent_token(db, settings, "outcomes", token).contact == champion
    with pytest.raises(LinkInvalid):
        read_respondent_token(db, settings, "feedback", token)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(other_signature, id="signature"),
        pytest.param(lambda t: "W" + t[1:] if t[0] != "W" else "X" + t[1:], id="payload"),
        pytest.param(lambda t: t.split(".")[0], id="truncated"),
        pytest.param(lambda t: "not-a-token", id="garbage"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: t + "." + t, id="doubled"),
    ],
)
def test_tampered_answer_tokens_are_not_valid(
    db: Session, champion: Contact, forge: Callable[[str], str]
) -> None:
    settings = Settings(secret_key=NEW_KEY)
    question = one_click_question(db, "outcomes")
    token = token_of(answer_link(settings, champion, question.version, "outcomes", "hire_faster"))
    with pytest.raises(LinkInvalid) as caught:
        read_answer_token(db, settings, forge(token))
    assert caught.value.status == 404


def test_a_respondent_token_does_not_open_an_answer_link(db: Session, champion: Contact) -> None:
    settings = Settings(secret_key=NEW_KEY)
    with pytest.raises(LinkInvalid):  # a different salt: one kind of token never opens another door
        read_answer_token(db, settings, respondent_token(settings, "outcomes", champion))


def test_answer_links_expire_after_30_days(db: Session, champion: Contact) -> None:
    settings = Settings(secret_key=NEW_KEY)
    question = one_click_question(db, "outcomes")
    sent_at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with freeze_time(sent_at):
        token = token_of(answer_link(settings, champion, question.version, "outcomes", "hire_faster"))
    with freeze_time(sent_at + dt.timedelta(days=29)):
        assert read_answer_token(db, settings, token).option_value == "hire_faster"
    with freeze_time(sent_at + dt.timedelta(days=31)), pytest.raises(LinkExpired) as caught:
        read_answer_token(db, settings, token)
    assert caught.value.status == 410 and caught.value.title == "This link has expired"


def test_links_survive_secret_rotation_while_the_old_key_is_listed(db: Session, champion: Contact) -> None:
    before = Settings(secret_key=OLD_KEY)
    question = one_click_question(db, "outcomes")
    token = token_of(answer_link(before, champion, question.version, "outcomes", "hire_faster"))

    rotated = Settings(secret_key=NEW_KEY, old_secret_keys=(OLD_KEY,))
    assert read_answer_token(db, rotated, token).contact == champion
    new_token = token_of(answer_link(rotated, champion, question.version, "outcomes", "hire_faster"))
    assert read_answer_token(db, Settings(secret_key=NEW_KEY), new_token).contact == champion  # signed anew

    grace_over = Settings(secret_key=NEW_KEY)
    with pytest.raises(LinkInvalid):
        read_answer_token(db, grace_over, token)


def test_answer_link_of_an_option_no_longer_offered_is_not_valid(db: Session, champion: Contact) -> None:
    settings = Settings(secret_key=NEW_KEY)
    question = one_click_question(db, "outcomes")
    token = token_of(answer_link(settings, champion, question.version, "outcomes", "retired_outcome"))
    with pytest.raises(LinkInvalid, match="no longer offered"):
        read_answer_token(db, settings, token)


def test_form_token_is_bound_to_the_survey_and_the_respondent(db: Session) -> None:
    settings = Settings(secret_key=NEW_KEY)
    token = form_token(settings, "outcomes", "c1")
    check_form_token(settings, token, "outcomes", "c1")
    for survey, ref in (("outcomes", "c2"), ("feedback", "c1")):
        with pytest.raises(FormRejected):
            check_form_token(settings, token, survey, ref)
    with pytest.raises(FormRejected):
        check_form_token(settings, None, "outcomes", "c1")
    with freeze_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=2)), pytest.raises(FormExpired):
        check_form_token(settings, token, "outcomes", "c1")
