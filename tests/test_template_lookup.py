"""Template lookups by key now that a key has one row per locale: the campaign check reads every
locale's body, the console's template preview shows the default locale unless asked for another."""

from __future__ import annotations

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from engine.db import Database
from engine.errors import NorthstarError
from engine.playbook import import_playbook, resolve_playbook
from engine.users import Role
from tests.test_admin_surveys import EDITOR, make_user, sign_in, text_of

CHECK_IN = {
    "key": "check_in",
    "kind": "email",
    "subject": "How is it going?",
    "body": "<p>Hi {{ contact.first_name }}</p>",
}
CHECK_IN_DE = {
    **CHECK_IN,
    "locale": "de",
    "subject": "Wie läuft es?",
    "body": "<p>Hallo</p>{% for o in survey.options %}<a href='{{ o.url }}'>{{ o.label }}</a>{% endfor %}",
}
CAMPAIGN = {
    "key": "check_in",
    "name": "Check in",
    "steps": [{"key": "ask", "kind": "email", "template": "check_in"}],
}


def test_a_template_that_uses_the_survey_in_one_locale_needs_the_survey_named(db: Session) -> None:
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["templates"].extend([CHECK_IN, CHECK_IN_DE])
    document["campaigns"].append(CAMPAIGN)
    with pytest.raises(NorthstarError) as refused:
        import_playbook(db, yaml.safe_dump(document))
    assert "uses survey.*: name the survey here" in str(refused.value.extra or refused.value.detail)


def test_the_preview_shows_the_default_locale_or_the_one_asked_for(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    assert sign_in(client, EDITOR).status_code == 303
    for _ in range(3):  # whichever row the database returns first, the default locale's is shown
        english = text_of(client.get("/admin/campaigns/templates/welcome_plan/preview"))
        assert "Alex" in english and "Hallo" not in english
    german = client.get("/admin/campaigns/templates/welcome_plan/preview?locale=de")
    assert german.status_code == 200 and "Hallo Alex" in text_of(german)
    fallback = text_of(client.get("/admin/campaigns/templates/welcome_plan/preview?locale=fr"))
    assert "Hallo" not in fallback and "Alex" in fallback
    assert client.get("/admin/campaigns/templates/nope/preview?locale=de").status_code == 404
