"""Signed survey links (answer, respondent and form tokens) and the pages behind them, over HTTP.

A GET of an answer link records nothing, its POST records once; the hosted page saves each page as
a partial response and refuses bad input with a 4xx page naming the field, never a 500. The tokens
on their own: tests/test_survey_tokens.py; the invite email: tests/test_survey_invites.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from html.parser import HTMLParser
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from engine.accounts import Contact
from engine.config import Settings
from engine.db import Database, utcnow
from engine.plans.models import SuccessPlan
from engine.playbook import import_playbook
from surveys.links import (
    answer_link,
    form_token,
    one_click_question,
    survey_link,
)
from surveys.models import Response, ResponseStatus
from surveys.service import Respondent, ResponseIn, submit_response
from tests.factories import make_account, outcomes_answers
from tests.test_survey_tokens import RECRUITING

# --- pages over HTTP ------------------------------------------------------------------------------


class _Form(HTMLParser):
    """What a browser would submit from the page as it is: inputs' values, checked boxes, textareas."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, Any] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        name = found.get("name")
        if tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""
        elif tag == "input" and name:
            if found.get("type") in ("checkbox", "radio"):
                if "checked" in found:
                    self.fields.setdefault(name, []).append(found["value"])
            else:
                self.fields[name] = found.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def form_fields(html: str) -> dict[str, Any]:
    parser = _Form()
    parser.feed(html)
    return parser.fields


def hidden_fields(html: str) -> dict[str, str]:
    return {k: v for k, v in form_fields(html).items() if k in ("_form", "_step")}


def stored(database: Database) -> list[Response]:
    with database.session() as session:
        return list(session.scalars(select(Response).order_by(Response.id)))


@pytest.fixture
def acme(database: Database, recruiting: dict[str, int], settings: Settings) -> dict[str, Any]:
    with database.transaction() as session:
        account = make_account(session, "acme")
        champion = account.contacts[0]
        question = one_click_question(session, "outcomes")
        return {
            "contact_id": champion.id,
            "survey": survey_link(settings, champion, "outcomes").removeprefix(settings.public_url),
            "answer": {
                o.value: answer_link(settings, champion, question.version, "outcomes", o.value).removeprefix(
                    settings.public_url
                )
                for o in question.options
            },
        }


def post_page(client: FlaskClient, path: str, fields: dict[str, Any]) -> Any:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={**form_fields(page.get_data(as_text=True)), **fields})


def test_get_of_an_answer_link_shows_a_confirmation_and_records_nothing(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    response = client.get(acme["answer"]["hire_faster"])
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Confirm your answer" in body
    assert re.search(r'value="hire_faster" checked', body)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.head(acme["answer"]["hire_faster"]).status_code == 200
    assert stored(database) == []


def test_posting_an_answer_link_records_a_partial_email_response(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    response = post_page(client, acme["answer"]["hire_faster"], {"q.outcomes": ["hire_faster"]})
    assert response.status_code == 303
    assert re.search(r"^/s/outcomes\?t=[^&]+&step=objectives$", response.headers["Location"])
    [answer] = stored(database)
    assert (answer.status, answer.channel.value, answer.answers) == (
        ResponseStatus.PARTIAL,
        "email",
        {"outcomes": ["hire_faster"]},
    )
    assert answer.client_response_id == f"hosted-{acme['contact_id']}-{answer.survey_version_id}"
    # The same click again updates the same response; it never makes a second one.
    again = post_page(client, acme["answer"]["hire_better"], {"q.outcomes": ["hire_faster", "hire_better"]})
    assert again.status_code == 303
    [answer] = stored(database)
    assert answer.answers == {"outcomes": ["hire_faster", "hire_better"]}


@pytest.mark.parametrize("form_token_value", [None, "forged", "other-contact"])
def test_answer_post_without_its_own_form_token_is_refused(
    client: FlaskClient,
    acme: dict[str, Any],
    database: Database,
    settings: Settings,
    form_token_value: str | None,
) -> None:
    data: dict[str, Any] = {"_step": "outcomes", "q.outcomes": ["hire_faster"]}
    if form_token_value == "forged":
        data["_form"] = "WyJvdXRjb21lcyIsImMxIl0.forged.signature"
    elif form_token_value == "other-contact":
        data["_form"] = form_token(settings, "outcomes", "c999")
    response = client.post(acme["answer"]["hire_faster"], data=data)
    assert response.status_code == 400
    assert "This form could not be verified" in response.get_data(as_text=True)
    assert stored(database) == []


def test_an_expired_form_is_shown_again_keeping_the_answer(
    client: FlaskClient, acme: dict[str, Any], database: Database, settings: Settings
) -> None:
    with freeze_time(dt.datetime.now(dt.UTC) - dt.timedelta(days=2)):
        old_form = form_token(settings, "outcomes", f"c{acme['contact_id']}")
    response = client.post(
        acme["answer"]["hire_faster"],
        data={"_form": old_form, "_step": "outcomes", "q.outcomes": ["keep_people"]},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "send them again" in body and re.search(r'value="keep_people" checked', body)
    assert stored(database) == []


def test_replayed_answer_link_after_completion_thanks_and_stores_nothing(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    with database.transaction() as session:  # the champion answered in the widget meanwhile
        contact = session.get(Contact, acme["contact_id"])
        assert contact is not None
        submit_response(
            session,
            "outcomes",
            ResponseIn(str(uuid.uuid4()), None, outcomes_answers(), channel="in_app"),
            now=utcnow(),
            respondent=Respondent(contact.account, contact, contact.email),
        )
    for method in ("get", "post"):
        response = getattr(client, method)(
            acme["answer"]["keep_people"], data={"q.outcomes": ["keep_people"]}
        )
        assert response.status_code == 200
        assert "You already answered — thank you" in response.get_data(as_text=True)
    assert len(stored(database)) == 1
    assert stored(database)[0].answers["outcomes"] == ["hire_faster"]


def test_answer_link_for_another_survey_path_is_not_found(client: FlaskClient, acme: dict[str, Any]) -> None:
    path = acme["answer"]["hire_faster"].replace("/s/outcomes/", "/s/feedback/")
    response = client.get(path)
    assert response.status_code == 404
    assert "This link is not valid" in response.get_data(as_text=True)


def test_hosted_page_saves_each_page_and_completes_with_a_plan(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    path = acme["survey"]
    first = post_page(client, path, {"q.outcomes": ["hire_faster"]})
    assert first.status_code == 303 and first.headers["Location"].endswith("&step=objectives")
    second = post_page(client, first.headers["Location"], {"q.objectives": ["time_to_fill"]})
    assert second.headers["Location"].endswith("&step=key_results")
    kr_page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert 'name="kr.time_to_fill.baseline" value="42"' in kr_page
    due = (dt.date.today() + dt.timedelta(days=100)).isoformat()
    third = post_page(
        client,
        second.headers["Location"],
        {"kr.time_to_fill.baseline": "42", "kr.time_to_fill.target": "30", "kr.time_to_fill.due_date": due},
    )
    assert third.headers["Location"].endswith("&step=role")
    [partial] = stored(database)
    assert partial.status == ResponseStatus.PARTIAL
    assert partial.answers["key_results"] == {"time_to_fill": {"baseline": 42, "target": 30, "due_date": due}}
    done = post_page(client, third.headers["Location"], {"q.role": "exec", "q.nps": "10"})
    assert done.status_code == 303 and done.headers["Location"].endswith("&done=1")
    thanks = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Thank you! Your success plan is ready." in thanks and "/p/" in thanks
    [answer] = stored(database)
    assert answer.status == ResponseStatus.COMPLETED and answer.channel.value == "hosted"
    with database.session() as session:
        assert session.scalars(select(SuccessPlan)).one().account_id == answer.account_id


def test_a_low_score_adds_the_follow_up_question_as_its_own_page(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    path = acme["survey"]
    location = post_page(client, path, {"q.outcomes": ["keep_people"]}).headers["Location"]
    location = post_page(client, location, {"q.objectives": ["new_hire_onboarding"]}).headers["Location"]
    location = post_page(client, location, {}).headers["Location"]  # keep the prefilled numbers
    page = client.get(location).get_data(as_text=True)
    assert "Step 4 of 5" in page and "What is getting in the way" not in page  # the follow-up counts
    comment = post_page(client, location, {"q.nps": "3"})
    assert comment.status_code == 303 and comment.headers["Location"].endswith("&step=comment")
    page = client.get(comment.headers["Location"]).get_data(as_text=True)
    assert "Step 5 of 5" in page and "What is getting in the way of your hiring goals" in page
    done = post_page(client, comment.headers["Location"], {"q.comment": "  Nobody owns the careers page.  "})
    assert done.headers["Location"].endswith("&done=1")
    [answer] = stored(database)
    assert answer.answers["comment"] == "Nobody owns the careers page."
    assert answer.status == ResponseStatus.COMPLETED


def test_changing_outcomes_drops_objectives_no_longer_under_them(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    path = acme["survey"]
    location = post_page(client, path, {"q.outcomes": ["hire_faster"]}).headers["Location"]
    post_page(client, location, {"q.objectives": ["time_to_fill"]})
    back = post_page(client, path + "&step=outcomes", {"q.outcomes": ["keep_people"]})
    assert back.status_code == 303 and back.headers["Location"].endswith("&step=objectives")
    [partial] = stored(database)
    assert partial.answers == {"outcomes": ["keep_people"]}


def test_a_step_in_the_url_cannot_skip_ahead(client: FlaskClient, acme: dict[str, Any]) -> None:
    body = client.get(acme["survey"] + "&step=nps").get_data(as_text=True)
    assert "Which outcomes matter most" in body and "Step 1 of 5" in body


def test_hosted_page_resumes_a_partial_response_from_the_widget(
    client: FlaskClient, acme: dict[str, Any], database: Database
) -> None:
    with database.transaction() as session:
        contact = session.get(Contact, acme["contact_id"])
        assert contact is not None
        submit_response(
            session,
            "outcomes",
            ResponseIn(
                "widget-partial-1", None, {"outcomes": ["hire_better"]}, channel="in_app", complete=False
            ),
            now=utcnow(),
            respondent=Respondent(contact.account, contact, contact.email),
        )
    body = client.get(acme["survey"]).get_data(as_text=True)
    assert "Step 2 of 5" in body and "Get more of your offers accepted" in body
    location = post_page(client, acme["survey"], {"q.objectives": ["offer_acceptance"]}).headers["Location"]
    assert location.endswith("&step=key_results")
    [partial] = stored(database)
    assert partial.client_response_id == "widget-partial-1"


def test_survey_page_without_a_link_is_forbidden_for_identified_surveys(
    client: FlaskClient, recruiting: dict[str, int]
) -> None:
    for method in ("get", "post"):
        response = getattr(client, method)("/s/outcomes")
        assert response.status_code == 403
        assert "Use the link from your email" in response.get_data(as_text=True)
    missing = client.get("/s/no-such-survey")
    assert missing.status_code == 404 and "No survey" in missing.get_data(as_text=True)


@pytest.fixture
def feedback(database: Database) -> None:
    """An anonymous survey: a score, and a question only for low scores."""
    document = yaml.safe_load(RECRUITING)
    survey = {
        "key": "feedback",
        "title": "Quick feedback",
        "anonymous": True,
        "questions": [
            {"key": "nps", "kind": "nps", "title": "Recommend us?", "required": True},
            {
                "key": "why",
                "kind": "text",
                "title": "What should we fix first?",
                "max_length": 50,
                "show_if": {"<=": [{"var": "answers.nps"}, 6]},
            },
        ],
    }
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump({**document, "surveys": [*document["surveys"], survey]}))


def test_anonymous_survey_asks_for_an_email_and_carries_it_in_the_link(
    client: FlaskClient, feedback: None, database: Database
) -> None:
    page = client.get("/s/feedback").get_data(as_text=True)
    assert 'name="_email"' in page
    fields = hidden_fields(page)
    bad = client.post("/s/feedback", data={**fields, "_email": "not-an-email", "q.nps": "4"})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "Enter your email address" in body and 'value="not-an-email"' in body
    assert stored(database) == []
    first = client.post("/s/feedback", data={**fields, "_email": " Ann@X.example ", "q.nps": "4"})
    assert first.status_code == 303 and "&step=why" in first.headers["Location"]
    too_long = post_page(client, first.headers["Location"], {"q.why": "x" * 51})
    assert too_long.status_code == 422 and "At most 50 characters." in too_long.get_data(as_text=True)
    done = post_page(client, first.headers["Location"], {"q.why": "Faster support"})
    assert done.headers["Location"].endswith("&done=1")
    [answer] = stored(database)
    assert (answer.account_id, answer.respondent_email, answer.status) == (
        None,
        "ann@x.example",
        ResponseStatus.COMPLETED,
    )
    assert answer.answers == {"nps": 4, "why": "Faster support"}
    thanks = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Thank you! We have your answers." in thanks


BAD_FIELDS = [
    {"q.outcomes": ["hire_faster", "hire_better", "keep_people"]},
    {"q.outcomes": ["no_such_outcome"]},
    {"q.outcomes": ["hire_faster\x00"]},
    {"q.outcomes": [f"o{i}" for i in range(500)]},
    {"q.outcomes": ["x" * 5000]},
    {"q.unknown": "1"},
    {"_step": "nps", "q.nps": "99"},
    {"_step": "nowhere"},
    {"_step": ""},
]


@pytest.mark.parametrize("fields", BAD_FIELDS)
def test_bad_hosted_input_never_makes_a_500(
    client: FlaskClient, acme: dict[str, Any], database: Database, fields: dict[str, Any]
) -> None:
    response = post_page(client, acme["survey"], fields)
    assert response.status_code in (303, 400, 422), response.status_code
    assert "Traceback" not in response.get_data(as_text=True)
    for answer in stored(database):
        assert answer.answers.get("outcomes") in (["hire_faster"], None)


@pytest.mark.parametrize(
    "numbers",
    [
        {"target": "inf"},
        {"target": "nan"},
        {"target": "1e999"},
        {"target": "-"},
        {"target": "8000"},  # equal to the baseline
        {"target": "\x00"},
        {"due_date": "2027-13-45"},
        {"due_date": "yesterday"},
        {"due_date": "9999999-01-01"},
        {"baseline": "1" * 400},
    ],
)
def test_bad_key_results_are_refused_by_field(
    client: FlaskClient, acme: dict[str, Any], database: Database, numbers: dict[str, str]
) -> None:
    location = post_page(client, acme["survey"], {"q.outcomes": ["hire_faster"]}).headers["Location"]
    location = post_page(client, location, {"q.objectives": ["careers_site_traffic"]}).headers["Location"]
    fields = {f"kr.careers_site_traffic.{k}": v for k, v in numbers.items()}
    response = post_page(client, location, fields)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'class="field-error" id="err-kr-careers_site_traffic-' in body
    assert "Traceback" not in body
    [partial] = stored(database)
    assert "key_results" not in partial.answers


@pytest.mark.parametrize("typed", ["12,000", "12 000", "12000.0", "1.2e4"])
def test_numbers_are_read_the_way_people_type_them(
    client: FlaskClient, acme: dict[str, Any], database: Database, typed: str
) -> None:
    location = post_page(client, acme["survey"], {"q.outcomes": ["hire_faster"]}).headers["Location"]
    location = post_page(client, location, {"q.objectives": ["careers_site_traffic"]}).headers["Location"]
    response = post_page(client, location, {"kr.careers_site_traffic.target": typed})
    assert response.status_code == 303
    [partial] = stored(database)
    assert partial.answers["key_results"]["careers_site_traffic"]["target"] == 12000


@pytest.mark.parametrize(
    "path",
    [
        "/s/outcomes?t=garbage",
        "/s/outcomes?t=",
        "/s/outcomes/a/garbage",
        "/s/outcomes/a/" + "A" * 5000,
        "/s/outcomes/a/%00",
        "/s/%00",
    ],
)
def test_bad_links_get_friendly_pages(
    client: FlaskClient, acme: dict[str, Any], database: Database, path: str
) -> None:
    for method in ("get", "post"):
        response = getattr(client, method)(path)
        assert 400 <= response.status_code < 500, (method, response.status_code)
        assert "Traceback" not in response.get_data(as_text=True)
    assert stored(database) == []


def test_respondent_link_for_another_contact_cannot_take_over_a_response(
    client: FlaskClient, acme: dict[str, Any], database: Database, settings: Settings
) -> None:
    post_page(client, acme["answer"]["hire_faster"], {"q.outcomes": ["hire_faster"]})
    with database.session() as session:
        other = session.scalars(select(Contact).where(Contact.email == "johnny@acme.example")).one()
        path = survey_link(settings, other, "outcomes").removeprefix(settings.public_url)
    page = client.get(path).get_data(as_text=True)
    assert "Step 1 of 5" in page  # Johnny starts his own response, Sofia's stays hers
    post_page(client, path, {"q.outcomes": ["keep_people"]})
    assert sorted(str(r.answers["outcomes"]) for r in stored(database)) == [
        "['hire_faster']",
        "['keep_people']",
    ]
