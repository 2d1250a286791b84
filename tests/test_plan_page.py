"""The shared plan page `/p/<token>`: a customer reads and updates the plan without an account.

Real PostgreSQL, the real app; each POST is one change through engine.plans.updates on channel
"shared", redirected back (303); refused changes leave the plan exactly as it was."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeSerializer, URLSafeTimedSerializer
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from engine.accounts import ContactRole
from engine.db import Database
from engine.plans import updates
from engine.plans.models import KeyResult, Milestone, PlanRevision, PlanStatus, SuccessPlan
from engine.plans.service import active_plan
from engine.plans.sharing import SALT as PLAN_SALT
from engine.plans.sharing import plan_token
from surveys.service import ContactRef, ResponseIn, submit_response
from tests.conftest import SECRET
from tests.factories import make_account, outcomes_answers
from web.plan_page import FORM_SALT

ACTOR = "customer via shared link"
FIRST = "Publish your first job on the new careers site"


@dataclass(frozen=True)
class Shared:
    plan_id: int
    path: str
    kr_id: int
    first_milestone: str


def build_plan(
    database: Database,
    external_id: str = "acme",
    *,
    contacts: tuple[tuple[str, ContactRole], ...] | None = None,
    days_ago: int = 20,
) -> Shared:
    """An account whose contact answered the outcomes survey `days_ago` days ago: the rules built its plan."""
    surveyed = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    with database.transaction() as session:
        if contacts is None:
            account = make_account(session, external_id)
        else:
            account = make_account(session, external_id, contacts=contacts)
        submit_response(
            session,
            "outcomes",
            ResponseIn(
                client_response_id=str(uuid.uuid4()),
                account=external_id,
                answers=outcomes_answers(surveyed.date()),
                channel="in_app",
                contact=ContactRef(email=account.contacts[0].email),
            ),
            now=surveyed,
        )
        plan = active_plan(session, account.id)
        assert plan is not None
        return Shared(
            plan.id, f"/p/{plan_token(SECRET, plan)}", plan.key_results[0].id, plan.milestones[0].key
        )


@pytest.fixture
def shared(database: Database, recruiting: dict[str, int]) -> Shared:
    return build_plan(database)


def form_token_of(html: str) -> str:
    found = re.search(r'name="_form" value="([^"]+)"', html)
    assert found, "the page should carry a form token"
    return found.group(1)


def open_page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def post(
    client: FlaskClient, shared: Shared, action: str, data: dict[str, Any] | None = None
) -> TestResponse:
    token = form_token_of(open_page(client, shared.path))
    return client.post(f"{shared.path}/{action}", data={"_form": token, **(data or {})})


def plan_state(database: Database, plan_id: int) -> dict[str, Any]:
    """Everything a POST could change, read fresh from the database."""
    with database.session() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        return {
            "krs": [(kr.current, kr.target) for kr in plan.key_results],
            "milestones": [(m.key, m.status.value) for m in plan.milestones],
            "review_date": plan.review_date,
            "last_reviewed_at": plan.last_reviewed_at,
            "revisions": session.scalar(
                select(func.count()).select_from(PlanRevision).where(PlanRevision.plan_id == plan_id)
            ),
        }


def last_revision(database: Database, plan_id: int) -> PlanRevision:
    with database.session() as session:
        revision = session.scalars(
            select(PlanRevision).where(PlanRevision.plan_id == plan_id).order_by(PlanRevision.id.desc())
        ).first()
        assert revision is not None
        return revision


def text_of(response: TestResponse) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


# --- reading -------------------------------------------------------------------------------------


def test_shared_page_shows_the_whole_plan_on_one_page(client: FlaskClient, shared: Shared) -> None:
    response = client.get(shared.path)

    assert response.status_code == 200
    page = text_of(response)
    for part in ("Our goal", "Measures", "Milestones", "Dependencies", "Risks", "Your people", "Review"):
        assert part in page
    assert "from 8,000 to 12,000" in page and "8,000 per week now · 0% of the way" in page
    assert "Publish your first job on the new careers site" in page
    assert "You: Name one owner for the careers site" in page and "We: Launch the careers site" in page
    assert "medium likelihood · high impact" in page
    assert "1 of 2 champions — who else leads a team" in page
    assert "No power user yet — who works in it every day?" in page
    assert "Plan created: Hire faster plan" in page and "hire_faster_plan" not in page  # history, in words
    assert "Print / Save as PDF" in page
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_missing_executive_sponsor_is_flagged(
    client: FlaskClient, database: Database, recruiting: dict[str, int]
) -> None:
    shared = build_plan(database, "solo", contacts=(("ann@solo.example", ContactRole.CHAMPION),))

    page = text_of(client.get(shared.path))

    assert "No executive sponsor yet — who signs off on the budget for this plan?" in page


def test_overdue_review_says_so(client: FlaskClient, database: Database, recruiting: dict[str, int]) -> None:
    shared = build_plan(database, "late", days_ago=100)  # the 90-day review has passed

    page = text_of(client.get(shared.path))

    assert "review overdue" in page


# --- changing ------------------------------------------------------------------------------------


def test_customer_updates_a_key_result_value(client: FlaskClient, database: Database, shared: Shared) -> None:
    response = post(client, shared, f"key-results/{shared.kr_id}", {"current": "9,500"})

    assert response.status_code == 303
    assert response.location == f"{shared.path}?saved=kr#kr-{shared.kr_id}"
    assert plan_state(database, shared.plan_id)["krs"] == [(9500.0, 12000.0)]
    revision = last_revision(database, shared.plan_id)
    assert (revision.actor, revision.channel) == (ACTOR, "shared")
    assert revision.change["current"] == [8000.0, 9500.0]
    shown = text_of(client.get(response.location))
    assert "Saved: the new number is on the plan." in shown
    assert "9,500 per week now · 38% of the way" in shown


def test_customer_moves_the_target(client: FlaskClient, database: Database, shared: Shared) -> None:
    response = post(client, shared, f"key-results/{shared.kr_id}", {"current": "8000", "target": "15000"})

    assert response.status_code == 303
    assert plan_state(database, shared.plan_id)["krs"] == [(8000.0, 15000.0)]
    assert last_revision(database, shared.plan_id).channel == "shared"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"current": "lots"}, "Enter a number, like 8,000."),  # the measure's own number now
        ({"current": ""}, "Enter a number, like 8,000."),
        ({"current": "nan"}, "Enter a number, like 8,000."),
        ({"current": "9000", "target": "8000"}, "The target must differ from the starting number."),
        ({"current": "9000", "target": "more"}, "Enter a number, like 12,000."),
    ],
)
def test_bad_key_result_input_is_refused_inline_and_changes_nothing(
    client: FlaskClient, database: Database, shared: Shared, data: dict[str, str], message: str
) -> None:
    before = plan_state(database, shared.plan_id)

    response = post(client, shared, f"key-results/{shared.kr_id}", data)

    assert response.status_code == 422
    assert message in text_of(response)
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    assert plan_state(database, shared.plan_id) == before


def test_a_percentage_measure_asks_for_a_number_that_fits_it(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    with database.transaction() as session:  # onboarding completion: 80 % now, 99.4 % the target
        kr = session.get(KeyResult, shared.kr_id)
        assert kr is not None
        kr.unit, kr.baseline, kr.current, kr.target = "%", 80.0, 80.0, 99.4

    now_refused = post(client, shared, f"key-results/{shared.kr_id}", {"current": "85%"})
    target_refused = post(client, shared, f"key-results/{shared.kr_id}", {"current": "85", "target": "all"})

    assert now_refused.status_code == 422 and target_refused.status_code == 422
    assert "Enter a number, like 80, without the % sign." in text_of(now_refused)
    assert "Enter a number, like 99.4, without the % sign." in text_of(target_refused)
    assert "9,500" not in text_of(now_refused)


def test_unknown_key_result_is_a_404_notice(client: FlaskClient, database: Database, shared: Shared) -> None:
    before = plan_state(database, shared.plan_id)

    response = post(client, shared, "key-results/999999", {"current": "1"})

    assert response.status_code == 404
    assert "No key result 999999 in this plan." in text_of(response)
    assert plan_state(database, shared.plan_id) == before


def test_customer_marks_their_milestone_done(client: FlaskClient, database: Database, shared: Shared) -> None:
    response = post(client, shared, f"milestones/{shared.first_milestone}/done")

    assert response.status_code == 303
    assert response.location == f"{shared.path}?saved=milestone#m-{shared.first_milestone}"
    assert plan_state(database, shared.plan_id)["milestones"][0] == (shared.first_milestone, "achieved")
    revision = last_revision(database, shared.plan_id)
    assert (revision.actor, revision.channel) == (ACTOR, "shared")
    assert revision.summary.startswith("Milestone achieved")
    assert "Marked done." in text_of(client.get(response.location))


def test_vendor_owned_milestone_cannot_be_marked_done_by_the_customer(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    with database.transaction() as session:
        milestone = session.scalars(select(Milestone).where(Milestone.plan_id == shared.plan_id)).first()
        assert milestone is not None
        milestone.owner = "vendor"
        key = milestone.key
    before = plan_state(database, shared.plan_id)
    page = open_page(client, shared.path)
    assert f"/milestones/{key}/done" not in page  # no button for it

    response = client.post(f"{shared.path}/milestones/{key}/done", data={"_form": form_token_of(page)})

    assert response.status_code == 422
    assert "You can mark your own milestones done; ask us to change others." in text_of(response)
    assert plan_state(database, shared.plan_id) == before


def test_customer_comments(client: FlaskClient, database: Database, shared: Shared) -> None:
    response = post(client, shared, "comments", {"comment": "We hired our first recruiter!\r\nMore soon."})

    assert response.status_code == 303
    revision = last_revision(database, shared.plan_id)
    assert (revision.actor, revision.channel) == (ACTOR, "shared")
    assert revision.change == {"comment": "We hired our first recruiter!\nMore soon."}
    shown = text_of(client.get(response.location))
    assert "Your team (shared link) commented: We hired our first recruiter! More soon." in shown


@pytest.mark.parametrize(
    ("comment", "message"),
    [("x" * 2001, "At most 2000 characters (this one has 2001)."), ("   ", "Write a comment first.")],
)
def test_oversized_or_empty_comment_is_refused(
    client: FlaskClient, database: Database, shared: Shared, comment: str, message: str
) -> None:
    before = plan_state(database, shared.plan_id)

    response = post(client, shared, "comments", {"comment": comment})

    assert response.status_code == 422
    assert message in text_of(response)
    assert plan_state(database, shared.plan_id) == before


def test_customer_confirms_the_review(client: FlaskClient, database: Database, shared: Shared) -> None:
    before = plan_state(database, shared.plan_id)

    response = post(client, shared, "review")

    assert response.status_code == 303
    after = plan_state(database, shared.plan_id)
    assert after["review_date"] == dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)
    assert after["review_date"] != before["review_date"] and after["last_reviewed_at"] is not None
    revision = last_revision(database, shared.plan_id)
    assert (revision.actor, revision.channel) == (ACTOR, "shared")
    assert "Review confirmed. Thank you!" in text_of(client.get(response.location))


# --- refusals ------------------------------------------------------------------------------------


def expired_form_token(plan_id: int, version: int, link_path: str) -> str:
    class TwoDaysAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2 * 86400

    link = link_path.removeprefix("/p/")
    ref = hashlib.sha256(link.encode()).hexdigest()[:24]
    return str(
        URLSafeTimedSerializer(SECRET, salt=FORM_SALT, signer=TwoDaysAgo).dumps([plan_id, version, ref])
    )


@pytest.mark.parametrize("form", ["missing", "forged", "other-key", "expired"])
def test_post_without_a_valid_form_token_changes_nothing(
    client: FlaskClient, database: Database, shared: Shared, form: str
) -> None:
    before = plan_state(database, shared.plan_id)
    data: dict[str, str] = {"comment": "hello"}
    if form == "forged":
        data["_form"] = "WzEsMSwiYWJjIl0.not-a-signature"
    elif form == "other-key":
        data["_form"] = URLSafeTimedSerializer("someone-elses-key", salt=FORM_SALT).dumps(
            [shared.plan_id, 1, "x"]
        )
    elif form == "expired":
        data["_form"] = expired_form_token(shared.plan_id, 1, shared.path)

    response = client.post(f"{shared.path}/comments", data=data)

    if form == "expired":
        assert response.status_code == 422
        assert "open for a long time, so nothing was saved" in text_of(response)
    else:
        assert response.status_code == 400
        assert "nothing was saved" in text_of(response) or "security token" in text_of(response)
    assert plan_state(database, shared.plan_id) == before
    # The page shown again carries a fresh token that works.
    retry = client.post(
        f"{shared.path}/comments", data={**data, "_form": form_token_of(text_of_html(response))}
    )
    assert retry.status_code == 303


def text_of_html(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def test_form_token_of_another_plan_is_refused(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    other = build_plan(database, "globex")
    before = plan_state(database, shared.plan_id)
    other_form = form_token_of(open_page(client, other.path))

    response = client.post(f"{shared.path}/comments", data={"_form": other_form, "comment": "hi"})

    assert response.status_code == 400
    assert plan_state(database, shared.plan_id) == before


def test_rotated_link_refuses_page_and_posts_with_a_friendly_404(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    form = form_token_of(open_page(client, shared.path))
    with database.transaction() as session:
        plan = session.get(SuccessPlan, shared.plan_id)
        assert plan is not None
        updates.rotate_share_link(session, plan, actor="cs@vendor.example", now=dt.datetime.now(dt.UTC))
        fresh = f"/p/{plan_token(SECRET, plan)}"
    before = plan_state(database, shared.plan_id)

    for response in (
        client.get(shared.path),
        client.post(f"{shared.path}/comments", data={"_form": form, "comment": "hi"}),
        client.post(f"{shared.path}/review", data={"_form": form}),
        client.post(f"{shared.path}/key-results/{shared.kr_id}", data={"_form": form, "current": "1"}),
    ):
        assert response.status_code == 404
        page = text_of(response)
        assert "This link is no longer valid" in page and "ask for a new one" in page
    # The old page's form does not work with the new link either: it was signed for the old one.
    assert client.post(f"{fresh}/comments", data={"_form": form, "comment": "hi"}).status_code == 400
    assert plan_state(database, shared.plan_id) == before


def test_forged_link_post_is_a_friendly_404(client: FlaskClient, database: Database, shared: Shared) -> None:
    forged = URLSafeSerializer("not-our-secret", salt=PLAN_SALT).dumps([shared.plan_id, 1])
    before = plan_state(database, shared.plan_id)

    response = client.post(f"/p/{forged}/review", data={"_form": "x"})

    assert response.status_code == 404
    assert "This link is no longer valid" in text_of(response)
    assert "not valid" in text_of(response)
    assert shared.path.removeprefix("/p/") not in response.get_data(as_text=True)
    assert plan_state(database, shared.plan_id) == before


def test_completed_plan_is_read_only(client: FlaskClient, database: Database, shared: Shared) -> None:
    form = form_token_of(open_page(client, shared.path))
    with database.transaction() as session:
        plan = session.get(SuccessPlan, shared.plan_id)
        assert plan is not None
        plan.status = PlanStatus.COMPLETED
    before = plan_state(database, shared.plan_id)

    page = open_page(client, shared.path)
    response = client.post(f"{shared.path}/key-results/{shared.kr_id}", data={"_form": form, "current": "1"})

    assert "<form" not in page and "completed" in page
    assert response.status_code == 409
    assert "This plan is completed; it can no longer change." in text_of(response)
    assert plan_state(database, shared.plan_id) == before


def test_key_result_form_in_the_page_posts_to_its_own_measure(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    with database.session() as session:
        kr = session.get(KeyResult, shared.kr_id)
        assert kr is not None
    page = open_page(client, shared.path)

    assert f'action="{shared.path}/key-results/{shared.kr_id}"' in page
    assert f'action="{shared.path}/milestones/{shared.first_milestone}/done"' in page
    assert f'action="{shared.path}/comments"' in page and f'action="{shared.path}/review"' in page
