"""Driving the admin console from tests: users, sign-in, and a page's forms read the way a browser
would submit them (each test changes what a person would and posts the fields back)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from engine.db import Database
from engine.users import Role, create_user
from surveys.models import Survey, SurveyVersion

PASSWORD = "correct horse battery"
EDITOR = "erin@northstar.example"
VIEWER = "victor@northstar.example"


# -- helpers: read a page's forms the way a browser would ------------------------------------------


class _Forms(HTMLParser):
    """Every <form> on a page: its action and the fields a browser would submit (in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._textarea: str | None = None
        self._select: str | None = None
        self._select_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "id": a.get("id", ""), "fields": []}
            self.forms.append(self._form)
        elif self._form is None or "name" not in a and tag != "option":
            return
        elif tag == "input":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button"):
                self._form["fields"].append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "textarea":
            self._textarea = a["name"]
            self._form["fields"].append((a["name"], ""))
        elif tag == "select":
            self._select, self._select_value = a["name"], None
        elif tag == "option" and self._select and ("selected" in a or self._select_value is None):
            self._select_value = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._form is not None and self._select:
            self._form["fields"].append((self._select, self._select_value or ""))
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea and self._form is not None:
            name, text = self._form["fields"][-1]
            self._form["fields"][-1] = (name, text + data)


def page_forms(html: str) -> list[dict[str, Any]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def form_fields(html: str, action: str) -> dict[str, str]:
    """The fields of the form posting to `action` (the last value wins, as in a dict)."""
    for form in page_forms(html):
        if form["action"] == action:
            return dict(form["fields"])
    raise AssertionError(f"no form posting to {action}")


def editor_fields(html: str, key: str = "outcomes", source: str = "form") -> dict[str, str]:
    for form in page_forms(html):
        fields = dict(form["fields"])
        if form["action"] == f"/admin/surveys/{key}" and fields.get("source") == source:
            return fields
    raise AssertionError(f"no {source} editor on the page")


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def make_user(database: Database, email: str, role: Role) -> None:
    with database.transaction() as session:
        create_user(session, email, PASSWORD, role=role)


def sign_in(
    client: FlaskClient, email: str, password: str = PASSWORD, next_: str | None = None
) -> TestResponse:
    page = client.get("/admin/login" + (f"?next={next_}" if next_ else ""))
    fields = form_fields(text_of(page), "/admin/login")
    fields.update(email=email, password=password)
    return client.post("/admin/login", data=fields)


def survey_versions(database: Database, key: str = "outcomes") -> list[SurveyVersion]:
    with database.session() as session:
        survey = session.scalar(select(Survey).where(Survey.key == key))
        assert survey is not None
        return sorted(survey.versions, key=lambda v: v.version)


def signed_in(client: FlaskClient, database: Database, email: str, role: Role) -> FlaskClient:
    """`client` signed in as a new user with `role`: what the `editor` / `viewer` fixtures return."""
    make_user(database, email, role)
    assert sign_in(client, email).status_code == 303
    return client


def console_user(name: str, email: str, role: Role) -> Any:
    """A fixture called `name`: the test client signed in as a new `role` user, with the recruiting
    playbook imported (the `editor` and `viewer` of the console's tests)."""

    def fixture(client: FlaskClient, database: Database, recruiting: dict[str, int]) -> FlaskClient:
        return signed_in(client, database, email, role)

    return pytest.fixture(name=name)(fixture)
