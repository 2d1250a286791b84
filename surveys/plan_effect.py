"""What a completed response did to its account's plan: made it, changed it, or left it as it was."""

from __future__ import annotations

import enum

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from engine.plans.models import PlanRevision, SuccessPlan
from surveys.models import Channel, Response

# The channels whose rules run in the response's own transaction (ADR 0003); the widget's and the
# API's run later, in the `rules` job (ADR 0009), at the job's time.
SAME_TRANSACTION = (Channel.HOSTED, Channel.EMAIL)


class PlanEffect(enum.StrEnum):
    CREATED = "created"  # these answers made the plan
    CHANGED = "changed"  # the answers' new objective, or a rule, added to the plan the account had
    KEPT = "kept"  # the account had its plan and the rules left it as it was


def plan_effect(session: Session, response: Response, plan: SuccessPlan) -> PlanEffect | None:
    """What completing `response` did to `plan` (the account's active plan), or None when that
    cannot be told: the response is not completed, or its rules ran in the `rules` job.

    The rules that completing a hosted or email response runs take its completion time as `now`
    and write it on what they make: the plan's `started_at` and each revision's `created_at`. So
    a plan started at that moment is this response's, and a revision from that moment is its
    change. A second contact's answers find the first one's plan and keep it (`run_rules` never
    replaces an active plan): they change it only by an objective it did not measure yet, or a
    rule's `add_objective` / `add_milestone`."""
    done = response.completed_at
    if done is None or response.channel not in SAME_TRANSACTION:
        return None
    if plan.started_at == done:
        return PlanEffect.CREATED
    revised = session.scalar(
        select(exists().where(PlanRevision.plan_id == plan.id, PlanRevision.created_at == done))
    )
    return PlanEffect.CHANGED if revised else PlanEffect.KEPT
