"""The campaign pages on real PostgreSQL: the list, a new campaign, the builder posted as a plain
form (no JavaScript: blank step slot, positions, remove boxes), inline errors, a stale save, publish,
the flow with live counts, pause/resume, and what a viewer may not do."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns import builder
from campaigns.builder import CampaignDraft
from campaigns.enrollment import enroll_account
from campaigns.models import Campaign
from content.models import MessageTemplate
from engine.db import Database
from engine.users import Role
from tests.admin_client import EDITOR, VIEWER, console_user, make_user, sign_in, signed_in, text_of
from tests.factories import make_account

FORM = "campaign-form"


class _BuilderFields(HTMLParser):
    """The fields a browser submits with #campaign-form: inside it, or tied to it by `form=`."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._inside = False
        self._textarea: int | None = None
        self._select: dict[str, Any] | None = None

    def _ours(self, a: dict[str, str]) -> bool:
        return a.get("form") == FORM or (self._inside and "form" not in a)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == FORM:
            self._inside = True
        elif tag == "input" and "name" in a and self._ours(a):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button"):
                self.fields.append((a["name"], a.get("value", "on")))
        elif tag == "textarea" and "name" in a and self._ours(a):
            self.fields.append((a["name"], ""))
            self._textarea = len(self.fields) - 1
        elif tag == "select" and "name" in a and self._ours(a):
            self._select = {"name": a["name"], "chosen": [], "first": None, "multiple": "multiple" in a}
        elif tag == "option" and self._select is not None:
            if "selected" in a:
                self._select["chosen"].append(a.get("value", ""))
            if self._select["first"] is None:
                self._select["first"] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select is not None:
            found = self._select
            if found["chosen"]:
                self.fields.extend((found["name"], value) for value in found["chosen"])
            elif not found["multiple"]:
                self.fields.append((found["name"], found["first"] or ""))
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            name, text = self.fields[self._textarea]
            self.fields[self._textarea] = (name, text + data)


def builder_fields(html: str) -> list[tuple[str, str]]:
    parser = _BuilderFields()
    parser.feed(html)
    return parser.fields


def changed(fields: list[tuple[str, str]], **values: str | list[str]) -> list[tuple[str, str]]:
    """The form with these fields replaced (a list: a multi-value field such as checkboxes)."""
    out = [(k, v) for k, v in fields if k not in values]
    for name, value in values.items():
        out.extend((name, v) for v in (value if isinstance(value, list) else [value]))
    return out


def post(client: FlaskClient, path: str, fields: list[tuple[str, str]]) -> Any:
    from werkzeug.datastructures import MultiDict

    return client.post(path, data=MultiDict(fields))


editor = console_user("editor", EDITOR, Role.EDITOR)


@pytest.fixture
def viewer(app: Flask, database: Database, recruiting: dict[str, int]) -> FlaskClient:
    return signed_in(app.test_client(), database, VIEWER, Role.VIEWER)


def csrf(client: FlaskClient, path: str = "/admin/campaigns") -> str:
    html = text_of(client.get(path))
    return html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def create(editor: FlaskClient, key: str = "onboarding") -> str:
    response = editor.post(
        "/admin/campaigns/new",
        data={"csrf_token": csrf(editor), "key": key, "name": "Onboarding nudge", "description": ""},
    )
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/campaigns/{key}/edit"
    return text_of(editor.get(f"/admin/campaigns/{key}/edit"))


def test_the_list_shows_each_campaign_with_its_status_version_and_counts(
    editor: FlaskClient, database: Database
) -> None:
    with database.transaction() as session:
        account = make_account(session, "acme")
        enroll_account(session, account.id, "nurture", now=dt.datetime.now(dt.UTC), reason="test")
    html = text_of(editor.get("/admin/campaigns"))
    assert "Welcome" in html or "nurture" in html
    row = html.split('data-campaign="nurture"', 1)[1].split("</tr>", 1)[0]
    assert "live" in row and '<td data-label="Enrolled now" class="num">1</td>' in row
    counts = editor.get("/admin/campaigns/nurture/counts").json  # the detail page refreshes from it
    assert counts["versions"][0]["steps"][0]["by_state"] == {"active": 1}


def test_an_empty_list_says_what_to_do(client: FlaskClient, database: Database) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    sign_in(client, EDITOR)
    html = text_of(client.get("/admin/campaigns"))
    assert "No campaigns yet" in html and "/admin/campaigns/new" in html


def test_building_a_campaign_without_javascript_then_publishing_it(
    editor: FlaskClient, database: Database
) -> None:
    page = create(editor)
    fields = builder_fields(page)
    # The blank slot (step-0) becomes an email; saving adds the next blank slot (step-1) and so on.
    fields = changed(
        fields,
        **{
            "step-0-kind": "email",
            "step-0-key": "hello",
            "step-0-template": "welcome_plan",
            "step-0-to": ["champion"],
        },
    )
    response = post(editor, "/admin/campaigns/onboarding/edit", fields + [("action", "save")])
    assert response.status_code == 303, text_of(response)
    page = text_of(editor.get("/admin/campaigns/onboarding/edit"))
    fields = changed(
        builder_fields(page),
        **{
            "step-1-kind": "wait_until",
            "step-1-key": "first_job",
            "step-1-wait_for": "milestone",
            "step-1-milestone": "first_job_posted",
            "step-1-timeout_days": "7",
            "step-1-on_timeout": "remind",
        },
    )
    response = post(editor, "/admin/campaigns/onboarding/edit", fields + [("action", "save")])
    # The time-out names a step that does not exist yet: shown at its field, nothing saved.
    assert response.status_code == 422
    html = text_of(response)
    assert "Nothing was saved: 1 problem to fix." in html
    assert "no step &#39;remind&#39; in this campaign" in html
    assert (
        'name="step-1-on_timeout" value="remind"' in html
        and 'aria-invalid="true" aria-describedby="err-1-on_timeout"' in html
    )

    # Add the missing steps (positions put "remind" last), then save and publish in one go.
    fields = builder_fields(html)
    fields = changed(fields, **{"step-2-kind": "exit", "step-2-key": "done"})
    fields += [
        ("step-7-kind", "email"),
        ("step-7-key", "remind"),
        ("step-7-template", "next_step"),
        ("step-7-position", "9"),
    ]
    fields = changed(fields, note="first cut")
    response = post(editor, "/admin/campaigns/onboarding/edit", fields + [("action", "publish")])
    assert response.status_code == 303, text_of(response)
    assert response.headers["Location"] == "/admin/campaigns/onboarding"
    with database.session() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.key == "onboarding"))
        assert campaign is not None and campaign.version == 1
        assert [s.key for s in campaign.steps] == ["hello", "first_job", "done", "remind"]
        assert campaign.steps[1].config == {
            "milestone": "first_job_posted",
            "timeout_days": 7.0,
            "on_timeout": "remind",
        }
        assert session.scalar(select(CampaignDraft)) is None
    detail = text_of(editor.get("/admin/campaigns/onboarding"))
    assert (
        "Flow · version 1" in detail and "first_job_posted achieved, at most 7 days (then remind)" in detail
    )
    assert "first cut" in detail


def test_steps_are_reordered_and_removed_by_position_and_checkbox(
    editor: FlaskClient, database: Database
) -> None:
    page = text_of(editor.get("/admin/campaigns/milestone_slipped/edit"))
    fields = builder_fields(page)
    assert ("step-0-key", "help") in fields and ("step-5-kind", "") in fields  # five steps + a blank slot
    # Remove the second email and move the wait after the branch would break the flow: positions swap 0 and 1.
    fields = changed(fields, **{"step-3-remove": "on", "step-0-position": "2", "step-1-position": "1"})
    response = post(editor, "/admin/campaigns/milestone_slipped/edit", fields + [("action", "save")])
    assert response.status_code == 303, text_of(response)
    with database.session() as session:
        draft = session.scalar(select(CampaignDraft).where(CampaignDraft.key == "milestone_slipped"))
        assert draft is not None
        assert [s["key"] for s in draft.document["steps"]] == ["three_days", "help", "still_behind", "done"]


def test_a_stale_save_says_someone_else_saved_and_keeps_my_changes(
    app: Flask, editor: FlaskClient, database: Database
) -> None:
    other = app.test_client()
    make_user(database, "olga@northstar.example", Role.ADMIN)
    sign_in(other, "olga@northstar.example")
    mine = builder_fields(text_of(editor.get("/admin/campaigns/nurture/edit")))
    theirs = builder_fields(text_of(other.get("/admin/campaigns/nurture/edit")))
    assert post(other, "/admin/campaigns/nurture/edit", changed(theirs, name="Their name")).status_code == 303
    response = post(editor, "/admin/campaigns/nurture/edit", changed(mine, name="My name"))
    assert response.status_code == 409
    html = text_of(response)
    assert "someone else saved this draft (olga@northstar.example)" in html
    assert 'href="/admin/campaigns/nurture/edit">Reload the draft</a>' in html
    assert 'name="name" value="My name"' in html
    with database.session() as session:
        draft = session.scalar(select(CampaignDraft).where(CampaignDraft.key == "nurture"))
        assert draft is not None and draft.document["name"] == "Their name"
    # Having seen the message, saving again replaces theirs on purpose.
    assert post(editor, "/admin/campaigns/nurture/edit", builder_fields(html)).status_code == 303


def test_bad_input_gets_field_messages_never_a_500(editor: FlaskClient) -> None:
    fields = builder_fields(text_of(editor.get("/admin/campaigns/milestone_slipped/edit")))
    bad = changed(
        fields,
        **{
            "step-1-days": "soon",
            "step-2-condition": "{not json",
            "holdout_percent": "80",
            "window_on": "on",
            "window_start": "25",
            "exit_condition": '{"==": [{"var": "nope"}, 1]}',
            "reentry": "after",
            "reentry_days": "",
        },
    )
    response = post(editor, "/admin/campaigns/milestone_slipped/edit", bad)
    assert response.status_code == 422
    html = text_of(response)
    for message in ("Not a valid number.", "not valid JSON", "reentry", "Send window", "Holdout"):
        assert message.lower() in html.lower(), message
    assert post(editor, "/admin/campaigns/nope/edit", fields).status_code == 404
    response = editor.post(
        "/admin/campaigns/new", data={"csrf_token": csrf(editor), "key": "Bad Key!", "name": ""}
    )
    assert response.status_code == 422 and "lower-case letters" in text_of(response)
    assert editor.get("/admin/campaigns/nope").status_code == 404
    assert editor.get("/admin/campaigns/templates/nope/preview").status_code == 404


def test_pause_resume_and_the_template_preview(editor: FlaskClient, database: Database) -> None:
    token = csrf(editor, "/admin/campaigns/nurture")
    assert editor.post("/admin/campaigns/nurture/pause", data={"csrf_token": token}).status_code == 303
    assert "paused" in text_of(editor.get("/admin/campaigns/nurture"))
    with database.session() as session:
        assert session.scalar(select(Campaign.paused).where(Campaign.key == "nurture")) is True
    editor.post("/admin/campaigns/nurture/resume", data={"csrf_token": token})
    with database.session() as session:
        assert session.scalar(select(Campaign.paused).where(Campaign.key == "nurture")) is False
    preview = editor.get("/admin/campaigns/templates/welcome_plan/preview")
    assert preview.status_code == 200 and "Alex" in text_of(preview)
    assert "sandbox" in preview.headers["Content-Security-Policy"]
    card = editor.get("/admin/campaigns/templates/plan_ready_card/preview")
    assert card.status_code == 200


def test_only_rule_entered_campaigns_are_told_to_add_an_enrolling_rule(editor: FlaskClient) -> None:
    slipped = text_of(editor.get("/admin/campaigns/milestone_slipped"))
    assert "<dd>a milestone slipped</dd>" in slipped
    assert "No published rule enrols" not in slipped and "Rules that enrol accounts" not in slipped
    invite = text_of(editor.get("/admin/campaigns/survey_invite"))  # entered by rule: nothing enrols it
    assert "No published rule enrols accounts here: add an <code>enroll</code> action" in invite
    assert "or enrol an account from its page" in invite
    nurture = text_of(editor.get("/admin/campaigns/nurture"))  # the rules that enrol it are listed
    assert "Rules that enrol accounts" in nurture and "Hire faster or hire better" in nurture


def test_every_bundled_template_previews_and_the_survey_invite_shows_its_survey(
    editor: FlaskClient, database: Database
) -> None:
    with database.session() as session:
        keys = sorted(set(session.scalars(select(MessageTemplate.key))))
    assert "outcomes_survey" in keys
    for key in keys:
        assert editor.get(f"/admin/campaigns/templates/{key}/preview").status_code == 200, key
    # survey_invite's step sends outcomes_survey with `survey: outcomes`: the preview shows that
    # survey's first question and one link per outcome, as the send does, but links that answer
    # for nobody (the survey's console preview), never a signed answer link.
    page = text_of(editor.get("/admin/campaigns/templates/outcomes_survey/preview"))
    assert "Which outcomes matter most to your team this year?" in page
    assert "Hire faster" in page and "Hire better people" in page
    assert page.count('href="http://localhost/admin/surveys/outcomes/preview"') >= 3
    assert "/s/outcomes/a/" not in page and "%ns:" not in page
    # The builder's link names the step's survey; one an email cannot offer says why (no 500).
    builder_page = text_of(editor.get("/admin/campaigns/survey_invite/edit"))
    assert "/admin/campaigns/templates/outcomes_survey/preview?survey=outcomes" in builder_page
    asked = editor.get("/admin/campaigns/templates/outcomes_survey/preview?survey=outcomes")
    assert asked.status_code == 200 and "Hire faster" in text_of(asked)
    unknown = editor.get("/admin/campaigns/templates/outcomes_survey/preview?survey=nope")
    assert unknown.status_code == 422 and "no survey" in text_of(unknown)


def test_a_viewer_sees_read_only_pages_and_cannot_change_anything(
    viewer: FlaskClient, database: Database
) -> None:
    with database.transaction() as session:  # a campaign not published yet: viewers read its draft
        builder.create_campaign(session, "fresh", "Fresh start", user=EDITOR, now=dt.datetime.now(dt.UTC))
    assert "Fresh start" in text_of(viewer.get("/admin/campaigns"))
    unpublished = text_of(viewer.get("/admin/campaigns/fresh"))
    assert "not published" in unpublished and "Open the builder" not in unpublished
    detail = text_of(viewer.get("/admin/campaigns/nurture"))
    assert "Pause</button>" not in detail and "/admin/campaigns/nurture/edit" not in detail
    token = csrf(viewer)
    for path in (
        "/admin/campaigns/nurture/pause",
        "/admin/campaigns/nurture/edit",
        "/admin/campaigns/nurture/discard",
    ):
        assert viewer.post(path, data={"csrf_token": token}).status_code == 403, path
    assert viewer.get("/admin/campaigns/nurture/edit").status_code == 403
    assert viewer.get("/admin/campaigns/new").status_code == 403
    with database.session() as session:
        assert session.scalar(select(Campaign.paused).where(Campaign.key == "nurture")) is False
        assert [d.key for d in session.scalars(select(CampaignDraft))] == ["fresh"]


def test_a_draft_left_behind_by_a_newer_version_says_so_and_cannot_publish(
    editor: FlaskClient, database: Database
) -> None:
    fields = builder_fields(text_of(editor.get("/admin/campaigns/nurture/edit")))
    assert post(editor, "/admin/campaigns/nurture/edit", changed(fields, name="Mine")).status_code == 303
    with database.transaction() as session:  # a playbook import publishes version 2 meanwhile
        draft = builder.get_draft(session, "nurture")
        assert draft.campaign is not None
        draft.campaign.version = 2
    page = text_of(editor.get("/admin/campaigns/nurture/edit"))
    assert "Version 2 was published after this draft started from version 1" in page
    response = post(editor, "/admin/campaigns/nurture/edit", builder_fields(page) + [("action", "publish")])
    assert response.status_code == 409
    assert "version 2 was published after this draft started from version 1" in text_of(response)


def test_the_form_round_trips_every_bundled_campaign_unchanged(
    editor: FlaskClient, database: Database
) -> None:
    """Opening the builder and publishing without a change makes no version and no draft: every
    step setting of the playbook's campaigns survives the form."""
    for key in ("nurture", "survey_invite", "review_reminder", "milestone_slipped"):
        fields = builder_fields(text_of(editor.get(f"/admin/campaigns/{key}/edit")))
        response = post(editor, f"/admin/campaigns/{key}/edit", fields + [("action", "publish")])
        assert response.status_code == 303, (key, text_of(response))
        assert "Nothing changed since version 1" in text_of(editor.get(response.headers["Location"])), key
    with database.session() as session:
        assert set(session.scalars(select(Campaign.version))) == {1}
        assert session.scalar(select(CampaignDraft)) is None


def test_the_builder_page_has_unique_ids_and_labelled_controls(editor: FlaskClient) -> None:
    html = text_of(editor.get("/admin/campaigns/milestone_slipped/edit"))
    page = re.sub(r"<template.*?</template>", "", html, flags=re.S)
    ids = re.findall(r'(?<![\w-])id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for target in re.findall(r'(?<![\w-])for="([^"]+)"', page):
        assert target in ids, f"a label points at a missing control: {target}"
