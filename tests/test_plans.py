"""Success plans: milestone order and statuses from events and dates, the 1-2-3 triangle, every
change a revision, stage changes, and the plans API with its bad input — on the real services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import signals
from engine.accounts import ContactRole
from engine.db import Database
from engine.errors import Conflict, ValidationFailed
from engine.events.models import Event
from engine.library import below_least, least_value
from engine.plans import updates
from engine.plans.models import MilestoneStatus, PlanRevision, PlanStatus, SuccessPlan
from engine.plans.progress import criteria_progress, refresh_plans, triangle
from engine.plans.service import create_plan, get_template
from engine.playbook import PlaybookInvalid, import_playbook, resolve_playbook
from tests.factories import make_account, submit_and_apply
from tests.test_api_accounts import assert_problem

START = dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)
RECRUITING = resolve_playbook("recruiting")[1]


@pytest.fixture
def plan(db: Session) -> SuccessPlan:
    import_playbook(db, RECRUITING)
    account = make_account(db, "acme")
    return create_plan(db, account, get_template(db, "hire_faster_plan"), [], now=START)


def add_events(db: Session, plan: SuccessPlan, name: str, n: int, when: dt.datetime) -> None:
    for i in range(n):
        db.add(
            Event(
                account_id=plan.account_id, name=name, occurred_at=when, idempotency_key=f"{name}-{when}-{i}"
            )
        )
    db.flush()


def statuses(plan: SuccessPlan) -> dict[str, str]:
    return {m.key: m.status.value for m in plan.milestones}


def test_milestones_follow_each_other_when_the_template_says_so(db: Session) -> None:
    import_playbook(db, RECRUITING)
    document = yaml.safe_load(RECRUITING)
    template = document["plan_templates"][0]
    template["milestones"][1]["after"] = template["milestones"][0]["key"]
    template["milestones"][1]["due_days"] = 10
    import_playbook(db, yaml.safe_dump(document))
    plan = create_plan(db, make_account(db, "acme"), get_template(db, template["key"]), [], now=START)
    first, second = plan.milestones[0], plan.milestones[1]
    assert second.after == first.key
    assert second.due_date == first.due_date + dt.timedelta(days=10)
    # A dependency on a later milestone breaks the order: refused with the path.
    template["milestones"][0]["after"] = template["milestones"][2]["key"]
    with pytest.raises(PlaybookInvalid) as caught:
        import_playbook(db, yaml.safe_dump(document))
    assert "plan_templates[0].milestones[0].after" in caught.value.errors


def test_statuses_come_from_events_and_dates(db: Session, plan: SuccessPlan) -> None:
    slipped: list[dict[str, Any]] = []

    def on_slip(_sender: object, **kwargs: Any) -> None:
        slipped.append(kwargs)

    signals.milestone_slipped.connect(on_slip)
    try:
        day = lambda n: START + dt.timedelta(days=n)  # noqa: E731
        refresh_plans(db, [plan.account_id], now=day(1))
        assert statuses(plan)["first_job_posted"] == "on_track"
        # 30 applications are needed by day 28: 3 by day 20 trails the time used → behind.
        add_events(db, plan, "application_received", 3, day(2))
        refresh_plans(db, [plan.account_id], now=day(20))
        assert statuses(plan)["first_applications"] == "behind"
        add_events(db, plan, "job_posted", 1, day(3))
        refresh_plans(db, [plan.account_id], now=day(20))
        assert statuses(plan)["first_job_posted"] == "achieved"
        refresh_plans(db, [plan.account_id], now=day(29))
        assert statuses(plan)["first_applications"] == "missed"
        assert {(s["milestone_key"], s["status"]) for s in slipped} >= {
            ("first_applications", "behind"),
            ("first_applications", "missed"),
        }
        before = len(plan.revisions)
        refresh_plans(db, [plan.account_id], now=day(29))  # nothing changed: nothing written
        assert len(plan.revisions) == before
        assert any("missed" in r.summary for r in plan.revisions)
    finally:
        signals.milestone_slipped.disconnect(on_slip)


def test_criteria_progress_reads_thresholds() -> None:
    facts = {"events": {"x": {"count": 5}, "y": {"count": 1}}}
    assert criteria_progress({">=": [{"var": "events.x.count"}, 10]}, facts) == 0.5
    both = {"and": [{">=": [{"var": "events.x.count"}, 10]}, {">=": [{"var": "events.y.count"}, 4]}]}
    assert criteria_progress(both, facts) == 0.25
    assert criteria_progress({"==": [{"var": "events.x.count"}, 5]}, facts) is None


def test_the_triangle_flags_gaps(db: Session) -> None:
    account = make_account(
        db,
        "acme",
        contacts=(("a@acme.example", ContactRole.CHAMPION), ("b@acme.example", ContactRole.POWER_USER)),
    )
    found = triangle(account.contacts)
    assert found.gaps == ["no executive sponsor", "1 of 2 champions", "1 of 3 power users"]
    assert found.to_dict()["champions"][0]["email"] == "a@acme.example"


def test_every_change_is_a_revision_and_bad_values_change_nothing(db: Session, plan: SuccessPlan) -> None:
    clock = START + dt.timedelta(days=3)
    kr = plan.key_results[0]
    before = len(plan.revisions)
    updates.update_key_result(db, plan, kr.id, current="9,100", actor="sofia", channel="shared", now=clock)
    assert kr.current == 9100 and len(plan.revisions) == before + 1
    assert plan.revisions[-1].actor == "sofia" and plan.revisions[-1].channel == "shared"
    assert kr.unit == "per week"
    for bad in (
        {"current": "lots"},
        {"current": float("nan")},
        {"target": kr.baseline},
        {"current": True},
        {"current": "-5"},  # no negative visits per week
        {"target": -1},
    ):
        with pytest.raises(ValidationFailed):
            updates.update_key_result(db, plan, kr.id, actor="x", channel="api", now=clock, **bad)
    assert kr.current == 9100 and len(plan.revisions) == before + 1
    vendor = next((m for m in plan.milestones if m.owner == "vendor"), None)
    customer = next(m for m in plan.milestones if m.owner == "customer")
    updates.set_milestone_status(
        db, plan, customer.key, "achieved", actor="sofia", channel="shared", now=clock, customer=True
    )
    assert customer.status is MilestoneStatus.ACHIEVED and customer.achieved_at == clock
    if vendor is not None:
        with pytest.raises(ValidationFailed):
            updates.set_milestone_status(
                db, plan, vendor.key, "achieved", actor="sofia", channel="shared", now=clock, customer=True
            )
    with pytest.raises(ValidationFailed):
        updates.add_comment(db, plan, "x" * 2001, actor="sofia", channel="shared", now=clock)
    updates.add_comment(db, plan, "Launched the microsite!", actor="sofia", channel="shared", now=clock)
    assert plan.revisions[-1].change == {"comment": "Launched the microsite!"}
    review = plan.review_date
    updates.confirm_review(db, plan, actor="sofia", channel="shared", now=clock)
    assert plan.review_date == clock.date() + dt.timedelta(days=plan.review_every_days) != review
    version = plan.share_token_version
    updates.rotate_share_link(db, plan, actor="ops", now=clock)
    assert plan.share_token_version == version + 1


# -- the customer takes back a "Mark done" ------------------------------------------------------------


def day(n: int) -> dt.datetime:
    return START + dt.timedelta(days=n)


def mark_done(db: Session, plan: SuccessPlan, key: str, when: dt.datetime, channel: str = "shared") -> None:
    customer = channel == "shared"
    updates.set_milestone_status(
        db, plan, key, "achieved", actor="sofia", channel=channel, now=when, customer=customer
    )


def reopen(db: Session, plan: SuccessPlan, key: str, when: dt.datetime) -> None:
    updates.reopen_milestone(db, plan, key, actor="customer via shared link", channel="shared", now=when)


def revisions_of(db: Session, plan: SuccessPlan, key: str) -> list[PlanRevision]:
    return list(
        db.scalars(
            select(PlanRevision)
            .where(PlanRevision.plan_id == plan.id, PlanRevision.change["milestone"].as_string() == key)
            .order_by(PlanRevision.id)
        )
    )


@pytest.mark.parametrize(
    ("reopened_on", "follows_first", "status"),
    [
        (2, False, "on_track"),  # 12 of its 14 days left
        (13, False, "behind"),  # due tomorrow, and one job posted is done or not: no progress to read
        (20, False, "missed"),  # due on day 14
        (5, True, "pending"),  # it follows a milestone due on day 14: its window has not started
    ],
)
def test_a_reopened_milestone_takes_the_status_its_dates_give_it_now(
    db: Session, plan: SuccessPlan, reopened_on: int, follows_first: bool, status: str
) -> None:
    first = plan.milestones[0]
    target = plan.milestones[1] if follows_first else first
    if follows_first:
        target.after, target.due_date = first.key, first.due_date + dt.timedelta(days=14)
    mark_done(db, plan, target.key, day(1))
    assert updates.marked_done_on_shared_page(db, plan) == {target.key}

    reopen(db, plan, target.key, day(reopened_on))

    assert target.status.value == status and target.achieved_at is None
    reopened = revisions_of(db, plan, target.key)[-1]
    assert reopened.summary == f"Milestone reopened: {target.title}"
    assert (reopened.actor, reopened.channel) == ("customer via shared link", "shared")
    assert reopened.change == {"milestone": target.key, "status": status, "was": "achieved"}
    assert updates.marked_done_on_shared_page(db, plan) == set()
    db.expire_all()  # what the database holds, not what the session remembers
    assert statuses(plan)[target.key] == status


def test_reopening_tells_the_plan_owner_like_other_customer_changes(db: Session, plan: SuccessPlan) -> None:
    told: list[dict[str, Any]] = []

    def on_update(_sender: object, **kwargs: Any) -> None:
        told.append(kwargs)

    mark_done(db, plan, plan.milestones[0].key, day(1))
    signals.plan_updated.connect(on_update)
    try:
        reopen(db, plan, plan.milestones[0].key, day(2))
    finally:
        signals.plan_updated.disconnect(on_update)
    assert [(t["channel"], t["revision_id"]) for t in told] == [
        ("shared", revisions_of(db, plan, plan.milestones[0].key)[-1].id)
    ]


def test_reopening_twice_changes_nothing_the_second_time(db: Session, plan: SuccessPlan) -> None:
    key = plan.milestones[0].key
    mark_done(db, plan, key, day(1))
    reopen(db, plan, key, day(2))
    before = len(revisions_of(db, plan, key))

    reopen(db, plan, key, day(2))  # the same form sent again

    assert statuses(plan)[key] == "on_track"
    assert len(revisions_of(db, plan, key)) == before


def test_a_reopened_milestone_whose_criteria_hold_is_achieved_again_by_events(
    db: Session, plan: SuccessPlan
) -> None:
    key = plan.milestones[0].key
    mark_done(db, plan, key, day(1))
    add_events(db, plan, "job_posted", 1, day(1))  # they did post a job; the refresh had not run yet

    reopen(db, plan, key, day(2))

    assert statuses(plan)[key] == "achieved"
    assert [(r.actor, r.summary.split(":")[0]) for r in revisions_of(db, plan, key)] == [
        ("sofia", "Milestone achieved"),
        ("customer via shared link", "Milestone reopened"),
        ("events", "Milestone achieved"),
    ]
    assert updates.marked_done_on_shared_page(db, plan) == set()  # no undo of what events did
    with pytest.raises(Conflict, match="achieved from your product use, so it stays done"):
        reopen(db, plan, key, day(3))


def test_reopening_opens_the_window_of_the_milestone_that_follows_later(
    db: Session, plan: SuccessPlan
) -> None:
    first, second = plan.milestones[0], plan.milestones[1]
    second.after = first.key
    mark_done(db, plan, first.key, day(1))
    refresh_plans(db, [plan.account_id], now=day(3))
    assert statuses(plan)[second.key] == "on_track"  # its window opened when the first was done

    reopen(db, plan, first.key, day(3))

    assert statuses(plan)[second.key] == "pending"  # it waits for the first's due date again


def test_only_the_customers_own_mark_done_on_the_shared_page_can_be_taken_back(
    db: Session, plan: SuccessPlan
) -> None:
    by_customer, by_events, by_us, theirs_then_ours, vendors = plan.milestones[:5]
    vendors.owner = "vendor"
    mark_done(db, plan, by_customer.key, day(1))
    add_events(db, plan, "application_received", 25, day(1))
    refresh_plans(db, [plan.account_id], now=day(2))  # by_events: achieved from product use
    mark_done(db, plan, by_us.key, day(2), channel="admin")
    mark_done(db, plan, theirs_then_ours.key, day(2))  # the customer marked it done, we reopened it,
    updates.set_milestone_status(  # then marked it done ourselves
        db, plan, theirs_then_ours.key, "on_track", actor="cs@vendor.example", channel="admin", now=day(3)
    )
    mark_done(db, plan, theirs_then_ours.key, day(3), channel="admin")
    mark_done(db, plan, vendors.key, day(3), channel="admin")
    assert statuses(plan) == dict.fromkeys(statuses(plan), "achieved")
    assert by_events.key == "first_applications"

    assert updates.marked_done_on_shared_page(db, plan) == {by_customer.key}
    before = len(plan.revisions)
    with pytest.raises(Conflict, match="achieved from your product use"):
        reopen(db, plan, by_events.key, day(4))
    for ours in (by_us, theirs_then_ours):
        with pytest.raises(
            Conflict, match=f"“{ours.title}” was marked done by our team; ask us to reopen it"
        ):
            reopen(db, plan, ours.key, day(4))
    with pytest.raises(ValidationFailed, match="you can reopen your own milestones; ask us to change others"):
        reopen(db, plan, vendors.key, day(4))
    assert statuses(plan) == dict.fromkeys(statuses(plan), "achieved")
    assert len(plan.revisions) == before


def test_due_dates_keep_the_dependency_order(db: Session, plan: SuccessPlan) -> None:
    first, second = plan.milestones[0], plan.milestones[1]
    second.after = first.key
    db.flush()
    with pytest.raises(ValidationFailed):
        updates.set_milestone_due(
            db,
            plan,
            second.key,
            first.due_date - dt.timedelta(days=1),
            actor="ops",
            channel="admin",
            now=START,
        )
    with pytest.raises(ValidationFailed):
        updates.set_milestone_due(
            db,
            plan,
            first.key,
            second.due_date + dt.timedelta(days=1),
            actor="ops",
            channel="admin",
            now=START,
        )


def test_a_stage_change_brings_the_stage_template_and_keeps_what_the_customer_entered(
    db: Session, plan: SuccessPlan
) -> None:
    document = yaml.safe_load(RECRUITING)
    adoption = dict(
        document["plan_templates"][1], key="adoption_plan", name="Adoption plan", stage="adoption"
    )
    document["plan_templates"].append(adoption)
    import_playbook(db, yaml.safe_dump(document))
    kr = plan.key_results[0]
    updates.update_key_result(db, plan, kr.id, current=9000, actor="sofia", channel="shared", now=START)
    done = plan.milestones[0]
    updates.set_milestone_status(db, plan, done.key, "achieved", actor="sofia", channel="shared", now=START)
    account = plan.account
    account.lifecycle_stage = "adoption"
    assert updates.refresh_for_stage(db, account, plan, now=START + dt.timedelta(days=5))
    assert plan.stage == "adoption" and plan.template_key == "adoption_plan"
    assert plan.milestones[0].key == done.key and plan.milestones[0].status is MilestoneStatus.ACHIEVED
    assert len(plan.milestones) <= 5 and kr.current == 9000
    assert "adoption" in plan.revisions[-1].summary
    assert not updates.refresh_for_stage(db, account, plan, now=START)  # idempotent


def test_a_closed_plan_cannot_change(db: Session, plan: SuccessPlan) -> None:
    plan.status = PlanStatus.COMPLETED
    with pytest.raises(Conflict):
        updates.confirm_review(db, plan, actor="x", channel="api", now=START)
    with pytest.raises(Conflict):
        updates.update_key_result(
            db, plan, plan.key_results[0].id, current=1, actor="x", channel="api", now=START
        )


# -- API ------------------------------------------------------------------------------------------


def enrol(client: FlaskClient, auth: dict[str, Any], external_id: str = "acme") -> None:
    from tests.factories import account_payload, response_payload

    client.put(f"/api/v1/accounts/{external_id}", json=account_payload(), headers=auth)
    assert submit_and_apply(client, response_payload(external_id), headers=auth)["plan"]["status"] == "ready"


def test_plan_api_reads_and_patches_in_one_transaction(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int], database: Database
) -> None:
    enrol(client, auth)
    body = client.get("/api/v1/accounts/acme/plan", headers=auth).get_json()
    for key in (
        "goal",
        "key_results",
        "milestones",
        "dependencies",
        "risks",
        "contacts",
        "review_date",
        "share_url",
    ):
        assert key in body, key
    kr = body["key_results"][0]
    assert {"metric", "baseline", "target", "current", "due_date"} <= set(kr)
    assert {"title", "due_date", "status"} <= set(body["milestones"][0])
    assert "no executive sponsor" not in body["contacts"]["gaps"]
    assert client.get(body["share_url"].split("5000", 1)[-1]).status_code == 200

    patched = client.patch(
        "/api/v1/accounts/acme/plan",
        json={
            "key_results": [{"id": kr["id"], "current": kr["baseline"] + 1}],
            "milestones": [{"key": body["milestones"][0]["key"], "status": "achieved"}],
            "comment": "On our way",
        },
        headers=auth,
    )
    assert patched.status_code == 200, patched.get_json()
    after = patched.get_json()
    assert after["key_results"][0]["current"] == kr["baseline"] + 1
    assert after["milestones"][0]["status"] == "achieved"
    assert after["revisions"][0]["summary"] == "Comment"

    # One bad change in the batch: nothing of it is applied.
    bad = client.patch(
        "/api/v1/accounts/acme/plan",
        json={"key_results": [{"id": kr["id"], "current": 1}, {"id": 999999, "current": 2}]},
        headers=auth,
    )
    problem = assert_problem(bad, 422)
    assert "key_results.1" in problem["errors"]
    again = client.get("/api/v1/accounts/acme/plan", headers=auth).get_json()
    assert again["key_results"][0]["current"] == kr["baseline"] + 1
    for payload, field in (
        ({"key_results": [{"id": kr["id"], "current": "many"}]}, "key_results.0.current"),
        ({"key_results": [{"id": kr["id"], "target": kr["baseline"]}]}, "key_results.0.target"),
        ({"milestones": [{"key": "nope", "status": "achieved"}]}, "milestones.0"),
        ({"milestones": [{"key": "first_job_posted", "status": "done"}]}, "milestones.0.status"),
        ({"comment": "x" * 2001}, "comment"),
        ({"key_results": [{"id": 2**31, "current": 1}]}, "key_results.0.id"),
    ):
        problem = assert_problem(client.patch("/api/v1/accounts/acme/plan", json=payload, headers=auth), 422)
        assert field in problem["errors"], (field, problem["errors"])
    assert_problem(client.get("/api/v1/accounts/ghost/plan", headers=auth), 404)
    assert_problem(client.get("/api/v1/accounts/acme/plan"), 401)


def test_plans_list_filters_by_state_and_paginates(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int], database: Database
) -> None:
    for i in range(3):
        enrol(client, auth, f"acct-{i}")
    with database.transaction() as session:
        plans = session.scalars(select(SuccessPlan).order_by(SuccessPlan.id)).all()
        plans[0].milestones[0].status = MilestoneStatus.BEHIND
        plans[1].review_date = dt.date(2020, 1, 1)
    listed = client.get("/api/v1/plans?per_page=2", headers=auth).get_json()
    assert listed["total"] == 3 and len(listed["plans"]) == 2 and listed["next"]
    second = client.get(listed["next"], headers=auth).get_json()
    assert len(second["plans"]) == 1 and second["next"] is None
    behind = client.get("/api/v1/plans?status=behind", headers=auth).get_json()
    assert [p["account"] for p in behind["plans"]] == ["acct-0"]
    overdue = client.get("/api/v1/plans?status=review_overdue", headers=auth).get_json()
    assert [p["account"] for p in overdue["plans"]] == ["acct-1"] and overdue["plans"][0]["review_overdue"]
    assert_problem(client.get("/api/v1/plans?status=sideways", headers=auth), 422)
    assert_problem(client.get("/api/v1/plans?per_page=5000", headers=auth), 422)
    assert_problem(client.get("/api/v1/plans?page=0", headers=auth), 422)
    # a NUL in a filter failed the query (PostgreSQL text refuses it): a 500 before web.api.load
    nul = assert_problem(client.get("/api/v1/plans?segment=smb%00", headers=auth), 422)
    assert nul["errors"] == {"segment": "must not contain NUL characters"}


@pytest.mark.parametrize(
    ("unit", "least"),
    [("%", 0.0), ("per week", 0.0), ("Days", 0.0), ("points", None), ("USD", None), ("NPS", None)],
)
def test_measures_that_cannot_go_negative(unit: str, least: float | None) -> None:
    assert least_value(unit) == least
    assert (below_least(-0.5, unit) is None) == (least is None)
    assert below_least(0, unit) is None
