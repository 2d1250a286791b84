"""Connects campaigns to engine: enrol on decisions, wake on milestones, report messages sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campaigns import digests  # noqa: F401  (the digest tables, on Base.metadata)
from campaigns import privacy as campaign_privacy
from campaigns import reports as campaign_reports
from campaigns.builder import CampaignDraft
from campaigns.enrollment import enroll_account, exit_account, prefetch_enrollments, wake_waiting_enrollments
from campaigns.models import SENT_STATUSES, Campaign, CampaignVersion, Enrollment, Message, Step
from campaigns.notify import on_plan_updated
from campaigns.playbook import CampaignSchema, check_enroll_action, dump_campaigns, load_campaigns
from campaigns.triggers import on_milestone_signal
from content.models import ContentItem, MessageTemplate
from engine import audit, privacy, reporting, signals
from engine.accounts import Account
from engine.playbook import Section, register_section
from engine.rules.actions import register_action_check


def _on_decision(
    _sender: object,
    *,
    session: Session,
    account_id: int,
    actions: list[dict[str, Any]],
    now: dt.datetime,
    **_: Any,
) -> None:
    for action in actions:
        if action["type"] == "enroll":
            enroll_account(
                session,
                account_id,
                str(action["campaign"]),
                now=now,
                reason=f"rule {action['rule']!r}",
            )
        elif action["type"] == "exit":
            exit_account(
                session, account_id, str(action["campaign"]), now=now, reason=f"rule {action['rule']!r}"
            )


def _on_decisions_starting(
    _sender: object, *, session: Session, account_ids: Collection[int], **_: Any
) -> None:
    prefetch_enrollments(session, account_ids)


def _on_milestone(
    _sender: object,
    *,
    session: Session,
    account_id: int,
    milestone_key: str,
    now: dt.datetime,
    batched: bool = False,
    **_: Any,
) -> None:
    if not batched:  # a refresh wakes all its accounts at once (_on_milestones_batch)
        wake_waiting_enrollments(session, [account_id], now=now)
    on_milestone_signal(
        session, "milestone_achieved", account_id=account_id, milestone_key=milestone_key, now=now
    )


def _on_milestones_batch(
    _sender: object, *, session: Session, account_ids: list[int], now: dt.datetime, **_: Any
) -> None:
    wake_waiting_enrollments(session, account_ids, now=now)


def _on_slipped(
    _sender: object, *, session: Session, account_id: int, milestone_key: str, now: dt.datetime, **_: Any
) -> None:
    on_milestone_signal(
        session, "milestone_slipped", account_id=account_id, milestone_key=milestone_key, now=now
    )


def _on_plan_change(
    _sender: object, *, session: Session, account_id: int, now: dt.datetime, **_: Any
) -> None:
    # A KR moved or the customer changed the plan: waits on a KR or milestone re-check on the next tick.
    wake_waiting_enrollments(session, [account_id], now=now)


def _messages_sent(session: Session) -> reporting.SegmentCounts:
    rows = session.execute(
        select(Account.segment, func.count(Message.id))
        .join(Enrollment, Enrollment.account_id == Account.id)
        .join(Message, Message.enrollment_id == Enrollment.id)
        .where(Message.status.in_(SENT_STATUSES))
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def connect() -> None:
    signals.decision_applied.connect(_on_decision)
    signals.decisions_starting.connect(_on_decisions_starting)
    signals.milestone_achieved.connect(_on_milestone)
    signals.milestones_achieved_batch.connect(_on_milestones_batch)
    signals.milestone_slipped.connect(_on_slipped)
    signals.key_result_moved.connect(_on_plan_change)
    signals.plan_updated.connect(on_plan_updated)
    register_section(Section("campaigns", 60, CampaignSchema, load_campaigns, dump_campaigns))
    register_action_check("enroll", check_enroll_action)
    register_action_check("exit", check_enroll_action)
    reporting.register_metric("messages_sent", "messages sent", 30, _messages_sent)
    campaign_reports.connect()
    for model in (Campaign, CampaignVersion, ContentItem, MessageTemplate):
        audit.register(model)
    audit.register(Step, title="Campaign step")
    audit.register(CampaignDraft, object_type="CampaignDraft")
    privacy.register_provider(campaign_privacy.PROVIDER)
