"""POST /api/v1/surveys/<key>/responses: answers become a plan once, and bad input is refused whole."""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from engine.accounts import Contact
from engine.db import Database
from engine.plans.models import SuccessPlan
from surveys.models import Response, ResponseStatus, Survey
from surveys.rules_queue import apply_queued_rules_job
from surveys.service import publish_definition
from tests.factories import outcomes_answers, response_payload

URL = "/api/v1/surveys/outcomes/responses"
NEWCOMER = {"email": "newcomer@acme.example", "name": "New Comer"}


@pytest.fixture
def client(api_client: FlaskClient) -> FlaskClient:
    """Responses here are submitted server-to-server, with the API token."""
    return api_client


def count(database: Database, model: type[Any]) -> int:
    with database.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def assert_problem(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def assert_nothing_written(database: Database) -> None:
    assert count(database, Response) == 0
    assert count(database, SuccessPlan) == 0
    # make_account created two contacts; the rejected payload's newcomer must not be a third.
    assert count(database, Contact) == 2


def submit_rejected(client: FlaskClient, answers: dict[str, Any], **overrides: Any) -> TestResponse:
    return client.post(URL, json=response_payload(contact=NEWCOMER, answers=answers, **overrides))


def test_completed_response_answers_at_once_and_the_rules_job_makes_its_plan(
    client: FlaskClient, database: Database, acme: str
) -> None:
    payload = response_payload(acme)

    response = client.post(URL, json=payload)

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["client_response_id"] == payload["client_response_id"]
    assert body["status"] == "completed"
    assert body["replayed"] is False
    assert body["plan"]["status"] == "pending"
    assert body["plan"]["share_url"].startswith("http://northstar.test/p/r/")
    assert count(database, Response) == 1
    assert count(database, SuccessPlan) == 0  # the rules run in the `rules` job

    assert apply_queued_rules_job() == 1

    assert count(database, SuccessPlan) == 1
    ready = client.post(URL, json=payload).get_json()["plan"]
    assert ready["status"] == "ready"
    assert "Acme Inc" in ready["goal"]
    assert ready["share_url"].startswith("http://northstar.test/p/")
    assert apply_queued_rules_job() == 0  # applied once


def test_replayed_response_is_not_stored_twice(client: FlaskClient, database: Database, acme: str) -> None:
    payload = response_payload(acme)
    first = client.post(URL, json=payload)

    replay = client.post(URL, json=payload)

    assert replay.status_code == 200
    assert replay.get_json()["replayed"] is True
    assert replay.get_json()["id"] == first.get_json()["id"]
    assert replay.get_json()["plan"]["status"] == "pending"  # still waiting for the job
    assert apply_queued_rules_job() == 1
    again = [client.post(URL, json=payload).get_json()["plan"] for _ in range(2)]
    assert again[0]["status"] == "ready" and again[0]["id"] == again[1]["id"]
    assert count(database, Response) == 1
    assert count(database, SuccessPlan) == 1


def test_partial_response_makes_no_plan_until_completed(
    client: FlaskClient, database: Database, acme: str
) -> None:
    payload = response_payload(acme, complete=False, answers={"outcomes": ["hire_faster"]})

    partial = client.post(URL, json=payload)

    assert partial.status_code == 201, partial.get_json()
    assert partial.get_json()["status"] == "partial"
    assert partial.get_json()["plan"] is None
    assert apply_queued_rules_job() == 0  # a partial response queues nothing
    assert count(database, SuccessPlan) == 0

    completed = client.post(URL, json={**payload, "complete": True, "answers": outcomes_answers()})

    assert completed.status_code == 200, completed.get_json()
    assert completed.get_json()["status"] == "completed"
    assert completed.get_json()["replayed"] is False
    assert completed.get_json()["plan"]["status"] == "pending"
    assert apply_queued_rules_job() == 1
    assert count(database, Response) == 1
    assert count(database, SuccessPlan) == 1
    with database.transaction() as session:
        stored = session.scalars(select(Response)).one()
        assert stored.status == ResponseStatus.COMPLETED
        assert stored.answers["objectives"] == ["careers_site_traffic"]
        assert stored.rules_queued_at is None


def test_partial_response_skips_required_questions(
    client: FlaskClient, database: Database, acme: str
) -> None:
    response = client.post(URL, json=response_payload(acme, complete=False, answers={"nps": 8}))

    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == "partial"


def test_malformed_json_is_a_400_problem(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post(URL, data='{"account": "acme",', content_type="application/json")

    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]
    assert_nothing_written(database)


def test_json_array_body_is_a_400_problem(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post(URL, json=[response_payload(acme)])

    body = assert_problem(response, 400)
    assert "object" in body["detail"]
    assert_nothing_written(database)


def test_body_without_json_content_type_is_a_400_problem(
    client: FlaskClient, database: Database, acme: str
) -> None:
    response = client.post(URL, data="client_response_id=abc", content_type="text/plain")

    assert_problem(response, 400)
    assert_nothing_written(database)


def test_missing_fields_are_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post(URL, json={"account": acme})

    body = assert_problem(response, 422)
    assert {"client_response_id", "answers"} <= set(body["errors"])
    assert_nothing_written(database)


def test_unknown_survey_is_a_404_problem(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post("/api/v1/surveys/no-such-survey/responses", json=response_payload(acme))

    body = assert_problem(response, 404)
    assert "no-such-survey" in body["detail"]
    assert_nothing_written(database)


def test_version_no_survey_can_have_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    """A version past PostgreSQL's integer failed the lookup's query: a 500, not a 422."""
    for version in (2**31, 0, -1):
        response = client.post(URL, json={**response_payload(acme), "version": version})

        body = assert_problem(response, 422)
        assert "version" in body["errors"]
    assert_nothing_written(database)


def test_unknown_account_is_a_404_problem(client: FlaskClient, database: Database, acme: str) -> None:
    response = client.post(URL, json=response_payload("globex", contact=NEWCOMER))

    body = assert_problem(response, 404)
    assert "globex" in body["detail"]
    assert_nothing_written(database)


def test_unknown_question_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, {**outcomes_answers(), "favourite_colour": "blue"})

    body = assert_problem(response, 422)
    assert body["errors"] == {"answers.favourite_colour": "unknown question"}
    assert_nothing_written(database)


def test_unknown_outcome_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, {**outcomes_answers(), "outcomes": ["win_the_lottery"]})

    body = assert_problem(response, 422)
    assert "win_the_lottery" in body["errors"]["answers.outcomes"]
    assert_nothing_written(database)


def test_unknown_option_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, {**outcomes_answers(), "role": "astronaut"})

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"answers.role"}
    assert "astronaut" in body["errors"]["answers.role"]
    assert_nothing_written(database)


def test_a_single_choice_that_is_not_one_value_is_named(
    client: FlaskClient, database: Database, acme: str
) -> None:
    """A list or an object for a single choice failed the option lookup (unhashable): a 500."""
    for role in ([""], ["leader"], {"leader": 1}, 7, True):
        response = submit_rejected(client, {**outcomes_answers(), "role": role})

        body = assert_problem(response, 422)
        assert body["errors"] == {"answers.role": "must be one option's value"}, role
    assert_nothing_written(database)


def test_objective_outside_chosen_outcomes_is_named(
    client: FlaskClient, database: Database, acme: str
) -> None:
    answers = {**outcomes_answers(), "objectives": ["field_manager_onboarding"], "key_results": {}}

    response = submit_rejected(client, answers)

    body = assert_problem(response, 422)
    assert "not under a chosen outcome" in body["errors"]["answers.objectives"]
    assert_nothing_written(database)


def key_results_with(**numbers: Any) -> dict[str, Any]:
    answers = outcomes_answers()
    answers["key_results"]["careers_site_traffic"].update(numbers)
    return answers


def test_non_numeric_baseline_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, key_results_with(baseline="lots"))

    body = assert_problem(response, 422)
    assert "baseline must be a number" in body["errors"]["answers.key_results"]
    assert_nothing_written(database)


def test_a_negative_count_per_week_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, key_results_with(baseline=-5))  # careers-site visits per week

    body = assert_problem(response, 422)
    assert "baseline cannot be below 0 for a measure in per week" in body["errors"]["answers.key_results"]
    assert_nothing_written(database)


def test_target_equal_to_baseline_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, key_results_with(baseline=8000, target=8000))

    body = assert_problem(response, 422)
    assert "must differ from the baseline" in body["errors"]["answers.key_results"]
    assert_nothing_written(database)


def test_due_date_in_the_past_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()

    response = submit_rejected(client, key_results_with(due_date=yesterday))

    body = assert_problem(response, 422)
    assert "due_date must be in the future" in body["errors"]["answers.key_results"]
    assert_nothing_written(database)


def test_text_longer_than_max_length_is_named(client: FlaskClient, database: Database, acme: str) -> None:
    response = submit_rejected(client, {**outcomes_answers(), "nps": 3, "comment": "x" * 1001})

    body = assert_problem(response, 422)
    assert "at most 1000 characters" in body["errors"]["answers.comment"]
    assert_nothing_written(database)


def test_request_body_over_the_limit_is_a_413_problem(
    client: FlaskClient, database: Database, acme: str
) -> None:
    answers = {**outcomes_answers(), "nps": 3, "comment": "x" * 1_000_001}

    response = submit_rejected(client, answers)

    body = assert_problem(response, 413)
    assert "1000000 bytes" in body["detail"]
    assert_nothing_written(database)


def test_hidden_comment_is_dropped_for_promoters(client: FlaskClient, database: Database, acme: str) -> None:
    answers = {**outcomes_answers(), "nps": 9, "comment": "ignored: the question was never shown"}

    response = client.post(URL, json=response_payload(acme, answers=answers))

    assert response.status_code == 201, response.get_json()
    with database.transaction() as session:
        stored = session.scalars(select(Response)).one()
        assert stored.answers["nps"] == 9
        assert "comment" not in stored.answers


def test_a_show_if_the_answers_break_hides_its_question(
    client: FlaskClient, database: Database, acme: str
) -> None:
    """`show_if` comparing an answer with an object cannot be judged: the question is hidden (as
    the rules engine leaves such a rule unmatched), not a 500 for every respondent."""
    with database.transaction() as session:
        survey = session.scalar(select(Survey).where(Survey.key == "outcomes"))
        assert survey is not None and survey.latest_published is not None
        definition = copy.deepcopy(survey.latest_published.definition)
        comment = next(q for q in definition["questions"] if q["key"] == "comment")
        comment["show_if"] = {"<=": [{"var": "answers.nps"}, {}]}
        publish_definition(session, definition, now=dt.datetime.now(dt.UTC))
    answers = {**outcomes_answers(), "nps": 3, "comment": "never shown"}

    response = client.post(URL, json=response_payload(acme, answers=answers))

    assert response.status_code == 201, response.get_json()
    with database.transaction() as session:
        assert "comment" not in session.scalars(select(Response)).one().answers


def test_comment_is_kept_for_detractors(client: FlaskClient, database: Database, acme: str) -> None:
    answers = {**outcomes_answers(), "nps": 4, "comment": "  too few applicants  "}

    response = client.post(URL, json=response_payload(acme, answers=answers))

    assert response.status_code == 201, response.get_json()
    with database.transaction() as session:
        assert session.scalars(select(Response)).one().answers["comment"] == "too few applicants"


def test_deeply_nested_json_is_a_400_problem(client: FlaskClient, database: Database, acme: str) -> None:
    nested = "[" * 100_000 + "]" * 100_000

    response = client.post(URL, data=nested, content_type="application/json")

    assert "nested too deeply" in assert_problem(response, 400)["detail"]
    assert_nothing_written(database)


def test_nul_character_in_an_answer_is_a_400_problem(
    client: FlaskClient, database: Database, acme: str
) -> None:
    response = submit_rejected(client, {**outcomes_answers(), "nps": 3, "comment": "stuck\u0000here"})

    assert "NUL" in assert_problem(response, 400)["detail"]
    assert_nothing_written(database)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le"])
def test_nul_character_is_found_in_a_key_and_in_any_encoding_json_allows(
    client: FlaskClient, database: Database, acme: str, encoding: str
) -> None:
    payload = response_payload(contact=NEWCOMER, answers={**outcomes_answers(), "odd\u0000key": 1})

    response = client.post(URL, data=json.dumps(payload).encode(encoding), content_type="application/json")

    assert "NUL" in assert_problem(response, 400)["detail"]
    assert_nothing_written(database)


def test_an_escaped_backslash_before_u0000_is_not_a_nul(
    client: FlaskClient, database: Database, acme: str
) -> None:
    response = client.post(
        URL, json=response_payload(acme, answers={**outcomes_answers(), "comment": "C:\\u0000"})
    )

    assert response.status_code == 201, response.get_json()


def test_contact_email_longer_than_320_characters_is_named(
    client: FlaskClient, database: Database, acme: str
) -> None:
    too_long = {"email": "a" * 320 + "@acme.example", "name": "Long Name"}

    response = client.post(URL, json=response_payload(acme, contact=too_long))

    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"contact.email"}
    assert_nothing_written(database)
