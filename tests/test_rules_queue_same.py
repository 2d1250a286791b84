"""The `rules` job decides exactly as the inline path does (ADR 0009): the same answers on twin
accounts, one pair applied in the request and one by the job, give the same plan, key results,
milestones, enrolments and tags, including an account that answers twice within one batch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment
from engine.accounts import Account, ContactRole
from engine.db import Database, utcnow
from engine.plans.models import SuccessPlan
from surveys.rules_queue import apply_queued_rules_job
from surveys.service import ContactRef, ResponseIn, submit_response
from tests.factories import make_account


def answers(outcomes: list[str], numbers: dict[str, tuple[float, float, int]], nps: int) -> dict[str, Any]:
    today = dt.date.today()
    return {
        "outcomes": outcomes,
        "objectives": list(numbers),
        "key_results": {
            key: {"baseline": b, "target": t, "due_date": (today + dt.timedelta(days=d)).isoformat()}
            for key, (b, t, d) in numbers.items()
        },
        "nps": nps,
    }


VARIANTS = {
    "faster": [answers(["hire_faster"], {"careers_site_traffic": (8000, 12000, 120)}, 9)],
    "managers": [answers(["manager_control"], {"field_manager_onboarding": (10, 40, 90)}, 8)],
    "detractor": [
        answers(
            ["hire_better", "keep_people"],
            {"offer_acceptance": (60, 75, 60), "regrettable_attrition": (20, 12, 200)},
            3,
        )
    ],
    # Two answers of one account land in one batch of the job: the second sees the first's plan.
    "twice": [
        answers(["manager_control"], {"manager_satisfaction": (5, 8, 100)}, 7),
        answers(["hire_faster"], {"time_to_fill": (45, 28, 120)}, 2),
    ],
}


def submit(session: Session, account: str, body: dict[str, Any], *, defer: bool) -> None:
    payload = ResponseIn(
        client_response_id=str(uuid.uuid4()),
        account=account,
        answers=body,
        channel="in_app",
        contact=ContactRef(email=f"sofia@{account}.example"),
    )
    submit_response(session, "outcomes", payload, now=utcnow(), defer_rules=defer)


def outcome(session: Session, external_id: str) -> dict[str, Any]:
    account = session.scalars(select(Account).where(Account.external_id == external_id)).one()
    plans = session.scalars(select(SuccessPlan).where(SuccessPlan.account_id == account.id)).all()
    enrolments = session.execute(
        select(Campaign.key, Enrollment.state, Enrollment.current_step)
        .join(Campaign, Campaign.id == Enrollment.campaign_id)
        .where(Enrollment.account_id == account.id)
    ).all()
    return {
        "tags": account.traits.get("tags"),
        "content_tags": account.traits.get("content_tags"),
        "plans": [
            {
                "template": p.template_key,
                "status": p.status,
                "goal": p.goal.replace(account.name, "<account>"),
                "review_date": p.review_date,
                "key_results": [
                    (k.objective_key, k.baseline, k.target, k.current, k.due_date) for k in p.key_results
                ],
                "milestones": [(m.key, m.status, m.due_date, m.position) for m in p.milestones],
                "revisions": [r.summary for r in p.revisions],
            }
            for p in plans
        ],
        "enrolments": sorted((key, str(state), step) for key, state, step in enrolments),
    }


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_job_decides_as_the_request_does(
    database: Database, recruiting: dict[str, int], variant: str
) -> None:
    bodies = VARIANTS[variant]
    with database.transaction() as session:
        for name in ("inline", "queued"):
            make_account(session, name, contacts=((f"sofia@{name}.example", ContactRole.CHAMPION),))
    for body in bodies:  # the request path: one transaction per answer, rules inside it
        with database.transaction() as session:
            submit(session, "inline", body, defer=False)
    for body in bodies:
        with database.transaction() as session:
            submit(session, "queued", body, defer=True)
    with database.session() as session:
        assert outcome(session, "queued")["plans"] == []

    assert apply_queued_rules_job() == len(bodies)

    with database.session() as session:
        inline, queued = outcome(session, "inline"), outcome(session, "queued")
    assert inline["plans"], "the variant must make a plan to compare"
    assert queued == inline


def test_an_accounts_later_answer_adds_its_new_objective_with_its_numbers(
    database: Database, recruiting: dict[str, int]
) -> None:
    with database.transaction() as session:
        make_account(session, "acme", contacts=(("sofia@acme.example", ContactRole.CHAMPION),))
    for body in VARIANTS["twice"]:
        with database.transaction() as session:
            submit(session, "acme", body, defer=True)
    assert apply_queued_rules_job() == 2
    due = dt.date.today() + dt.timedelta(days=120)
    with database.session() as session:
        (plan,) = outcome(session, "acme")["plans"]
    assert [kr[:3] for kr in plan["key_results"]] == [
        ("manager_satisfaction", 5, 8),
        ("time_to_fill", 45, 28),  # the answer's numbers, not the library's 42 → 30
    ]
    assert plan["key_results"][1][4] == due
    assert plan["revisions"][
        -1
    ] == "Measure added: Reduce average time to fill a role from 45 to 28 days by " + (
        due.strftime("%b %-d, %Y")
    )


def test_one_batch_of_interleaved_accounts_decides_as_the_requests_do(
    database: Database, recruiting: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    """The job writes a batch in one flush (engine.db.deferred_flushes) and reads its facts in one
    go; an account answering again later in the same batch, after others, still sees its plan."""
    order = [("a", "managers"), ("b", "faster"), ("a", "faster"), ("c", "detractor"), ("b", "managers")]
    with database.transaction() as session:
        for name in ("a", "b", "c"):
            for mode in ("inline", "queued"):
                account = f"{mode}-{name}"
                make_account(session, account, contacts=((f"sofia@{account}.example", ContactRole.CHAMPION),))
    for mode in ("inline", "queued"):
        for name, variant in order:
            with database.transaction() as session:
                submit(session, f"{mode}-{name}", VARIANTS[variant][0], defer=mode == "queued")

    assert apply_queued_rules_job() == len(order)
    # as one batch, not through the one-at-a-time retry that a failed batch falls back to
    assert not [r for r in caplog.records if r.name == "surveys.rules_queue"]

    with database.session() as session:
        for name in ("a", "b", "c"):
            inline, queued = outcome(session, f"inline-{name}"), outcome(session, f"queued-{name}")
            assert len(inline["plans"]) == 1
            assert queued == inline, name


def test_a_batch_writes_each_table_in_one_statement_whatever_its_size(
    database: Database, recruiting: dict[str, int]
) -> None:
    inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT"):
            inserts.append(statement.split("(", 1)[0])

    with database.transaction() as session:
        for i in range(12):
            make_account(session, f"q{i}", contacts=((f"sofia@q{i}.example", ContactRole.CHAMPION),))
    per_batch = []
    for names in ([f"q{i}" for i in range(2)], [f"q{i}" for i in range(2, 12)]):
        for name in names:
            with database.transaction() as session:
                submit(session, name, VARIANTS["faster"][0], defer=True)
        event.listen(database.engine, "before_cursor_execute", count)
        try:
            assert apply_queued_rules_job() == len(names)
        finally:
            event.remove(database.engine, "before_cursor_execute", count)
        per_batch.append(Counter(inserts))
        inserts.clear()
    small, large = per_batch
    assert small == large  # 2 plans or 10: one INSERT per table
    assert small["INSERT INTO success_plans "] == 1
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(SuccessPlan)) == 12
