"""The admin plan pages on real PostgreSQL: the list by state, segment, stage and name (behind, review
overdue, pagination), one plan with its ops information, and CS ops' edits — each a revision by the
signed-in user on channel "admin", refused inline with nothing changed when the input is wrong."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from engine.accounts import ContactRole
from engine.db import Database
from engine.plans.models import MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.service import create_plan, get_template
from engine.plans.sharing import plan_token
from engine.users import Role
from tests.admin_client import csrf_of, form_fields, make_user, sign_in, signed_in, text_of
from tests.conftest import SECRET
from tests.factories import make_account

EDITOR = "erin@northstar.example"
VIEWER = "victor@northstar.example"
STARTED = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def make_plan(
    database: Database,
    external_id: str,
    *,
    segment: str = "starter",
    stage: str = "onboarding",
    contacts: tuple[tuple[str, ContactRole], ...] | None = None,
) -> int:
    with database.transaction() as session:
        kwargs: dict[str, Any] = {} if contacts is None else {"contacts": contacts}
        account = make_account(session, external_id, segment=segment, **kwargs)
        account.lifecycle_stage = stage
        plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=STARTED)
        return plan.id


def load_plan(database: Database, plan_id: int) -> SuccessPlan:
    with database.session() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        plan.revisions, plan.key_results, plan.milestones  # noqa: B018 - load before the session closes
        return plan


@pytest.fixture
def plans(database: Database, recruiting: dict[str, int]) -> dict[str, int]:
    """Three plans: acme (starter, behind), globex (enterprise, review overdue), initech (on track)."""
    ids = {
        "acme": make_plan(database, "acme"),
        "globex": make_plan(database, "globex", segment="enterprise", stage="adoption", contacts=()),
        "initech": make_plan(database, "initech"),
    }
    with database.transaction() as session:
        acme = session.get(SuccessPlan, ids["acme"])
        globex = session.get(SuccessPlan, ids["globex"])
        assert acme is not None and globex is not None
        acme.milestones[0].status = MilestoneStatus.BEHIND
        globex.review_date = utc_today() - dt.timedelta(days=3)
        for plan in session.scalars(select(SuccessPlan)):
            plan.milestones[1].after = plan.milestones[0].key  # the second follows the first
    return ids


@pytest.fixture
def editor(client: FlaskClient, database: Database, plans: dict[str, int]) -> FlaskClient:
    return signed_in(client, database, EDITOR, Role.EDITOR)


@pytest.fixture
def viewer(client: FlaskClient, database: Database, plans: dict[str, int]) -> FlaskClient:
    return signed_in(client, database, VIEWER, Role.VIEWER)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-plan="([^"]+)"', html)


def post_form(client: FlaskClient, plan_id: int, action: str, **changes: str) -> Any:
    page = text_of(client.get(f"/admin/plans/{plan_id}"))
    fields = form_fields(page, action)
    fields.update(changes)
    return client.post(action, data=fields)


# -- the list -------------------------------------------------------------------------------------


def test_the_list_shows_every_active_plan_with_its_state(editor: FlaskClient) -> None:
    page = editor.get("/admin/plans")
    html = text_of(page)
    assert page.status_code == 200
    assert sorted(listed(html)) == ["acme", "globex", "initech"]
    assert "Acme Inc" in html and "hire_faster_plan" in html
    assert 'data-status="behind"' in html and "1 behind" in html
    assert "overdue by 3 days" in html  # globex's review, in words and not only in colour
    assert "no executive sponsor" in html  # globex has nobody: the triangle's gaps show
    assert "% avg" in html and "due " in html  # KR progress and the next milestone
    # The overdue count at the top links to that filter.
    count = re.search(r'href="([^"]+)" data-overdue-count="(\d+)">', html)
    assert count and count.groups() == ("/admin/plans?state=review_overdue", "1")
    assert "review overdue" in html
    assert '<a href="/admin/plans" aria-current="page">Plans</a>' in html


def test_filters_by_state_segment_stage_and_name(editor: FlaskClient) -> None:
    assert listed(text_of(editor.get("/admin/plans?state=behind"))) == ["acme"]
    assert listed(text_of(editor.get("/admin/plans?state=review_overdue"))) == ["globex"]
    assert sorted(listed(text_of(editor.get("/admin/plans?state=on_track")))) == []
    assert listed(text_of(editor.get("/admin/plans?segment=enterprise"))) == ["globex"]
    assert listed(text_of(editor.get("/admin/plans?stage=adoption"))) == ["globex"]
    assert listed(text_of(editor.get("/admin/plans?q=INITECH"))) == ["initech"]
    assert listed(text_of(editor.get("/admin/plans?q=Acme+Inc&state=behind"))) == ["acme"]
    assert listed(text_of(editor.get("/admin/plans?q=%25"))) == []  # a LIKE wildcard is only a character
    empty = text_of(editor.get("/admin/plans?segment=enterprise&state=behind"))
    assert listed(empty) == [] and "No plans match these filters" in empty


def test_bad_filters_are_explained_with_a_400(editor: FlaskClient) -> None:
    for query, message in (
        ("state=sideways", "State must be one of"),
        ("stage=retired", "Lifecycle stage must be one of"),
        ("page=0", "Enter a page number from 1."),
        ("page=abc", "Enter a page number from 1."),
        ("q=" + "x" * 201, "Search: at most 200 characters"),
        ("q=a%00b", "must not contain NUL"),
    ):
        page = editor.get(f"/admin/plans?{query}")
        assert page.status_code == 400, query
        assert message in text_of(page), (query, text_of(page)[:300])


def test_the_list_is_paginated(editor: FlaskClient, database: Database) -> None:
    for i in range(25):
        make_plan(database, f"bulk-{i:02d}", segment="bulk")
    first = text_of(editor.get("/admin/plans?segment=bulk"))
    assert len(listed(first)) == 25 and "page 1 of 1" not in first
    for i in range(25, 27):
        make_plan(database, f"bulk-{i:02d}", segment="bulk")
    first = text_of(editor.get("/admin/plans?segment=bulk"))
    assert len(listed(first)) == 25 and "27 plans · page 1 of 2" in first
    assert listed(first)[0] == "bulk-26"  # newest first
    link = re.search(r'rel="next" href="([^"]+)"', first)
    assert link and link.group(1).replace("&amp;", "&") == "/admin/plans?segment=bulk&page=2"
    second = text_of(editor.get("/admin/plans?segment=bulk&page=2"))
    assert listed(second) == ["bulk-01", "bulk-00"]
    beyond = text_of(editor.get("/admin/plans?segment=bulk&page=9"))
    assert listed(beyond) == [] and "There is no page 9" in beyond


def test_an_empty_workspace_says_what_to_do(client: FlaskClient, database: Database) -> None:
    make_user(database, EDITOR, Role.EDITOR)
    sign_in(client, EDITOR)
    html = text_of(client.get("/admin/plans"))
    assert "No plans yet" in html and "northstar playbook import" in html and "survey responses" in html


def test_signed_out_people_are_sent_to_sign_in(client: FlaskClient, plans: dict[str, int]) -> None:
    response = client.get(f"/admin/plans/{plans['acme']}")
    assert response.status_code == 303 and "/admin/login?next=" in response.headers["Location"]


# -- one plan -------------------------------------------------------------------------------------


def test_the_detail_shows_the_one_page_plan_and_ops_information(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    html = text_of(editor.get(f"/admin/plans/{plan.id}"))
    assert plan.goal.split(".")[0] in html.replace("&#39;", "'")
    for kr in plan.key_results:
        assert kr.title in html and f'action="/admin/plans/{plan.id}/key-results/{kr.id}"' in html
    for m in plan.milestones:
        assert m.title in html
    assert f"after “{plan.milestones[0].title}”" in html  # the dependency between milestones
    assert "Dependencies" in html and "Risks" in html and "high impact" in html
    assert "Relationship triangle" in html and "1 of 3 power users" not in html and "no power user" in html
    assert plan_token(SECRET, plan) in html  # the share link, in a field to copy
    assert "Plan created: Hire faster plan" in html and "rules</span>" in html  # history: what, channel
    assert "Rotating revokes the link above" in html
    assert editor.get("/admin/plans/999999").status_code == 404
    assert editor.get("/admin/plans/99999999999999999999").status_code == 404


def test_an_overdue_review_is_flagged_on_the_plan(editor: FlaskClient, plans: dict[str, int]) -> None:
    html = text_of(editor.get(f"/admin/plans/{plans['globex']}"))
    assert "overdue by 3 days" in html and "no executive sponsor" in html


# -- edits ----------------------------------------------------------------------------------------


def test_editing_a_key_result_records_a_revision_by_the_user(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    kr = plan.key_results[0]
    due = (utc_today() + dt.timedelta(days=200)).isoformat()
    action = f"/admin/plans/{plan.id}/key-results/{kr.id}"
    response = post_form(editor, plan.id, action, current="9,100", target="13000", due_date=due)
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#kr-{kr.id}")
    after = load_plan(database, plan.id)
    changed = after.key_results[0]
    assert (changed.current, changed.target, changed.due_date.isoformat()) == (9100, 13000, due)
    revision = after.revisions[-1]
    assert (revision.actor, revision.channel) == (EDITOR, "admin")
    assert revision.change["current"] == [kr.current, 9100]
    html = text_of(editor.get(response.headers["Location"]))
    assert "Saved." in html and "current 8,000 → 9,100" in html.replace("&gt;", ">")


def test_bad_key_result_values_are_refused_inline_and_change_nothing(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    kr = plan.key_results[0]
    action = f"/admin/plans/{plan.id}/key-results/{kr.id}"
    for changes, message in (
        ({"current": "lots", "target": "13000"}, "Current value: must be a number"),
        ({"target": str(kr.baseline)}, "Target: the target must differ from the baseline"),
        ({"due_date": "2001-01-01"}, "Due date: the due date must be in the future"),
        ({"due_date": "next week"}, "is not a date"),
        ({"current": "1e400"}, "Current value: must be a number"),
    ):
        response = post_form(editor, plan.id, action, **changes)
        html = text_of(response)
        assert response.status_code == 422, changes
        assert message in html, (changes, message)
        assert "Nothing was saved." in html and 'aria-invalid="true"' in html
        assert f'value="{next(iter(changes.values()))}"' in html  # what was typed comes back
    after = load_plan(database, plan.id)
    assert after.key_results[0].current == kr.current and len(after.revisions) == len(plan.revisions)
    missing = editor.post(f"/admin/plans/{plan.id}/key-results/999999", data={"csrf_token": csrf_of(html)})
    assert missing.status_code == 404 and "Nothing was saved. No key result 999999" in text_of(missing)


def test_milestone_status_and_due_date_keep_the_dependency_order(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    first, second = plan.milestones[0], plan.milestones[1]
    action = f"/admin/plans/{plan.id}/milestones/{second.key}"
    too_early = (first.due_date - dt.timedelta(days=1)).isoformat()
    refused = post_form(editor, plan.id, action, status="achieved", due_date=too_early)
    assert refused.status_code == 422
    assert f"Due date: it follows {first.title!r}" in text_of(refused).replace("&#39;", "'")
    assert load_plan(database, plan.id).milestones[1].status is second.status  # nothing half-applied
    too_late = (second.due_date + dt.timedelta(days=1)).isoformat()
    refused = post_form(editor, plan.id, f"/admin/plans/{plan.id}/milestones/{first.key}", due_date=too_late)
    assert refused.status_code == 422 and "move that first" in text_of(refused)

    later = (second.due_date + dt.timedelta(days=7)).isoformat()
    done = post_form(editor, plan.id, action, status="achieved", due_date=later)
    assert done.status_code == 303
    after = load_plan(database, plan.id)
    assert after.milestones[1].status is MilestoneStatus.ACHIEVED
    assert after.milestones[1].due_date.isoformat() == later
    assert [(r.actor, r.channel) for r in after.revisions[-2:]] == [(EDITOR, "admin")] * 2
    bad = post_form(editor, plan.id, action, status="done")
    assert bad.status_code == 422 and "Status must be one of pending" in text_of(bad)


def test_comments_reviews_and_a_new_share_link(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["globex"])
    empty = post_form(editor, plan.id, f"/admin/plans/{plan.id}/comments", comment="   ")
    assert empty.status_code == 422 and "Comment: write a comment first" in text_of(empty)
    long = post_form(editor, plan.id, f"/admin/plans/{plan.id}/comments", comment="x" * 2001)
    assert long.status_code == 422 and "at most 2000 characters" in text_of(long)
    said = post_form(editor, plan.id, f"/admin/plans/{plan.id}/comments", comment="Kick-off went well")
    assert said.status_code == 303 and said.headers["Location"].endswith("#history")

    reviewed = post_form(editor, plan.id, f"/admin/plans/{plan.id}/review")
    assert reviewed.status_code == 303
    after = load_plan(database, plan.id)
    assert after.review_date == utc_today() + dt.timedelta(days=after.review_every_days)
    assert listed(text_of(editor.get("/admin/plans?state=review_overdue"))) == []

    old_link = plan_token(SECRET, after)
    assert editor.get(f"/p/{old_link}").status_code == 200
    unconfirmed = editor.post(
        f"/admin/plans/{plan.id}/share-link",
        data={"csrf_token": csrf_of(text_of(editor.get("/admin/plans")))},
    )
    assert unconfirmed.status_code == 400 and "Confirm that the old link" in text_of(unconfirmed)
    rotated = post_form(editor, plan.id, f"/admin/plans/{plan.id}/share-link", confirm="rotate")
    assert rotated.status_code == 303
    assert editor.get(f"/p/{old_link}").status_code == 404  # the old link is revoked
    final = load_plan(database, plan.id)
    assert plan_token(SECRET, final) in text_of(editor.get(f"/admin/plans/{plan.id}"))
    assert [(r.actor, r.channel, r.summary.split(":")[0].split(";")[0]) for r in final.revisions[-3:]] == [
        (EDITOR, "admin", "Comment"),
        (EDITOR, "admin", "Review confirmed"),
        (EDITOR, "admin", "Shared link rotated"),
    ]
    assert final.revisions[-3].change == {"comment": "Kick-off went well"}


def test_a_closed_plan_shows_no_edit_forms_and_refuses_changes(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan_id = plans["initech"]
    html = text_of(editor.get(f"/admin/plans/{plan_id}"))
    with database.transaction() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        plan.status = PlanStatus.COMPLETED
        kr_id = plan.key_results[0].id
    closed = text_of(editor.get(f"/admin/plans/{plan_id}"))
    assert "can no longer change" in closed and "/key-results/" not in closed
    refused = editor.post(
        f"/admin/plans/{plan_id}/key-results/{kr_id}",
        data={"csrf_token": csrf_of(html), "current": "1", "target": "2", "due_date": "2099-01-01"},
    )
    assert refused.status_code == 409 and "This plan is completed; it can no longer change" in text_of(
        refused
    )


def test_viewers_read_but_cannot_change(
    viewer: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    html = text_of(viewer.get(f"/admin/plans/{plan.id}"))
    assert viewer.get("/admin/plans").status_code == 200
    assert "/key-results/" not in html and "Rotate the link" not in html and "Add a comment" not in html
    token = csrf_of(html)
    for action in (
        f"/admin/plans/{plan.id}/key-results/{plan.key_results[0].id}",
        f"/admin/plans/{plan.id}/milestones/{plan.milestones[0].key}",
        f"/admin/plans/{plan.id}/comments",
        f"/admin/plans/{plan.id}/review",
        f"/admin/plans/{plan.id}/share-link",
    ):
        response = viewer.post(action, data={"csrf_token": token, "comment": "hi", "confirm": "rotate"})
        assert response.status_code == 403, action
        assert "can view plans and their history" in text_of(response)
    assert len(load_plan(database, plan.id).revisions) == len(plan.revisions)


def test_every_edit_needs_the_csrf_token(
    editor: FlaskClient, plans: dict[str, int], database: Database
) -> None:
    plan = load_plan(database, plans["acme"])
    action = f"/admin/plans/{plan.id}/key-results/{plan.key_results[0].id}"
    fields = form_fields(text_of(editor.get(f"/admin/plans/{plan.id}")), action)
    fields.update(current="9999", csrf_token="forged")
    response = editor.post(action, data=fields)
    assert response.status_code == 400 and "This form has expired" in text_of(response)
    del fields["csrf_token"]
    assert editor.post(f"/admin/plans/{plan.id}/share-link", data={"confirm": "rotate"}).status_code == 400
    after = load_plan(database, plan.id)
    assert after.key_results[0].current == plan.key_results[0].current
    assert after.share_token_version == plan.share_token_version
