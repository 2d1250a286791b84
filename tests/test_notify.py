"""A customer's change on the shared plan page tells the plan's owner once, through the real queue
and the SendGrid-compatible sink; changes made by our side do not."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from campaigns.jobs import notify_owner_job
from campaigns.notify import GIVE_UP_AFTER, LOST_AFTER, sweep_unnotified
from campaigns.sink import SendGridSink
from campaigns.ticker import sweep_notifications
from engine.db import Database, utcnow
from engine.plans import updates
from engine.plans.models import PlanRevision, SuccessPlan
from engine.plans.service import create_plan, get_template
from tests.factories import make_account

Worker = Callable[[], bool]


def make_plan(database: Database, **traits: object) -> int:
    with database.transaction() as session:
        account = make_account(session, "acme", **traits)
        plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=utcnow())
        return plan.id


def comment(database: Database, plan_id: int, text: str, channel: str) -> None:
    with database.transaction() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        updates.add_comment(session, plan, text, actor="Sofia", channel=channel, now=utcnow())


def test_the_owner_hears_about_a_customer_change_once(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    plan_id = make_plan(database, owner_email="csm@vendor.example")
    comment(database, plan_id, "We launched the microsite <today>!", channel="shared")
    run_worker()
    sent = sink.messages()
    assert [m.to for m in sent] == ["csm@vendor.example"]
    assert "updated their success plan" in sent[0].subject
    with database.session() as session:
        revision = session.scalars(
            select(PlanRevision).where(PlanRevision.change["comment"].is_not(None))
        ).one()
        assert revision.notified_at is not None
        revision_id = revision.id
    # A duplicated or retried job sends nothing more.
    assert notify_owner_job(revision_id) is False
    assert len(sink.messages()) == 1


def test_our_own_changes_and_ownerless_accounts_send_nothing(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    plan_id = make_plan(database)
    comment(database, plan_id, "Noted on a call", channel="admin")
    comment(database, plan_id, "Customer wrote this", channel="shared")  # no owner_email, no ops email
    run_worker()
    assert sink.messages() == []


def test_a_notification_whose_job_was_lost_is_queued_again_by_the_sweep_and_sent_once(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    """Revisions written without their job (as when Redis is lost at the commit): the sweep queues
    the one older than LOST_AFTER and younger than GIVE_UP_AFTER, once."""
    plan_id = make_plan(database, owner_email="csm@vendor.example")
    now = utcnow()
    ages = {
        "lost": LOST_AFTER * 2,
        "fresh": LOST_AFTER / 4,
        "stale": GIVE_UP_AFTER * 2,
        "told": LOST_AFTER * 2,
    }
    with database.transaction() as session:
        for name, age in ages.items():
            session.add(
                PlanRevision(
                    plan_id=plan_id,
                    actor="customer via shared link",
                    channel="shared",
                    summary=f"Comment: {name}",
                    change={"comment": name},
                    created_at=now - age,
                    notified_at=now if name == "told" else None,
                )
            )
    with database.transaction() as session:
        assert sweep_unnotified(session, now=now) == 1
    run_worker()
    sent = sink.messages()
    assert [(m.to, m.subject.rsplit(": ", 1)[-1]) for m in sent] == [("csm@vendor.example", "lost")]
    with database.transaction() as session:
        assert sweep_unnotified(session, now=now) == 0  # told now: never twice
    assert sweep_notifications(database) == 0


def test_the_owner_hears_when_the_customer_takes_back_a_mark_done(
    recruiting: object, database: Database, sink: SendGridSink, run_worker: Worker
) -> None:
    plan_id = make_plan(database, owner_email="csm@vendor.example")
    shared = {"actor": "customer via shared link", "channel": "shared"}
    with database.transaction() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        key = plan.milestones[0].key
        updates.set_milestone_status(session, plan, key, "achieved", customer=True, now=utcnow(), **shared)
    with database.transaction() as session:
        plan = session.get(SuccessPlan, plan_id)
        assert plan is not None
        updates.reopen_milestone(session, plan, key, now=utcnow(), **shared)
    run_worker()
    assert sorted(m.subject.split(": ", 1)[1] for m in sink.messages()) == [
        "Milestone achieved: Publish your first job on the new careers site",
        "Milestone reopened: Publish your first job on the new careers site",
    ]
