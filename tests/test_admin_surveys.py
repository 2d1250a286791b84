"""The admin console on real PostgreSQL: authoring the outcomes survey (save a draft, validation,
preview, publish, stale edits). Forms are posted as the page renders them: each test reads the
page's fields, changes what a person would, and sends them back. Sign-in, roles and CSRF:
tests/test_admin_sign_in.py; the helpers: tests/admin_client.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from engine.db import Database
from engine.users import Role
from surveys.models import Response, Survey, SurveyVersion
from surveys.service import ResponseIn, submit_response

# tests/test_audit.py and tests/test_template_lookup.py import EDITOR, make_user, sign_in and text_of
# from here, as they did before the helpers moved to tests/admin_client.py.
from tests.admin_client import (
    EDITOR,
    VIEWER,
    console_user,
    csrf_of,
    editor_fields,
    form_fields,
    make_user,
    sign_in,
    survey_versions,
    text_of,
)
from tests.factories import make_account, outcomes_answers

editor = console_user("editor", EDITOR, Role.EDITOR)
viewer = console_user("viewer", VIEWER, Role.VIEWER)


def test_saving_the_form_stores_one_draft_and_leaves_the_live_version_alone(
    editor: FlaskClient, database: Database
) -> None:
    page = text_of(editor.get("/admin/surveys/outcomes"))
    fields = editor_fields(page)
    assert fields["title"] == "What does success look like for your team?"
    assert fields["q-0-key"] == "outcomes" and fields["q-0-kind"] == "outcome_pick"
    assert (
        fields["q-3-options"]
        == "exec|Executive / budget owner\nleader|Recruiting leader\nuser|Recruiter / hiring manager"
    )
    fields["title"] = "What would success look like this year?"
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/surveys/outcomes"
    after = text_of(editor.get("/admin/surveys/outcomes"))
    assert "Draft saved." in after and "draft pending" in after and "Publish version 2" in after

    versions = survey_versions(database)
    assert [(v.version, v.published_at is not None) for v in versions] == [(1, True), (2, False)]
    assert versions[0].definition["title"] == "What does success look like for your team?"
    draft = versions[1].definition
    assert draft["title"] == "What would success look like this year?"
    assert [q["key"] for q in draft["questions"]] == [
        "outcomes",
        "objectives",
        "key_results",
        "role",
        "nps",
        "comment",
    ]
    assert draft["questions"][5]["show_if"] == versions[0].definition["questions"][5]["show_if"]

    again = editor_fields(after)
    again["intro"] = "Two minutes."
    assert editor.post("/admin/surveys/outcomes", data=again).status_code == 303
    versions = survey_versions(database)
    assert len(versions) == 2, "one draft per survey: saving again overwrites it"
    assert versions[1].definition["intro"] == "Two minutes."
    assert versions[1].definition["title"] == "What would success look like this year?"


def test_saving_the_unchanged_form_creates_no_draft(editor: FlaskClient, database: Database) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 303
    assert "No changes from the published version" in text_of(editor.get("/admin/surveys/outcomes"))
    assert len(survey_versions(database)) == 1


def test_an_invalid_form_is_422_with_each_message_by_its_field_and_stores_nothing(
    editor: FlaskClient, database: Database
) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fields.update(
        {
            "title": "",
            "redisplay_days": "soon",
            "q-0-key": "Bad Key",
            "q-3-options": "",
            "q-4-max": "lots",
            "q-5-show_if": '{"<=": [{"var": "answers.nps"}, 6]',
            "q-6-key": "extra",  # a blank slot, filled in: the new question has no title
        }
    )
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 422
    html = text_of(response)
    assert "Nothing was saved: 7 problems to fix." in html
    for label in (
        "<b>Title:</b>",
        "<b>Ask again after:</b> Enter a whole number of days.",
        "<b>Question 1 · Key:</b> Use lower-case letters, digits and _, starting with a letter (at most 60",
        "<b>Question 4 · Options:</b> choice questions need options",
        "<b>Question 5 · Most picks:</b> Enter a whole number.",
        "<b>Question 6 · Show only if:</b> Not valid JSON",
        "<b>Question 7 · Title:</b>",
    ):
        assert label in html, label
    assert 'id="err-questions-0-key"' in html and 'aria-describedby="err-questions-0-key"' in html
    kept = editor_fields(html)  # what was typed comes back, ready to correct
    assert kept["q-0-key"] == "Bad Key" and kept["q-4-max"] == "lots" and kept["q-6-key"] == "extra"
    assert kept["redisplay_days"] == "soon"
    assert len(survey_versions(database)) == 1


def test_duplicate_question_keys_are_refused(editor: FlaskClient, database: Database) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fields["q-5-key"] = "nps"
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 422
    assert "duplicate question keys: nps" in text_of(response)
    assert len(survey_versions(database)) == 1


def test_questions_are_added_moved_and_removed_without_javascript(
    editor: FlaskClient, database: Database
) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    assert fields["q-6-key"] == "" and fields["q-7-key"] == ""  # blank slots for new questions
    fields.update({"q-6-key": "team_size", "q-6-kind": "single_choice", "q-6-title": "How big is your team?"})
    fields["q-6-options"] = "small|1-10 people\nlarge|More than 10"
    fields["q-6-required"] = "on"
    fields["q-4-position"] = "1"  # NPS first
    fields["q-3-remove"] = "on"  # no role question
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.status_code == 303, text_of(response)
    draft = survey_versions(database)[-1].definition
    assert [q["key"] for q in draft["questions"]] == [
        "nps",
        "outcomes",
        "objectives",
        "key_results",
        "comment",
        "team_size",
    ]
    assert draft["questions"][-1] == {
        "key": "team_size",
        "kind": "single_choice",
        "title": "How big is your team?",
        "required": True,
        "options": [{"value": "small", "label": "1-10 people"}, {"value": "large", "label": "More than 10"}],
    }


def test_the_json_editor_saves_a_draft_and_keeps_rejected_json(
    editor: FlaskClient, database: Database
) -> None:
    page = text_of(editor.get("/admin/surveys/outcomes"))
    fields = editor_fields(page, source="json")
    assert '"key": "outcomes"' in fields["definition"]
    for broken, message in (
        ('{"key": "outcomes", "title": NaN}', "NaN is not valid JSON"),
        ("[1, 2]", "the definition must be a JSON object"),
        ('{"key": "outcomes", "title": "T", "questions": [], "colour": "red"}', "Unknown field."),
        (
            '{"key": "renamed", "title": "T", "questions": [{"key": "a", "kind": "text", "title": "A"}]}',
            "key cannot change",
        ),
        (
            '{"key": "outcomes", "title": "T\\u0000",'
            ' "questions": [{"key": "a", "kind": "text", "title": "A"}]}',
            "cannot be stored",
        ),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"key": "outcomes", "title": "T", "redisplay_days": 1e999, "questions": []}', "too large a number"),
    ):
        response = editor.post("/admin/surveys/outcomes", data=dict(fields, definition=broken))
        assert response.status_code == 422, broken[:60]
        html = text_of(response)
        assert message in html, message
        assert '<details class="card json-editor" open>' in html
    assert len(survey_versions(database)) == 1

    definition = (
        '{"key": "outcomes", "title": "Quick check-in", "strings": {"de": {"next": "Weiter!"}},'
        ' "questions": [{"key": "nps", "kind": "nps", "title": "Would you recommend us?", "required": true}]}'
    )
    assert editor.post("/admin/surveys/outcomes", data=dict(fields, definition=definition)).status_code == 303
    draft = survey_versions(database)[-1]
    assert draft.published_at is None
    assert draft.definition == {
        "key": "outcomes",
        "title": "Quick check-in",
        "strings": {"de": {"next": "Weiter!"}},
        "questions": [{"key": "nps", "kind": "nps", "title": "Would you recommend us?", "required": True}],
    }
    # The form keeps JSON-only settings (the UI strings) when it saves.
    form = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    form["title"] = "Quick check-in, again"
    assert editor.post("/admin/surveys/outcomes", data=form).status_code == 303
    assert survey_versions(database)[-1].definition["strings"] == {"de": {"next": "Weiter!"}}


def test_discarding_the_draft_returns_the_editor_to_the_live_version(
    editor: FlaskClient, database: Database
) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    editor.post("/admin/surveys/outcomes", data=dict(fields, title="Scratch"))
    page = text_of(editor.get("/admin/surveys/outcomes"))
    response = editor.post(
        "/admin/surveys/outcomes/discard", data=form_fields(page, "/admin/surveys/outcomes/discard")
    )
    assert response.status_code == 303
    assert "Draft discarded." in text_of(editor.get("/admin/surveys/outcomes"))
    assert [v.version for v in survey_versions(database)] == [1]


# -- preview and publish ---------------------------------------------------------------------------


def test_preview_shows_the_draft_as_a_respondent_would_see_it(editor: FlaskClient) -> None:
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fields.update(title="Your hiring goals", action="preview")
    response = editor.post("/admin/surveys/outcomes", data=fields)
    assert response.headers["Location"] == "/admin/surveys/outcomes/preview"
    html = text_of(editor.get("/admin/surveys/outcomes/preview"))
    assert "Draft preview" in html and "Publish version 2" in html
    assert "<h1>Your hiring goals</h1>" in html
    assert "Step 1 of 6" in html
    for seen in ("Hire faster", "Fill open roles before the gap costs you", "Choose at most 2."):
        assert seen in html  # outcome options with their descriptions
    assert '<h3 class="r-group">Hire better people</h3>' in html  # objectives grouped by outcome
    assert "Careers-site visits" in html and "8,000" in html and "12,000" in html  # KR defaults
    assert "Recruiter / hiring manager" in html and "Very likely" in html
    assert "Only shown when" in html
    assert "disabled" in html and "<form" in html and 'name="r-role"' in html
    live = text_of(editor.get("/admin/surveys/outcomes/preview?version=1&locale=de"))
    assert "What does success look like for your team?" in live and "Schritt 1 von 6" in live
    assert "live" in live


def test_publishing_makes_version_2_and_earlier_responses_keep_version_1(
    editor: FlaskClient, database: Database
) -> None:
    with database.transaction() as session:
        make_account(session, "acme")
        submit_response(
            session,
            "outcomes",
            ResponseIn(client_response_id=str(uuid.uuid4()), account="acme", answers=outcomes_answers()),
            now=dt.datetime.now(dt.UTC),
        )
    fields = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fields["title"] = "What would success look like this year?"
    editor.post("/admin/surveys/outcomes", data=fields)
    page = text_of(editor.get("/admin/surveys/outcomes"))
    response = editor.post(
        "/admin/surveys/outcomes/publish", data=form_fields(page, "/admin/surveys/outcomes/publish")
    )
    assert response.status_code == 303
    after = text_of(editor.get("/admin/surveys/outcomes"))
    assert "Published version 2." in after and "Live: version 2" in after and "draft pending" not in after

    versions = survey_versions(database)
    assert [(v.version, v.published_at is not None) for v in versions] == [(1, True), (2, True)]
    assert versions[0].definition["title"] == "What does success look like for your team?"  # immutable
    with database.session() as session:
        survey = session.scalar(select(Survey).where(Survey.key == "outcomes"))
        assert survey is not None and survey.title == "What would success look like this year?"
        assert survey.latest_published is not None and survey.latest_published.version == 2
        answered = session.scalars(select(Response)).one()
        assert answered.version.version == 1
    listing = text_of(editor.get("/admin/surveys"))
    assert "version 2" in listing
    assert re.search(r'<td data-label="Responses" class="num">1</td>', listing)
    assert "1 response" in after  # the version history counts version 1's response


def test_publishing_without_a_draft_says_so(editor: FlaskClient, database: Database) -> None:
    page = text_of(editor.get("/admin/surveys/outcomes"))
    marker = editor_fields(page)["marker"]
    response = editor.post(
        "/admin/surveys/outcomes/publish", data={"csrf_token": csrf_of(page), "marker": marker}
    )
    assert response.status_code == 303
    assert "Nothing was published" in text_of(editor.get("/admin/surveys/outcomes"))
    assert len(survey_versions(database)) == 1


# -- concurrent edits ------------------------------------------------------------------------------


def test_a_stale_save_gets_a_conflict_message_instead_of_overwriting(
    app: Flask, editor: FlaskClient, database: Database
) -> None:
    other = app.test_client()
    make_user(database, "olga@northstar.example", Role.ADMIN)
    sign_in(other, "olga@northstar.example")
    mine = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    theirs = editor_fields(text_of(other.get("/admin/surveys/outcomes")))

    theirs["title"] = "Their title"
    assert other.post("/admin/surveys/outcomes", data=theirs).status_code == 303
    mine["title"] = "My title"
    response = editor.post("/admin/surveys/outcomes", data=mine)
    assert response.status_code == 409
    html = text_of(response)
    assert "Someone else changed this survey since you opened it" in html
    assert editor_fields(html)["title"] == "My title"  # my changes are still in the form
    assert survey_versions(database)[-1].definition["title"] == "Their title"

    # Publishing from a page opened before their save is refused as well.
    response = editor.post(
        "/admin/surveys/outcomes/publish", data={"csrf_token": mine["csrf_token"], "marker": mine["marker"]}
    )
    assert response.status_code == 409
    assert [v.published_at is not None for v in survey_versions(database)] == [True, False]

    # Having seen the message, saving again replaces their draft with mine, on purpose.
    assert editor.post("/admin/surveys/outcomes", data=editor_fields(html)).status_code == 303
    assert survey_versions(database)[-1].definition["title"] == "My title"


def test_a_page_opened_before_someone_published_cannot_save_over_the_new_version(
    app: Flask, editor: FlaskClient, database: Database
) -> None:
    stale = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fresh = editor_fields(text_of(editor.get("/admin/surveys/outcomes")))
    fresh["title"] = "Published in between"
    editor.post("/admin/surveys/outcomes", data=fresh)
    page = text_of(editor.get("/admin/surveys/outcomes"))
    editor.post("/admin/surveys/outcomes/publish", data=form_fields(page, "/admin/surveys/outcomes/publish"))
    response = editor.post("/admin/surveys/outcomes", data=dict(stale, intro="Stale"))
    assert response.status_code == 409
    assert "version 2 is published and there is no draft" in text_of(response)
    assert [v.version for v in survey_versions(database)] == [1, 2]


# -- new surveys -----------------------------------------------------------------------------------


def test_a_new_survey_starts_as_a_draft_and_publishes_as_version_1(
    editor: FlaskClient, database: Database
) -> None:
    page = text_of(editor.get("/admin/surveys/new"))
    fields = form_fields(page, "/admin/surveys/new")
    fields.update(
        {
            "key": "onboarding-pulse",
            "title": "How is onboarding going?",
            "q-0-key": "csat",
            "q-0-kind": "csat",
        }
    )
    fields["q-0-title"] = "How satisfied are you with onboarding so far?"
    response = editor.post("/admin/surveys/new", data=fields)
    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/surveys/onboarding-pulse"
    listing = text_of(editor.get("/admin/surveys"))
    assert "How is onboarding going?" in listing and "not yet" in listing

    bad_key = editor.post("/admin/surveys/new", data={**fields, "key": "My Survey!"})
    assert bad_key.status_code == 422
    assert (
        "<b>Key:</b> Use lower-case letters, digits, _ and -, starting with a letter (at most 80 characters)."
        in text_of(bad_key)
    )
    assert "expected pattern" not in text_of(bad_key)

    again = editor.post("/admin/surveys/new", data=fields)
    assert again.status_code == 422
    assert "a survey with the key &#39;onboarding-pulse&#39; already exists" in text_of(again)

    page = text_of(editor.get("/admin/surveys/onboarding-pulse"))
    publish = form_fields(page, "/admin/surveys/onboarding-pulse/publish")
    assert editor.post("/admin/surveys/onboarding-pulse/publish", data=publish).status_code == 303
    versions = survey_versions(database, "onboarding-pulse")
    assert [(v.version, v.published_at is not None) for v in versions] == [(1, True)]


# -- bad input -------------------------------------------------------------------------------------


def test_bad_input_gets_a_4xx_never_a_500(editor: FlaskClient, database: Database) -> None:
    page = text_of(editor.get("/admin/surveys/outcomes"))
    fields = editor_fields(page)
    for path in ("/admin/surveys/NO%00PE", "/admin/surveys/nope", "/admin/surveys/" + "x" * 500):
        assert editor.get(path).status_code == 404
    assert editor.get("/admin/surveys/outcomes/preview?version=abc&locale=%00").status_code == 200
    assert editor.get("/admin/surveys/outcomes/preview?version=99999999999999999999").status_code == 404
    for change in (
        {"title": "Nul\x00title"},
        {"q-0-max": "9" * 5000},
        {"q-0-max": "-3"},
        {"q-0-max_length": "99999999"},
        {"q-1-kind": "hologram"},
        {"q-5-show_if": '{"nonsense_op": [1]}'},
        {"q-5-show_if": "[" * 3000},
        {"q-2-options": "|no value"},
        {"redisplay_days": "1e9"},
    ):
        response = editor.post("/admin/surveys/outcomes", data=dict(fields, **change))
        assert response.status_code == 422, change
        assert "Nothing was saved" in text_of(response)
    odd = dict(fields, **{"q-999-key": "x", "q-9999-key": "y", "q-0-position": "-7", "q-1-position": "x"})
    assert editor.post("/admin/surveys/outcomes", data=odd).status_code in (303, 422)
    assert (
        editor.post("/admin/surveys/outcomes/publish", data={"csrf_token": fields["csrf_token"]}).status_code
        == 409
    )
    login_junk = {"csrf_token": fields["csrf_token"], "email": "a\x00@b.c", "password": "x" * 5000}
    assert editor.post("/admin/logout", data={"csrf_token": fields["csrf_token"]}).status_code == 303
    token = csrf_of(text_of(editor.get("/admin/login")))
    assert editor.post("/admin/login", data=dict(login_junk, csrf_token=token)).status_code == 401
    with database.session() as session:
        assert session.scalar(select(func.count(SurveyVersion.id))) == 1
