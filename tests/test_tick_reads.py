"""The tick's plain-row reads on PostgreSQL (campaigns.planstate.PlanStateReads,
campaigns.guards.CapReads) answer what the ORM's queries answer, on the varied scenario of
tests/test_tick_bulk.py: plans with and without the waited-on milestones and key results, accounts
without a plan, and a trailing week of ledger rows across campaigns."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.guards import CapLedger
from campaigns.models import Enrollment
from campaigns.planstate import plan_states, waited_on
from campaigns.scheduler import run_tick
from campaigns.steps import load_versions
from engine.accounts import Account
from tests.test_tick_bulk import CAPS, TICKS, build_scenario


def test_plan_states_read_as_plain_rows_match_the_orm(db: Session) -> None:
    build_scenario(db)
    accounts = set(db.scalars(select(Account.id)))
    versions = load_versions(
        db, {(e.campaign_id, e.campaign_version) for e in db.scalars(select(Enrollment))}
    )
    milestones, key_results = waited_on(versions)
    assert milestones and key_results
    plain = plan_states(db, accounts, milestones, key_results)
    assert plain == plan_states(db, accounts, milestones, key_results, portable=True)
    assert any(state.milestones for state in plain.values())
    assert any(state.key_results for state in plain.values())
    assert len(plain) < len(accounts)  # some accounts have no plan
    assert plan_states(db, accounts, set(), set()) == plan_states(db, accounts, set(), set(), portable=True)


def test_the_cap_ledger_read_as_plain_rows_matches_the_orm(db: Session) -> None:
    build_scenario(db)
    accounts = list(db.scalars(select(Account.id)))
    counted = 0
    for when, _ in TICKS[:5]:
        run_tick(db, now=when, caps=CAPS)
        db.flush()
        later = when + dt.timedelta(hours=1)
        plain = CapLedger.load(db, CAPS, accounts, later)
        orm = CapLedger.load(db, CAPS, accounts, later, portable=True)
        assert (plain.nudges, plain.messages) == (orm.nudges, orm.messages)
        counted += sum(orm.messages.values())
    assert counted > 0
