"""A randomized reports world (seeded, so a failure replays): accounts in three segments with
traits, plans with milestones, key results, page views and revisions, responses (some accounts
answer twice, some never finish), two campaigns with held-out enrolments and messages in every
status and skip reason.

Used to check that the summary-backed reports equal the raw-row reports (test_reports_summaries).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step, StepKind
from engine.accounts import Account, Contact, TraitDefinition, TraitType
from engine.plans.models import KeyResult, MilestoneStatus, PlanRevision, SuccessPlan
from engine.reports.models import record_plan_opened
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion
from surveys.reports import record_reach, refresh_choices
from tests.reports_world import add_milestone

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SEGMENTS = ("smb", "growth", "enterprise")
STAGES = ("onboarding", "adoption", "renewal")
INDUSTRIES = ("retail", "staffing", None)
OUTCOMES = ("hire_faster", "cut_cost", "grow_pipeline")
OBJECTIVES = ("traffic", "time_to_fill", "cost_per_hire")
SKIPS = (
    ("unsubscribed", MessageStatus.SUPPRESSED),
    ("unsubscribed from tips", MessageStatus.SUPPRESSED),
    ("bounced", MessageStatus.SUPPRESSED),
    ("frequency cap: 3 per week", MessageStatus.SUPPRESSED),
    ("holdout", MessageStatus.SUPPRESSED),
)
REVISIONS = (
    ("shared", "Measure updated"),
    ("shared", "Review confirmed; next review soon"),
    ("admin", "Review confirmed; next review soon"),
    ("admin", "Milestone edited"),
    ("rules", "Plan created"),
)
SENDS = (
    MessageStatus.QUEUED,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
    MessageStatus.BOUNCED,
)


@dataclass
class RandomWorld:
    accounts: list[Account] = field(default_factory=list)
    contacts: dict[int, Contact] = field(default_factory=dict)
    plans: list[SuccessPlan] = field(default_factory=list)
    enrollments: list[Enrollment] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    version: SurveyVersion | None = None
    survey_id: int = 0


def day(rng: random.Random, first: int = 0, last: int = 190) -> dt.datetime:
    return START + dt.timedelta(days=rng.randint(first, last), hours=rng.randint(0, 23))


def build_random_world(session: Session, seed: int, accounts: int = 40) -> RandomWorld:
    rng = random.Random(seed)
    world = RandomWorld()
    session.add(TraitDefinition(key="industry", type=TraitType.STRING))
    for n in range(accounts):
        industry = rng.choice(INDUSTRIES)
        account = Account(
            external_id=f"r{seed}-{n}",
            name=f"Account {n}",
            segment=rng.choice(SEGMENTS),
            lifecycle_stage=rng.choice(STAGES),
            traits={"industry": industry} if industry else {},
            holdout_group=rng.random() < 0.1,
            created_at=START,
        )
        session.add(account)
        session.flush()
        contact = Contact(account_id=account.id, email=f"ops{n}@r{seed}.example", name=f"Ops {n}")
        session.add(contact)
        world.accounts.append(account)
        world.contacts[account.id] = contact
    session.flush()
    for account in world.accounts:
        if rng.random() < 0.8:
            world.plans.append(add_plan(session, rng, account))
    _survey(session, rng, world)
    _campaigns(session, rng, world)
    session.flush()
    return world


def add_plan(session: Session, rng: random.Random, account: Account) -> SuccessPlan:
    started = day(rng)
    plan = SuccessPlan(
        account_id=account.id,
        template_key="t",
        goal="Hire faster",
        started_at=started,
        created_at=started - dt.timedelta(days=rng.choice((0, 0, 3))),
        review_date=started.date() + dt.timedelta(days=90),
    )
    session.add(plan)
    session.flush()
    for position in range(rng.randint(0, 3)):
        status = rng.choice(list(MilestoneStatus))
        # Achieved before the plan started happens (imported history): time to value clamps to 0.
        achieved = (
            started + dt.timedelta(days=rng.randint(-5, 60)) if status is MilestoneStatus.ACHIEVED else None
        )
        add_milestone(session, plan, position, status, achieved)
    for k in range(rng.randint(0, 2)):
        baseline = float(rng.choice((10, 50, 100, 100, 250)))
        target = baseline * rng.choice((0.5, 1.5, 2.0))
        session.add(
            KeyResult(
                plan_id=plan.id,
                objective_key=rng.choice(OBJECTIVES),
                title=f"KR {k}",
                metric="visits",
                unit="a week",
                baseline=baseline,
                target=target,
                current=rng.choice((baseline, target, (baseline + target) / 2, target * 1.1)),
                due_date=started.date() + dt.timedelta(days=120),
            )
        )
    add_adoption(session, rng, plan)
    session.flush()
    return plan


def add_adoption(session: Session, rng: random.Random, plan: SuccessPlan) -> None:
    """Shared-page views and revisions: customer updates, confirmed reviews, other changes."""
    for _ in range(rng.choice((0, 0, 1, 2))):
        record_plan_opened(session, plan.id, now=plan.started_at + dt.timedelta(days=rng.randint(0, 60)))
    for _ in range(rng.choice((0, 1, 2))):
        channel, summary = rng.choice(REVISIONS)
        when = plan.started_at + dt.timedelta(days=rng.randint(0, 60), hours=rng.randint(0, 23))
        session.add(
            PlanRevision(plan_id=plan.id, actor="x", channel=channel, summary=summary, created_at=when)
        )


def _survey(session: Session, rng: random.Random, world: RandomWorld) -> None:
    survey = Survey(key="onboarding", title="Onboarding")
    session.add(survey)
    session.flush()
    questions = [
        {"key": "outcomes", "kind": "outcome_pick", "title": "Outcomes"},
        {"key": "objectives", "kind": "objective_pick", "title": "Objectives"},
    ]
    world.version = SurveyVersion(
        survey_id=survey.id, version=1, definition={"questions": questions}, published_at=START
    )
    session.add(world.version)
    session.flush()
    world.survey_id = survey.id
    for account in world.accounts:
        for _ in range(rng.choice((0, 1, 1, 2))):
            add_response(session, rng, world, account)
        for _ in range(rng.choice((0, 1, 2))):
            add_reach(session, rng, world, account)


def add_reach(session: Session, rng: random.Random, world: RandomWorld, account: Account) -> None:
    """The widget or the hosted page showed the survey (again: the first time still dates it)."""
    channel = rng.choice(("in_app", "hosted"))
    contact = world.contacts[account.id]
    record_reach(session, world.survey_id, account.id, contact.id, channel, now=day(rng))


def add_response(session: Session, rng: random.Random, world: RandomWorld, account: Account) -> Response:
    assert world.version is not None
    completed = rng.random() < 0.8
    when = day(rng)
    answers = {
        "outcomes": rng.sample(OUTCOMES, rng.randint(1, 2)),
        "objectives": rng.sample(OBJECTIVES, rng.randint(0, 2)),
    }
    response = Response(
        survey_version_id=world.version.id,
        account_id=account.id,
        contact_id=world.contacts[account.id].id,
        client_response_id=f"{account.external_id}-{rng.random()}",
        channel=rng.choice(("in_app", "email", "hosted")),
        status=ResponseStatus.COMPLETED if completed else ResponseStatus.PARTIAL,
        answers=answers if completed else {},
        created_at=when,
        completed_at=when + dt.timedelta(minutes=5) if completed else None,
    )
    session.add(response)
    session.flush()
    refresh_choices(session, response.id)
    return response


def _campaigns(session: Session, rng: random.Random, world: RandomWorld) -> None:
    for key in ("onboard", "nudge"):
        campaign = Campaign(key=key, name=key.title())
        session.add(campaign)
        session.flush()
        for position, kind in enumerate((StepKind.EMAIL, StepKind.IN_APP)):
            # The onboarding email asks the survey: its sends are the funnel's email reach.
            config = {"survey": "onboarding"} if key == "onboard" and kind is StepKind.EMAIL else {}
            step = Step(
                campaign_id=campaign.id, position=position, key=f"s{position}", kind=kind, config=config
            )
            session.add(step)
            world.steps.append(step)
        session.flush()
        for account in world.accounts:
            if rng.random() < 0.6:
                world.enrollments.append(add_enrollment(session, rng, world, account, campaign))


def add_enrollment(
    session: Session, rng: random.Random, world: RandomWorld, account: Account, campaign: Campaign
) -> Enrollment:
    enrolled = day(rng)
    enrollment = Enrollment(
        account_id=account.id,
        campaign_id=campaign.id,
        state=EnrollmentState.ACTIVE,
        step_started_at=enrolled,
        enrolled_at=enrolled,
        held_out=rng.random() < 0.15,
    )
    session.add(enrollment)
    session.flush()
    steps = [s for s in world.steps if s.campaign_id == campaign.id]
    for n in range(rng.randint(0, 3)):
        step = rng.choice(steps)
        reason: str | None = None
        if rng.random() < 0.3:
            reason, status = rng.choice(SKIPS)
        else:
            status = rng.choice(SENDS)
        sent = (
            enrolled + dt.timedelta(days=n) if status not in (MessageStatus.QUEUED,) and not reason else None
        )
        # Timestamps and statuses disagree now and then (a webhook ahead of the ledger): both count.
        stamp = sent if rng.random() < 0.7 else None
        session.add(
            Message(
                enrollment_id=enrollment.id,
                step_id=step.id,
                contact_id=world.contacts[account.id].id,
                channel="email" if step.kind is StepKind.EMAIL else "in_app",
                status=status,
                reason=reason,
                dedupe_key=f"{enrollment.id}:{n}:{rng.random()}",
                created_at=enrolled,
                sent_at=sent,
                delivered_at=stamp if status in (MessageStatus.DELIVERED, MessageStatus.OPENED) else None,
                opened_at=stamp if status is MessageStatus.CLICKED else None,
                clicked_at=None,
            )
        )
    session.flush()
    return enrollment
