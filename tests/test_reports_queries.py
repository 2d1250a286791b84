"""Segment reports on real PostgreSQL: each report's figures on the hand-built world (tests/reports_world.py),
read from the summary rows as PostgreSQL serves them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.reports import run_report
from engine.reports.models import PlanPageView
from engine.reports.stats import newcombe_difference
from surveys.reports import SurveyChoice, SurveyReach, rebuild_choices, refresh_choices
from tests.reports_world import World, build_world, by_group, june


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


# --- plan adoption and milestones ----------------------------------------------------------------


def test_plan_adoption_counts_the_june_cohort(world: World, db: Session) -> None:
    result = run_report(db, "plan-adoption", june())
    assert result.headline == {
        "plans_created": 4,
        "opened_pct": 0.25,
        "updated_pct": 0.5,
        "reviewed_pct": 0.25,
    }
    grouped = by_group(run_report(db, "plan-adoption", june(group_by="segment")).rows)
    assert grouped["starter"] | {} == {
        "group": "starter",
        "created": 3,
        "opened": 1,
        "opened_pct": 1 / 3,
        "updated": 1,
        "updated_pct": 1 / 3,
        "reviewed": 1,
        "reviewed_pct": 1 / 3,
    }
    assert (grouped["enterprise"]["created"], grouped["enterprise"]["updated"]) == (1, 1)
    assert grouped["all"]["created"] == 4
    assert db.scalar(select(PlanPageView.views).where(PlanPageView.plan_id == world.plans["p1"].id)) == 2


def test_plan_adoption_by_campaign_and_stage(world: World, db: Session) -> None:
    assert run_report(db, "plan-adoption", june(campaign="onboard")).headline["plans_created"] == 3
    assert run_report(db, "plan-adoption", june(stage="renewal")).headline["plans_created"] == 1


def test_milestones_and_time_to_value(world: World, db: Session) -> None:
    result = run_report(db, "milestones", june())
    row = result.rows[-1]
    assert (
        row["plans"],
        row["milestones"],
        row["achieved"],
        row["behind"],
        row["missed"],
        row["pending"],
    ) == (
        4,
        7,
        4,
        1,
        1,
        1,
    )
    assert row["reached_value_pct"] == 0.75
    # days to the first achieved milestone: 10 (acme), 20 (bolt), 4 (core) -> median 10, p75 15
    assert (row["ttv_median"], row["ttv_p75"]) == (10.0, 15.0)
    assert result.headline["ttv_median_days"] == 10.0


def test_milestones_filtered_by_trait_and_grouped_by_stage(world: World, db: Session) -> None:
    staffing = run_report(db, "milestones", june(**{"trait.industry": "staffing"})).rows[-1]
    assert (staffing["plans"], staffing["ttv_median"]) == (2, 7.0)
    grouped = by_group(run_report(db, "milestones", june(group_by="stage")).rows)
    assert set(grouped) == {"adoption", "onboarding", "renewal", "all"}
    assert grouped["onboarding"]["plans"] == 2 and grouped["all"]["plans"] == 4
    assert grouped["renewal"]["ttv_median"] is None


# --- surveys ---------------------------------------------------------------------------------------


def test_survey_funnel_by_channel(world: World, db: Session) -> None:
    result = run_report(db, "survey-funnel", june())
    rows = by_group(result.rows)
    assert {k: rows["In-app"][k] for k in ("reached", "started", "completed")} == {
        "reached": 2,
        "started": 2,
        "completed": 1,
    }
    assert (rows["Hosted page"]["reached"], rows["Hosted page"]["completed"]) == (1, 1)
    # The email channel's reach is the survey email campaigns sent (dune), not the tip email.
    assert (rows["Email"]["reached"], rows["Email"]["started"]) == (1, 1)
    assert result.headline == {"reached": 4, "started": 4, "completed": 3, "completion_rate": 0.75}
    assert (
        db.scalar(select(SurveyReach.times).where(SurveyReach.contact_id == world.contacts["acme"].id)) == 2
    )


def test_survey_funnel_by_segment(world: World, db: Session) -> None:
    rows = by_group(run_report(db, "survey-funnel", june(group_by="segment")).rows)
    assert (rows["starter"]["reached"], rows["starter"]["started"], rows["starter"]["completed"]) == (2, 2, 1)
    assert (rows["enterprise"]["reached"], rows["enterprise"]["completed"]) == (2, 2)


def test_outcomes_share_of_accounts_and_kr_quantiles(world: World, db: Session) -> None:
    result = run_report(db, "outcomes", june())
    rows = {(r["kind"], r["key"]): r for r in result.rows}
    assert rows[("outcome", "hire_faster")]["share"] == pytest.approx(2 / 3)
    assert rows[("outcome", "cut_cost")]["accounts"] == 2
    traffic = rows[("objective", "traffic")]
    assert traffic["share"] == pytest.approx(1 / 3)
    # KRs of the plans started in June: baselines 100, 300, 200, 10; targets 200, 400, 600, 20
    assert (traffic["baseline_p25"], traffic["baseline_median"], traffic["baseline_p75"]) == (
        77.5,
        150.0,
        225.0,
    )
    assert (traffic["target_p25"], traffic["target_median"], traffic["target_p75"]) == (155.0, 300.0, 450.0)
    assert result.headline["accounts_surveyed"] == 3


def test_choices_rebuild_matches_the_incremental_summary(world: World, db: Session) -> None:
    before = sorted(
        db.execute(select(SurveyChoice.response_id, SurveyChoice.kind, SurveyChoice.item_key)).all()
    )
    assert len(before) == 5
    assert rebuild_choices(db) == 5
    after = sorted(
        db.execute(select(SurveyChoice.response_id, SurveyChoice.kind, SurveyChoice.item_key)).all()
    )
    assert after == before


def test_refreshing_choices_twice_changes_nothing(world: World, db: Session) -> None:
    response_id = db.scalar(select(func.min(SurveyChoice.response_id)))
    assert response_id is not None
    refresh_choices(db, response_id)
    refresh_choices(db, response_id)
    assert db.scalar(select(func.count()).select_from(SurveyChoice)) == 5


# --- campaigns -------------------------------------------------------------------------------------


def test_campaign_funnel(world: World, db: Session) -> None:
    result = run_report(db, "campaign-funnel", june())
    total = result.rows[-1]
    expected = {
        "enrolled": 4,
        "held_out": 1,
        "sent": 2,
        "delivered": 2,
        "opened": 1,
        "clicked": 1,
        "milestone": 2,
        "suppressed": 1,
        "capped": 1,
    }
    assert {k: total[k] for k in expected} == expected
    assert total["milestone_rate"] == pytest.approx(2 / 3)
    assert [r["group"] for r in result.rows] == ["onboard", "all"]


def test_campaign_funnel_by_segment(world: World, db: Session) -> None:
    rows = by_group(run_report(db, "campaign-funnel", june(group_by="segment")).rows)
    assert (rows["starter"]["enrolled"], rows["starter"]["clicked"], rows["starter"]["capped"]) == (2, 1, 1)
    assert (rows["enterprise"]["held_out"], rows["enterprise"]["sent"]) == (1, 1)


def test_holdout_lift(world: World, db: Session) -> None:
    result = run_report(db, "holdout-lift", june())
    total = result.rows[-1]
    assert (total["messaged"], total["held"]) == (3, 1)
    assert total["messaged_milestone_rate"] == pytest.approx(2 / 3) and total["held_milestone_rate"] == 1.0
    diff = newcombe_difference(2, 3, 1, 1)
    assert diff is not None
    assert (total["milestone_lift"], total["milestone_low"], total["milestone_high"]) == pytest.approx(diff)
    assert total["messaged_kr_rate"] == pytest.approx(1 / 3) and total["held_kr_rate"] == 0.0
    assert result.notes[0].startswith("No proven effect yet on milestone attainment")
