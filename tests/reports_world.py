"""The reports tests' small hand-built world whose every number is known.

Five accounts, four plans started in June 2026 (one in May, outside the range), a survey answered on
three channels, one campaign with a holdout; its summary rows refreshed, as the reports read them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from campaigns.models import Campaign, Enrollment, EnrollmentState, Message, MessageStatus, Step, StepKind
from engine.accounts import Account, Contact, TraitDefinition, TraitType
from engine.plans.models import KeyResult, Milestone, MilestoneStatus, PlanRevision, SuccessPlan
from engine.reports import Filters, parse_filters
from engine.reports.models import record_plan_opened
from engine.reports.summaries import refresh_stale
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion
from surveys.reports import record_reach, refresh_choices

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
        add_milestone(session, plan, position, status, achieved_at)
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
    # The triggers marked every new row's keys stale in this transaction: refresh the summary rows
    # the reports read, as the reports-queue job does after a commit.
    while refresh_stale(session):
        pass
    accounts = {a.external_id: a for a in (a1, a2, a3, a4, a5)}
    return World(
        accounts,
        {"acme": c1, "bolt": c2, "core": c3, "dune": c4},
        {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5},
        survey,
        campaign,
    )


def by_group(rows: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {row["group"]: row for row in rows}


def add_milestone(
    session: Session,
    plan: SuccessPlan,
    position: int,
    status: MilestoneStatus,
    achieved_at: dt.datetime | None,
) -> None:
    """Milestone `m<position>` of `plan`, due 30 days after it started (both worlds build them so)."""
    session.add(
        Milestone(
            plan_id=plan.id,
            key=f"m{position}",
            title=f"Milestone {position}",
            position=position,
            due_date=plan.started_at.date() + dt.timedelta(days=30),
            status=status,
            achieved_at=achieved_at,
        )
    )
