"""Segment reports on real PostgreSQL: a small hand-built world whose every number is known.

Five accounts, four plans started in June 2026 (one in May, outside the range), a survey answered on
three channels, one campaign with a holdout. Each test reads one report and checks the figures a CS
leader would see.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step, StepKind
from engine.accounts import Account, Contact, TraitDefinition, TraitType
from engine.errors import NotFound, ValidationFailed
from engine.plans.models import KeyResult, Milestone, MilestoneStatus, PlanRevision, SuccessPlan
from engine.reports import Filters, filter_options, parse_filters, run_report, to_csv
from engine.reports.models import PlanPageView, record_plan_opened
from engine.reports.stats import newcombe_difference, quantile, wilson
from engine.reports.summaries import refresh_stale
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion
from surveys.reports import SurveyChoice, SurveyReach, rebuild_choices, record_reach, refresh_choices

JUNE = {"from": "2026-06-01", "to": "2026-06-30"}
TODAY = dt.date(2026, 7, 10)


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, 12, 0, tzinfo=dt.UTC)


def june(**params: str) -> Filters:
    return parse_filters({**JUNE, **params}, today=TODAY)


@dataclass
class World:
    accounts: dict[str, Account]
    contacts: dict[str, Contact]
    plans: dict[str, SuccessPlan]
    survey: Survey
    campaign: Campaign


def _account(session: Session, key: str, segment: str, stage: str, **traits: str) -> tuple[Account, Contact]:
    account = Account(
        external_id=key,
        name=key.title(),
        segment=segment,
        lifecycle_stage=stage,
        traits=traits,
        created_at=at(5, 1),
    )
    session.add(account)
    session.flush()
    contact = Contact(account_id=account.id, email=f"ops@{key}.example", name=key.title())
    session.add(contact)
    session.flush()
    return account, contact


def _plan(
    session: Session,
    account: Account,
    started: dt.datetime,
    milestones: list[tuple[MilestoneStatus, dt.datetime | None]],
    kr: tuple[float, float, float],
) -> SuccessPlan:
    plan = SuccessPlan(
        account_id=account.id,
        template_key="t",
        goal="Hire faster",
        started_at=started,
        created_at=started,
        review_date=started.date() + dt.timedelta(days=90),
    )
    session.add(plan)
    session.flush()
    for position, (status, achieved_at) in enumerate(milestones):
        session.add(
            Milestone(
                plan_id=plan.id,
                key=f"m{position}",
                title=f"Milestone {position}",
                position=position,
                due_date=started.date() + dt.timedelta(days=30),
                status=status,
                achieved_at=achieved_at,
            )
        )
    baseline, target, current = kr
    session.add(
        KeyResult(
            plan_id=plan.id,
            objective_key="traffic",
            title="Traffic",
            metric="visits",
            unit="a week",
            baseline=baseline,
            target=target,
            current=current,
            due_date=started.date() + dt.timedelta(days=120),
        )
    )
    session.flush()
    return plan


def _revision(session: Session, plan: SuccessPlan, channel: str, summary: str, when: dt.datetime) -> None:
    session.add(PlanRevision(plan_id=plan.id, actor="x", channel=channel, summary=summary, created_at=when))


def _response(
    session: Session,
    version: SurveyVersion,
    contact: Contact,
    channel: str,
    when: dt.datetime,
    answers: dict[str, list[str]] | None,
) -> Response:
    response = Response(
        survey_version_id=version.id,
        account_id=contact.account_id,
        contact_id=contact.id,
        client_response_id=f"r-{contact.id}-{channel}",
        channel=channel,
        status=ResponseStatus.COMPLETED if answers is not None else ResponseStatus.PARTIAL,
        answers=answers or {},
        created_at=when,
        completed_at=when if answers is not None else None,
    )
    session.add(response)
    session.flush()
    return response


def _message(
    session: Session,
    enrollment: Enrollment,
    step: Step,
    contact: Contact,
    status: MessageStatus,
    *,
    sent: dt.datetime | None = None,
    reason: str | None = None,
) -> None:
    delivered = (
        sent if status in (MessageStatus.DELIVERED, MessageStatus.OPENED, MessageStatus.CLICKED) else None
    )
    session.add(
        Message(
            enrollment_id=enrollment.id,
            step_id=step.id,
            contact_id=contact.id,
            channel="email",
            status=status,
            reason=reason,
            dedupe_key=f"{enrollment.id}:{step.id}:{contact.id}:{status.value}",
            created_at=sent or enrollment.enrolled_at,
            sent_at=sent,
            delivered_at=delivered,
            opened_at=sent if status in (MessageStatus.OPENED, MessageStatus.CLICKED) else None,
            clicked_at=sent if status is MessageStatus.CLICKED else None,
        )
    )


def build_world(session: Session) -> World:
    session.add(TraitDefinition(key="industry", type=TraitType.STRING))
    a1, c1 = _account(session, "acme", "starter", "onboarding", industry="staffing")
    a2, c2 = _account(session, "bolt", "starter", "adoption", industry="retail")
    a3, c3 = _account(session, "core", "enterprise", "onboarding", industry="staffing")
    a4, c4 = _account(session, "dune", "enterprise", "adoption")
    a5, _c5 = _account(session, "echo", "starter", "renewal")
    s = MilestoneStatus
    p1 = _plan(
        session, a1, at(6, 1), [(s.ACHIEVED, at(6, 11)), (s.BEHIND, None), (s.PENDING, None)], (100, 200, 250)
    )
    p2 = _plan(
        session,
        a2,
        at(6, 5),
        [(s.ACHIEVED, at(6, 25)), (s.ACHIEVED, at(6, 26)), (s.MISSED, None)],
        (300, 400, 300),
    )
    p3 = _plan(session, a3, at(6, 10), [(s.ACHIEVED, at(6, 14))], (200, 600, 100))
    p4 = _plan(session, a4, at(5, 20), [(s.ACHIEVED, at(6, 2))], (1000, 1200, 900))
    p5 = _plan(session, a5, at(6, 15), [], (10, 20, 10))
    # Plan adoption: p1 opened (twice) in June, p2 only after the range, p4 outside the cohort.
    for plan, when in ((p1, at(6, 2)), (p1, at(6, 2)), (p2, at(7, 5)), (p4, at(6, 3))):
        record_plan_opened(session, plan.id, now=when)
    _revision(session, p1, "shared", "Measure updated", at(6, 3))
    _revision(session, p3, "shared", "Comment", at(6, 12))
    _revision(session, p1, "admin", "Review confirmed; next review September 18, 2026", at(6, 20))
    _revision(session, p2, "rules", "Plan created", at(6, 5))
    # The survey: reached in-app (acme, bolt), hosted (core; dune in May); answered on three channels.
    survey = Survey(key="onboarding", title="Onboarding")
    session.add(survey)
    session.flush()
    questions = [
        {"key": "outcomes", "kind": "outcome_pick", "title": "What do you want to achieve?"},
        {"key": "objectives", "kind": "objective_pick", "title": "Which objectives?"},
    ]
    version = SurveyVersion(
        survey_id=survey.id, version=1, definition={"questions": questions}, published_at=at(5, 1)
    )
    session.add(version)
    session.flush()
    record_reach(session, survey.id, a1.id, c1.id, "in_app", now=at(6, 2))
    record_reach(session, survey.id, a1.id, c1.id, "in_app", now=at(6, 3))  # shown again: still one reach
    record_reach(session, survey.id, a2.id, c2.id, "in_app", now=at(6, 3))
    record_reach(session, survey.id, a3.id, c3.id, "hosted", now=at(6, 4))
    record_reach(session, survey.id, a4.id, c4.id, "hosted", now=at(5, 1))
    responses = [
        _response(
            session, version, c1, "in_app", at(6, 2), {"outcomes": ["hire_faster"], "objectives": ["traffic"]}
        ),
        _response(session, version, c2, "in_app", at(6, 3), None),
        _response(session, version, c3, "hosted", at(6, 4), {"outcomes": ["hire_faster", "cut_cost"]}),
        _response(session, version, c4, "email", at(6, 5), {"outcomes": ["cut_cost"]}),
    ]
    for response in responses:
        refresh_choices(session, response.id)
    # The campaign: acme clicked, bolt suppressed and capped, core held out, dune got the survey email.
    campaign = Campaign(key="onboard", name="Onboard")
    session.add(campaign)
    session.flush()
    survey_step = Step(
        campaign_id=campaign.id, position=0, key="ask", kind=StepKind.EMAIL, config={"survey": "x"}
    )
    tip_step = Step(
        campaign_id=campaign.id, position=1, key="tip", kind=StepKind.EMAIL, config={"template": "t"}
    )
    session.add_all([survey_step, tip_step])
    session.flush()
    enrollments = {}
    for account, day, held in ((a1, 1, False), (a2, 2, False), (a3, 3, True), (a4, 4, False)):
        enrollment = Enrollment(
            account_id=account.id,
            campaign_id=campaign.id,
            state=EnrollmentState.ACTIVE,
            step_started_at=at(6, day),
            enrolled_at=at(6, day),
            held_out=held,
        )
        session.add(enrollment)
        enrollments[account.external_id] = enrollment
    session.flush()
    _message(session, enrollments["acme"], tip_step, c1, MessageStatus.CLICKED, sent=at(6, 2))
    _message(session, enrollments["bolt"], tip_step, c2, MessageStatus.SUPPRESSED, reason="unsubscribed")
    _message(
        session,
        enrollments["bolt"],
        survey_step,
        c2,
        MessageStatus.SUPPRESSED,
        reason="frequency cap: 3 nudges per account per week",
    )
    _message(session, enrollments["core"], tip_step, c3, MessageStatus.SUPPRESSED, reason="holdout")
    _message(session, enrollments["dune"], survey_step, c4, MessageStatus.DELIVERED, sent=at(6, 4))
    session.flush()
    accounts = {a.external_id: a for a in (a1, a2, a3, a4, a5)}
    return World(
        accounts,
        {"acme": c1, "bolt": c2, "core": c3, "dune": c4},
        {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5},
        survey,
        campaign,
    )


@pytest.fixture
def world(db: Session) -> World:
    built = build_world(db)
    # The triggers marked every new row's keys stale in this transaction: refresh the summary rows
    # the reports read, as the reports-queue job would after the commit.
    while refresh_stale(db):
        pass
    return built


def by_group(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["group"]: row for row in rows}


# --- filters --------------------------------------------------------------------------------------


def test_filters_default_to_the_last_90_days() -> None:
    filters = parse_filters({}, today=TODAY)
    assert (filters.start, filters.end) == (TODAY - dt.timedelta(days=89), TODAY)
    assert filters.traits == () and filters.group_by is None


def test_filters_read_traits_and_grouping() -> None:
    filters = parse_filters({**JUNE, "trait.industry": "staffing", "group_by": "trait.industry"}, today=TODAY)
    assert filters.traits == (("industry", "staffing"),)
    assert filters.group_by == "trait.industry"
    assert parse_filters(filters.as_params(), today=TODAY) == filters


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "2026-07-01", "to": "2026-06-01"}, "from", "on or before"),
        ({"from": "2023-01-01", "to": "2026-06-01"}, "to", "2 years"),
        ({"from": "June 1st"}, "from", "not a date"),
        ({"group_by": "colour"}, "group_by", "unsupported grouping"),
        ({"stage": "teenage"}, "stage", "unknown lifecycle stage"),
        ({"sgement": "starter"}, "sgement", "unknown filter"),
        ({"trait.a b": "x"}, "trait.a b", "trait names"),
    ],
)
def test_bad_filters_name_the_field(params: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        parse_filters(params, today=TODAY)
    assert words in failed.value.errors[field]


def test_filters_that_do_not_match_the_data_are_refused(world: World, db: Session) -> None:
    cases = [
        ({"segment": "galactic"}, "segment", "unknown segment"),
        ({"trait.size": "big"}, "trait.size", "unknown trait"),
        ({"group_by": "trait.size"}, "group_by", "unknown trait"),
        ({"campaign": "nope"}, "campaign", "unknown campaign"),
        ({"group_by": "channel"}, "group_by", "cannot be grouped by 'channel'"),
    ]
    for params, field, words in cases:
        with pytest.raises(ValidationFailed) as failed:
            run_report(db, "milestones", june(**params))
        assert words in failed.value.errors[field], params


def test_an_unknown_report_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound):
        run_report(db, "churn", june())


def test_filter_options_list_what_exists(world: World, db: Session) -> None:
    options = filter_options(db)
    assert options["segments"] == ["enterprise", "starter"]
    assert options["campaigns"] == ["onboard"]
    assert options["traits"] == ["industry"]
    assert "trait.industry" in options["group_by"] and "onboarding" in options["stages"]


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


# --- statistics and CSV ----------------------------------------------------------------------------


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10.
    diff = newcombe_difference(56, 70, 48, 80)
    assert diff is not None
    assert [round(v, 4) for v in diff] == [0.2, 0.0524, 0.3339]
    assert wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert quantile([4.0, 10.0, 20.0], 0.75) == 15.0


def test_csv_has_labels_and_plain_numbers(world: World, db: Session) -> None:
    text = to_csv(run_report(db, "plan-adoption", june(group_by="segment")))
    lines = text.splitlines()
    assert lines[0] == (
        "Segment,Plans created,Shared page opened,Opened %,"
        "Customer updated,Updated %,Review confirmed,Reviewed %"
    )
    assert lines[1] == "enterprise,1,0,0.0000,1,1.0000,0,0.0000"
    assert lines[-1].startswith("all,4,1,0.2500")
