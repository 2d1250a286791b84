"""The content admin over HTTP: editors create and import, viewers look; a template with an unknown
variable is refused with the field named; the preview renders for a real contact; a test send goes
through the mail backend without touching the message ledger."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from campaigns.models import Message
from campaigns.sink import SendGridSink
from content.models import ContentItem, MessageTemplate
from engine.accounts import Contact, ContactRole
from engine.db import Database
from engine.plans.service import create_plan, get_template
from engine.users import Role
from tests.factories import make_account
from tests.test_people import csrf_of, sign_in_as, text_of

EDITOR = "erin@northstar.example"


def editor(client: FlaskClient, database: Database) -> FlaskClient:
    return sign_in_as(client, database, EDITOR, Role.EDITOR)


def test_an_editor_creates_an_item_and_bad_fields_are_named(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    editor(client, database)
    page = client.get("/admin/content/new")
    form = {
        "csrf_token": csrf_of(text_of(page)),
        "key": "new-guide",
        "kind": "article",
        "title": "New guide",
        "url": "",
        "body": "Intro\n\n<script>alert(1)</script>",
        "minutes": "5",
        "locale": "en",
        "milestones": ["first_job_posted"],
        "stages": ["onboarding"],
    }
    refused = client.post("/admin/content/new", data=form)
    assert refused.status_code == 422 and "line 3: raw &lt;script&gt; is not allowed" in text_of(refused)
    created = client.post("/admin/content/new", data={**form, "body": "# Intro\n\nDo **this**."})
    assert created.status_code == 303
    listing = text_of(client.get("/admin/content?q=new+guide&stage=onboarding"))
    assert "New guide" in listing and "data-total>1 item" in listing
    with database.session() as session:
        row = session.scalar(select(ContentItem).where(ContentItem.key == "new-guide"))
        assert row is not None and row.body_html == "<h1>Intro</h1>\n<p>Do <strong>this</strong>.</p>\n"


def test_viewers_see_the_library_but_cannot_change_it(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    sign_in_as(client, database, "vic@northstar.example", Role.VIEWER)
    assert client.get("/admin/content").status_code == 200
    assert client.get("/admin/content/templates").status_code == 200
    csrf = csrf_of(text_of(client.get("/admin/content")))
    with database.session() as session:
        item_id = session.scalar(select(ContentItem.id).limit(1))
    assert client.post(f"/admin/content/{item_id}/delete", data={"csrf_token": csrf}).status_code == 403
    assert client.get("/admin/content/import").status_code == 403
    assert client.post("/admin/content/new", data={"csrf_token": csrf}).status_code == 403


def test_a_template_with_an_unknown_variable_is_refused_at_save(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    editor(client, database)
    with database.session() as session:
        template = session.scalar(select(MessageTemplate).where(MessageTemplate.key == "next_step"))
        assert template is not None
        template_id, body, version = template.id, template.body, template.version
    page = client.get(f"/admin/content/templates/{template_id}")
    form = {"csrf_token": csrf_of(text_of(page)), "key": "next_step", "kind": "email", "locale": "en",
            "subject": "Next {{ acount.name }}", "preheader": "", "body": body}  # fmt: skip
    refused = client.post(f"/admin/content/templates/{template_id}", data=form)
    assert refused.status_code == 422
    assert "&#39;acount&#39; is undefined" in text_of(refused) and 'id="err-subject"' in text_of(refused)
    syntax = client.post(
        f"/admin/content/templates/{template_id}", data={**form, "subject": "ok", "body": "{% for %}"}
    )
    assert syntax.status_code == 422 and "line 1:" in text_of(syntax)
    saved = client.post(f"/admin/content/templates/{template_id}", data={**form, "subject": "Next up"})
    assert saved.status_code == 303
    with database.session() as session:
        row = session.get(MessageTemplate, template_id)
        assert row is not None and row.subject == "Next up" and row.version == version + 1


def test_preview_for_a_contact_and_a_test_send_outside_the_ledger(
    recruiting: object, client: FlaskClient, database: Database, sink: SendGridSink
) -> None:
    editor(client, database)
    with database.transaction() as session:
        account = make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
        create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=account.created_at)
        contact_id = session.scalar(select(Contact.id).where(Contact.email == "sofia@acme.example"))
        template_id = session.scalar(
            select(MessageTemplate.id).where(
                MessageTemplate.key == "welcome_plan", MessageTemplate.locale == "en"
            )
        )
    preview = client.get(f"/admin/content/templates/{template_id}/preview?contact={contact_id}")
    assert preview.status_code == 200
    page = text_of(preview)
    assert "Sofia, your success plan for Acme Inc is ready" in page
    assert "helps with the next milestone" in page  # why the top item is recommended
    frame = client.get(f"/admin/content/templates/{template_id}/render?contact={contact_id}")
    assert frame.status_code == 200 and "sandbox" in frame.headers["Content-Security-Policy"]
    assert "Hi Sofia" in text_of(frame) and "http://northstar.test/t/" in text_of(frame)
    sent = client.post(
        f"/admin/content/templates/{template_id}/test-send",
        data={"csrf_token": csrf_of(page), "contact": str(contact_id), "email": "qa@northstar.example"},
    )
    assert sent.status_code == 303
    assert "Test sent to qa@northstar.example" in text_of(client.get(sent.headers["Location"]))
    message = sink.messages()[-1]
    assert message.to == "qa@northstar.example" and (message.subject or "").startswith("[Test] Sofia")
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0  # the ledger is untouched
    bad = client.post(
        f"/admin/content/templates/{template_id}/test-send",
        data={"csrf_token": csrf_of(page), "email": "not an address"},
    )
    assert "is not an email address" in text_of(client.get(bad.headers["Location"]))


def test_every_bundled_template_previews_with_and_without_a_contact(
    recruiting: object, client: FlaskClient, database: Database, sink: SendGridSink
) -> None:
    editor(client, database)
    with database.transaction() as session:
        make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
        contact_id = session.scalar(select(Contact.id).where(Contact.email == "sofia@acme.example"))
        templates = [(t.key, t.locale, t.id) for t in session.scalars(select(MessageTemplate))]
    for key, locale, template_id in templates:
        for query in ("", f"?contact={contact_id}"):
            preview = client.get(f"/admin/content/templates/{template_id}/preview{query}")
            assert preview.status_code == 200, (key, locale, query)
    # The survey invitation gets the survey its campaign step names (survey_invite: `outcomes`),
    # with links that answer for nobody, in the preview and in a test send alike.
    survey_id = next(i for key, locale, i in templates if (key, locale) == ("outcomes_survey", "en"))
    frame = text_of(client.get(f"/admin/content/templates/{survey_id}/render?contact={contact_id}"))
    assert "Which outcomes matter most to your team this year?" in frame and "Hire faster" in frame
    assert "/admin/surveys/outcomes/preview" in frame and "/s/outcomes/a/" not in frame
    page = text_of(client.get(f"/admin/content/templates/{survey_id}/preview?contact={contact_id}"))
    sent = client.post(
        f"/admin/content/templates/{survey_id}/test-send",
        data={"csrf_token": csrf_of(page), "contact": str(contact_id), "email": "qa@northstar.example"},
    )
    assert sent.status_code == 303
    message = sink.messages()[-1]
    assert "Hire faster" in (message.html or "") and "/s/outcomes/a/" not in (message.html or "")


def test_csv_import_in_the_admin_dry_runs_then_applies(
    recruiting: object, client: FlaskClient, database: Database
) -> None:
    editor(client, database)
    csrf = csrf_of(text_of(client.get("/admin/content/import")))
    csv_text = "key,kind,title,url,milestones\nfresh,video,Fresh video,https://x.example/v,first_job_posted\n"
    dry = client.post(
        "/admin/content/import", data={"csrf_token": csrf, "csv": csv_text, "action": "dry-run"}
    )
    assert dry.status_code == 200 and "Dry run: 1 would be created" in text_of(dry)
    broken = client.post(
        "/admin/content/import",
        data={"csrf_token": csrf, "csv": csv_text + "x,podcast,X,,\n", "action": "apply"},
    )
    assert broken.status_code == 422 and "Nothing was imported" in text_of(broken)
    with database.session() as session:
        assert session.scalar(select(ContentItem).where(ContentItem.key == "fresh")) is None
    applied = client.post(
        "/admin/content/import", data={"csrf_token": csrf, "csv": csv_text, "action": "apply"}
    )
    assert applied.status_code == 303
    with database.session() as session:
        assert session.scalar(select(ContentItem).where(ContentItem.key == "fresh")) is not None
