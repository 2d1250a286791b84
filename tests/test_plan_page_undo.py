"""Undoing a "Mark done" on the shared plan page: only the customer's own, made on the page
(engine.plans.updates.reopen_milestone). The rest of the page's changes: tests/test_plan_page.py."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient

from engine.db import Database
from engine.events.models import Event
from engine.plans import updates
from engine.plans.models import SuccessPlan
from engine.plans.progress import refresh_plans
from tests.test_plan_page import (
    ACTOR,
    FIRST,
    Shared,
    build_plan,
    form_token_of,
    last_revision,
    open_page,
    plan_state,
    post,
    text_of,
)


@pytest.fixture
def shared(database: Database, recruiting: dict[str, int]) -> Shared:
    return build_plan(database)


def test_customer_undoes_a_mistaken_mark_done(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    key = shared.first_milestone
    post(client, shared, f"milestones/{key}/done")
    marked = client.get(shared.path)
    page = marked.get_data(as_text=True)
    assert f'action="{shared.path}/milestones/{key}/reopen"' in page
    assert f'action="{shared.path}/milestones/{key}/done"' not in page
    assert f"Undo marking done: {FIRST}" in text_of(marked)  # the button's name says which

    response = post(client, shared, f"milestones/{key}/reopen")

    assert response.status_code == 303
    assert response.location == f"{shared.path}?saved=reopened#m-{key}"
    # Open again with the status its date gives it now: due 6 days ago, missed.
    assert plan_state(database, shared.plan_id)["milestones"][0] == (key, "missed")
    revision = last_revision(database, shared.plan_id)
    assert (revision.actor, revision.channel) == (ACTOR, "shared")
    assert revision.summary == f"Milestone reopened: {FIRST}"
    shown = client.get(response.location)
    assert "Undone: the milestone is open again." in text_of(shown)
    assert f"Your team (shared link) · Milestone reopened: {FIRST}" in text_of(shown)
    again = shown.get_data(as_text=True)
    assert f'action="{shared.path}/milestones/{key}/done"' in again
    assert f'action="{shared.path}/milestones/{key}/reopen"' not in again


def test_undo_sent_twice_reopens_once(client: FlaskClient, database: Database, shared: Shared) -> None:
    key = shared.first_milestone
    post(client, shared, f"milestones/{key}/done")
    form = form_token_of(open_page(client, shared.path))

    first = client.post(f"{shared.path}/milestones/{key}/reopen", data={"_form": form})
    after_first = plan_state(database, shared.plan_id)
    second = client.post(f"{shared.path}/milestones/{key}/reopen", data={"_form": form})

    assert first.status_code == second.status_code == 303
    assert plan_state(database, shared.plan_id) == after_first


def achieve_by(database: Database, shared: Shared, how: str) -> None:
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        plan = session.get(SuccessPlan, shared.plan_id)
        assert plan is not None
        if how == "events":
            session.add(
                Event(account_id=plan.account_id, name="job_posted", occurred_at=now, idempotency_key="j1")
            )
            refresh_plans(session, [plan.account_id], now=now)
        else:
            updates.set_milestone_status(
                session,
                plan,
                shared.first_milestone,
                "achieved",
                actor="cs@vendor.example",
                channel="admin",
                now=now,
            )


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("events", f"“{FIRST}” was achieved from your product use, so it stays done."),
        ("admin", f"“{FIRST}” was marked done by our team; ask us to reopen it."),
    ],
)
def test_no_undo_for_a_milestone_achieved_by_product_use_or_by_us(
    client: FlaskClient, database: Database, shared: Shared, how: str, message: str
) -> None:
    achieve_by(database, shared, how)
    before = plan_state(database, shared.plan_id)
    page = open_page(client, shared.path)
    assert f"/milestones/{shared.first_milestone}/reopen" not in page  # no button for it

    response = client.post(
        f"{shared.path}/milestones/{shared.first_milestone}/reopen", data={"_form": form_token_of(page)}
    )

    assert response.status_code == 409
    assert message in text_of(response)
    assert plan_state(database, shared.plan_id) == before


def test_vendor_owned_milestone_cannot_be_reopened_by_the_customer(
    client: FlaskClient, database: Database, shared: Shared
) -> None:
    with database.transaction() as session:
        plan = session.get(SuccessPlan, shared.plan_id)
        assert plan is not None
        plan.milestones[0].owner = "vendor"
        updates.set_milestone_status(
            session,
            plan,
            shared.first_milestone,
            "achieved",
            actor=ACTOR,
            channel="shared",
            now=dt.datetime.now(dt.UTC),
        )
    before = plan_state(database, shared.plan_id)
    page = open_page(client, shared.path)
    assert f"/milestones/{shared.first_milestone}/reopen" not in page

    response = client.post(
        f"{shared.path}/milestones/{shared.first_milestone}/reopen", data={"_form": form_token_of(page)}
    )

    assert response.status_code == 422
    assert "You can reopen your own milestones; ask us to change others." in text_of(response)
    assert plan_state(database, shared.plan_id) == before
