"""Account 360 on real PostgreSQL: the account list (search, segment, stage, pages), one account's
contacts and triangle gaps, answers, plan, messages with their "why not sent" trace, events and
notes; and the actions (re-run rules after the trace, enrol/exit, rotate the link, add a note),
which only editors may take, each with CSRF, and which refuse bad input with nothing changed."""

from __future__ import annotations

import datetime as dt
import html as markup
import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select

from campaigns.enrollment import enroll_account
from campaigns.guards import Caps
from campaigns.models import Enrollment, EnrollmentState
from campaigns.scheduler import run_tick
from engine.accounts import ContactRole, upsert_contact
from engine.audit import AuditEntry
from engine.db import Database
from engine.events.models import Event
from engine.notes import AccountNote
from engine.plans.models import SuccessPlan
from engine.plans.service import create_plan, get_template
from engine.playbook import import_playbook, resolve_playbook
from engine.users import Role
from surveys.service import ContactRef
from tests.admin_client import csrf_of, form_fields, signed_in, text_of
from tests.factories import answer_outcomes, make_account

EDITOR = "erin@northstar.example"
VIEWER = "victor@northstar.example"
NOW = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)


@dataclass(frozen=True)
class Story:
    account_id: int
    other_id: int
    plan_id: int
    camila_id: int


def build_story(database: Database) -> Story:
    """Acme: champion Camila and a sponsor, a plan, a held-out campaign that suppressed Camila's
    nudge, and 25 product events. Globex: an enterprise account in adoption with nobody named."""
    document = yaml.safe_load(resolve_playbook("recruiting")[1])
    document["campaigns"].append(
        {
            "key": "held",
            "name": "Held out nudge",
            "steps": [{"key": "held-hello", "kind": "email", "template": "next_step", "to": ["champion"]}],
        }
    )
    with database.transaction() as session:
        import_playbook(session, yaml.safe_dump(document))
        account = make_account(
            session, "acme", contacts=(("boss@acme.example", ContactRole.EXEC_SPONSOR),), tier="gold"
        )
        camila = upsert_contact(
            session, account, "camila@acme.example", name="Camila Ortiz", role=ContactRole.CHAMPION
        )
        other = make_account(session, "globex", segment="enterprise", contacts=())
        other.lifecycle_stage = "adoption"
        plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=NOW)
        held, _ = enroll_account(session, account.id, "held", now=NOW, reason="rule 'Held'")
        held.held_out = True
        run_tick(session, now=NOW, caps=Caps(0, 0))
        for i in range(25):
            session.add(
                Event(
                    account_id=account.id,
                    name="job_posted",
                    properties={"n": i},
                    occurred_at=NOW - dt.timedelta(minutes=i),
                    idempotency_key=f"evt-{i}",
                )
            )
        return Story(account.id, other.id, plan.id, camila.id)


@pytest.fixture
def story(database: Database, recruiting: dict[str, int]) -> Story:
    return build_story(database)


@pytest.fixture
def editor(client: FlaskClient, database: Database, story: Story) -> FlaskClient:
    return signed_in(client, database, EDITOR, Role.EDITOR)


@pytest.fixture
def viewer(client: FlaskClient, database: Database, story: Story) -> FlaskClient:
    return signed_in(client, database, VIEWER, Role.VIEWER)


def answer_for_acme(database: Database, **answers: Any) -> None:
    """Camila answers the outcomes survey for Acme, through the service the API uses."""
    with database.transaction() as session:
        answer_outcomes(
            session,
            ContactRef("camila@acme.example", "Camila Ortiz"),
            answers,
            channel="hosted",
            now=dt.datetime.now(dt.UTC),
        )


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-account="([^"]+)"', html)


def post_form(client: FlaskClient, page_url: str, action: str, **changes: str) -> Any:
    fields = form_fields(text_of(client.get(page_url)), action)
    fields.update(changes)
    return client.post(action, data=fields)


# -- the list -------------------------------------------------------------------------------------


def test_the_list_filters_by_name_segment_and_stage(editor: FlaskClient) -> None:
    html = text_of(editor.get("/admin/accounts"))
    assert listed(html) == ["acme", "globex"]
    assert '<a href="/admin/accounts" aria-current="page">Accounts</a>' in html
    assert listed(text_of(editor.get("/admin/accounts?q=GLOB"))) == ["globex"]
    assert listed(text_of(editor.get("/admin/accounts?segment=starter"))) == ["acme"]
    assert listed(text_of(editor.get("/admin/accounts?stage=adoption"))) == ["globex"]
    none = text_of(editor.get("/admin/accounts?q=nobody-like-this"))
    assert listed(none) == [] and "No account matches these filters." in none


def test_the_list_pages_and_refuses_bad_filters(editor: FlaskClient, database: Database) -> None:
    with database.transaction() as session:
        for i in range(30):
            make_account(session, f"bulk-{i:02d}", contacts=())
    first, second = text_of(editor.get("/admin/accounts")), text_of(editor.get("/admin/accounts?page=2"))
    assert len(listed(first)) == 25 and len(listed(second)) == 7
    assert "page 1 of 2" in first and 'rel="next" href="/admin/accounts?page=2"' in first
    beyond = editor.get("/admin/accounts?page=9")
    assert beyond.status_code == 200 and "There is no page 9." in text_of(beyond)
    for query, message in (
        ("page=abc", "Page must be a whole number"),
        ("page=0", "Page must be a whole number"),
        ("stage=bogus", "Lifecycle stage must be one of"),
        ("q=" + "x" * 300, "at most 200 characters"),
        ("q=a%00b", "NUL"),
    ):
        response = editor.get(f"/admin/accounts?{query}")
        assert response.status_code == 400, query
        assert message in text_of(response), query


# -- one account ----------------------------------------------------------------------------------


def test_the_account_page_shows_people_plan_messages_events(editor: FlaskClient, story: Story) -> None:
    response = editor.get(f"/admin/accounts/{story.account_id}")
    html = text_of(response)
    assert response.status_code == 200
    assert "Acme Inc" in html and "<dt><code>tier</code></dt><dd>gold</dd>" in html
    assert "Camila Ortiz" in html and f'id="contact-{story.camila_id}"' in html
    assert "Gaps: 1 of 2 champions, no power user" in html
    assert "hire_faster_plan" in html and "Revision history" in html
    # The held-out nudge: its status and the guard that stopped it, in words.
    assert 'data-message="held-hello" data-status="suppressed"' in html
    assert "Not sent: holdout" in html and "held out of this campaign" in html
    assert 'data-enrollment="held"' in html
    # Events: the latest 20 of 25, newest first, with a next page.
    assert html.count("<code>job_posted</code>") == 20
    assert "Page 1 of 2" in html
    older = text_of(editor.get(f"/admin/accounts/{story.account_id}?events=2"))
    assert older.count("<code>job_posted</code>") == 5
    assert "No survey answers yet." in html


def test_an_unknown_account_is_a_friendly_404(editor: FlaskClient) -> None:
    response = editor.get("/admin/accounts/999999")
    assert response.status_code == 404 and "There is no account" in text_of(response)
    # Past PostgreSQL's integer no row can exist: the route does not match (web.converters), and
    # the console's own 404 page says so.
    response = editor.get("/admin/accounts/99999999999999")
    assert response.status_code == 404 and "Not Found" in text_of(response)


def test_a_viewer_sees_the_account_but_no_action_and_every_action_is_refused(
    viewer: FlaskClient, story: Story
) -> None:
    page = viewer.get(f"/admin/accounts/{story.account_id}")
    html = text_of(page)
    assert page.status_code == 200 and "You can view this account." in html
    assert "Add note" not in html and "Re-run rules" not in html
    token = csrf_of(html)
    base = f"/admin/accounts/{story.account_id}"
    assert viewer.get(f"{base}/rerun").status_code == 403
    for action, data in (
        ("rerun", {"confirm": "rerun"}),
        ("enroll", {"campaign": "held"}),
        ("exit", {"campaign": "held"}),
        ("share-link", {"confirm": "rotate"}),
        ("notes", {"body": "hello"}),
    ):
        response = viewer.post(f"{base}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 403, action
        assert "You can look, but not change" in text_of(response)


def test_actions_need_the_csrf_token(editor: FlaskClient, story: Story, database: Database) -> None:
    response = editor.post(f"/admin/accounts/{story.account_id}/notes", data={"body": "no token"})
    assert response.status_code == 400 and "This form has expired" in text_of(response)
    with database.session() as session:
        assert session.scalars(select(AccountNote)).all() == []


# -- actions --------------------------------------------------------------------------------------


def test_a_note_is_added_and_bad_notes_are_refused(
    editor: FlaskClient, story: Story, database: Database
) -> None:
    page = f"/admin/accounts/{story.account_id}"
    action = f"{page}/notes"
    saved = post_form(editor, page, action, body="  Called Dana: renewal in March.  ")
    assert saved.status_code == 303 and saved.headers["Location"].endswith("#notes")
    html = text_of(editor.get(saved.headers["Location"]))
    assert "Note added." in html and "Called Dana: renewal in March." in html and EDITOR in html
    empty = post_form(editor, page, action, body="   ")
    assert empty.status_code == 422 and "Nothing was changed. Write the note first.</p>" in text_of(empty)
    assert 'id="note-error" data-problem>Write the note first.</p>' in text_of(empty)
    assert "Nothing was saved" not in text_of(empty)
    long = post_form(editor, page, action, body="x" * 4001)
    assert long.status_code == 422
    assert "A note has at most 4,000 characters (this one has 4,001)." in text_of(long)
    assert "x" * 4001 in text_of(long)  # what was typed comes back
    with database.session() as session:
        assert [n.body for n in session.scalars(select(AccountNote))] == ["Called Dana: renewal in March."]
        logged = session.scalars(select(AuditEntry).where(AuditEntry.object_type == "AccountNote")).one()
        assert logged.actor == EDITOR and logged.action == "insert"


def test_enrol_and_exit_a_campaign(editor: FlaskClient, story: Story, database: Database) -> None:
    page = f"/admin/accounts/{story.account_id}"
    enrolled = post_form(editor, page, f"{page}/enroll", campaign="nurture")
    assert enrolled.status_code == 303
    assert "Enrolled in" in text_of(editor.get(enrolled.headers["Location"]))
    again = post_form(editor, page, f"{page}/enroll", campaign="nurture")
    assert "Already in" in text_of(editor.get(again.headers["Location"]))
    unknown = post_form(editor, page, f"{page}/enroll", campaign="no-such-campaign")
    assert unknown.status_code == 404 and "There is no campaign &#39;no-such-campaign&#39;" in text_of(
        unknown
    )
    blank = post_form(editor, page, f"{page}/enroll", campaign="")
    assert blank.status_code == 422 and "Choose a campaign." in text_of(blank)
    exited = post_form(editor, page, f"{page}/exit", campaign="nurture")
    assert exited.status_code == 303
    assert "Exited" in text_of(editor.get(exited.headers["Location"]))
    with database.session() as session:
        enrolment = session.scalar(
            select(Enrollment)
            .where(Enrollment.account_id == story.account_id, Enrollment.entry == 1)
            .join(Enrollment.campaign)
            .where(Enrollment.exited_reason == f"console: {EDITOR}")
        )
        assert enrolment is not None and enrolment.state is EnrollmentState.EXITED
    not_in = editor.post(
        f"{page}/exit", data={"csrf_token": csrf_of(text_of(editor.get(page))), "campaign": "nurture"}
    )
    assert "nothing changed" in text_of(editor.get(not_in.headers["Location"]))


def test_rotating_the_share_link_needs_confirmation_and_a_plan(
    editor: FlaskClient, story: Story, database: Database
) -> None:
    page = f"/admin/accounts/{story.account_id}"
    unconfirmed = editor.post(f"{page}/share-link", data={"csrf_token": csrf_of(text_of(editor.get(page)))})
    assert unconfirmed.status_code == 400 and "Confirm that the old link" in text_of(unconfirmed)
    rotated = post_form(editor, page, f"{page}/share-link", confirm="rotate")
    assert rotated.status_code == 303 and "New share link made" in text_of(
        editor.get(rotated.headers["Location"])
    )
    with database.session() as session:
        plan = session.get(SuccessPlan, story.plan_id)
        assert plan is not None and plan.share_token_version == 2
    other = f"/admin/accounts/{story.other_id}"
    no_plan = editor.post(
        f"{other}/share-link", data={"csrf_token": csrf_of(text_of(editor.get(other))), "confirm": "rotate"}
    )
    assert no_plan.status_code == 409 and "has no plan" in text_of(no_plan)


def test_rerunning_rules_shows_the_trace_first_then_applies_it(
    editor: FlaskClient, story: Story, database: Database
) -> None:
    other = f"/admin/accounts/{story.other_id}"
    preview = editor.get(f"{other}/rerun")
    html = text_of(preview)
    assert preview.status_code == 200 and "Nothing has changed yet" in html
    assert 'class="trace"' in html and "not matched" in html
    with database.session() as session:
        assert session.scalar(select(SuccessPlan).where(SuccessPlan.account_id == story.other_id)) is None
    unconfirmed = editor.post(f"{other}/rerun", data={"csrf_token": csrf_of(html)})
    assert unconfirmed.status_code == 400 and "Read the trace first" in text_of(unconfirmed)
    applied = post_form(editor, f"{other}/rerun", f"{other}/rerun", confirm="rerun")
    assert applied.status_code == 303
    assert "Rules re-run:" in text_of(editor.get(applied.headers["Location"]))


def test_survey_answers_read_as_titles_with_the_stored_keys_beside_them(
    editor: FlaskClient, story: Story, database: Database
) -> None:
    due = (dt.date.today() + dt.timedelta(days=200)).isoformat()
    answer_for_acme(
        database,
        nps=9,
        role="leader",
        outcomes=["keep_people", "hire_faster"],
        objectives=["new_hire_onboarding", "careers_site_traffic"],
        key_results={
            "new_hire_onboarding": {"baseline": 80, "target": 99.4, "due_date": due},
            "careers_site_traffic": {"baseline": 8000, "target": 12000, "due_date": due},
        },
    )
    html = text_of(editor.get(f"/admin/accounts/{story.account_id}"))
    answers = re.search(r'<dl class="answers">(.*?)</dl>', html, re.S)
    assert answers, "no survey answers"
    shown = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answers.group(1))).strip()
    day = dt.date.fromisoformat(due)
    by = f"{day:%b} {day.day}, {day.year}"
    # In the survey's order, each question's title, then what was picked in words and its key.
    assert shown == (
        "Which outcomes matter most to your team this year? "
        "Keep the people you hire keep_people , Hire faster hire_faster "
        "Which of these would make the biggest difference in the next few months? "
        "Get new team members ready to work from day one new_hire_onboarding , "
        "Increase traffic to the careers microsite careers_site_traffic "
        "Where are you today, and where do you want to be by when? "
        f"Get new team members ready to work from day one: 80% → 99.40% by {by} new_hire_onboarding "
        f"Increase traffic to the careers microsite: 8,000 per week → 12,000 per week by {by} "
        "careers_site_traffic "
        "What is your role? Recruiting leader leader "
        "How likely are you to recommend us to a colleague? 9"
    )
    assert '<code class="answer-key">keep_people</code>' in answers.group(1)
    assert "keep_people, hire_faster" not in html and "target: 99.4" not in html


def test_the_rerun_trace_says_each_condition_in_the_rule_lists_words(
    editor: FlaskClient, story: Story, database: Database
) -> None:
    answer_for_acme(
        database, nps=9, outcomes=["hire_better", "keep_people"], objectives=["new_hire_onboarding"]
    )
    page = markup.unescape(text_of(editor.get(f"/admin/accounts/{story.account_id}/rerun")))
    why = {
        rule: reason
        for rule, reason in re.findall(
            r'<tr class="[^"]+" data-rule="([^"]+)">.*?<td>([^<]*)</td></tr>', page, re.S
        )
    }
    assert why["Detractor → tag account"] == ("answers.outcomes.nps ≤ 6: no (answers.outcomes.nps is 9)")
    assert why["Hire faster or hire better → hire-faster plan"] == (
        'outcomes contains "hire_better": yes (outcomes is ["hire_better", "keep_people"])'
    )
    assert why["Anyone who answered → hire-faster plan"] == (
        "skipped: 'Hire faster or hire better → hire-faster plan' stops processing"
    )
    assert '{"var"' not in page.split('<details class="facts">')[0]  # no JSON Logic in the trace
