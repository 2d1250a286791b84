"""Fast bulk data for benchmarks: accounts, contacts, active plans and enrolments via Core inserts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from campaigns.enrollment import get_campaign, log_entry
from campaigns.models import Enrollment, EnrollmentState, Message, MessageStatus
from engine.accounts import Account, Contact, ContactRole
from engine.db import Database
from engine.plans.models import Milestone, MilestoneStatus, PlanStatus, PlanTemplate, SuccessPlan
from engine.templating import render_text

ROLES = (ContactRole.CHAMPION, ContactRole.EXEC_SPONSOR, ContactRole.POWER_USER, ContactRole.OTHER)
FIRST = ("Sofia", "Johnny", "Amara", "Lukas", "Mei", "Tomás", "Priya", "Ines", "Kwame", "Hana")
LAST = ("Varga", "Denver", "Okafor", "Berg", "Tanaka", "Silva", "Nair", "Costa", "Mensah", "Sato")
SEGMENTS = ("starter", "growth", "enterprise")
CHUNK = 2000
_NAME_TOKEN = "\x00account-name\x00"


def chunks(rows: Sequence[dict[str, Any]], size: int = CHUNK) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def contacts_per_account(emails: int, per_account: int = 4) -> list[int]:
    """How many contacts each account gets so that exactly `emails` contacts exist in total."""
    counts = [per_account] * (emails // per_account)
    if emails % per_account:
        counts.append(emails % per_account)
    return counts


def create_accounts(
    database: Database,
    contact_counts: Sequence[int],
    *,
    prefix: str,
    now: dt.datetime,
    plan_template: str | None = "hire_faster_plan",
) -> list[int]:
    """One account per entry of `contact_counts`, with that many contacts (roles cycling through
    champion, exec sponsor, power user, other) and, if `plan_template`, an active plan with its
    milestones. Returns the account ids in order."""
    account_rows: list[dict[str, Any]] = [
        {
            "external_id": f"{prefix}-{i:06d}",
            "name": f"{LAST[i % len(LAST)]} {prefix.title()} {i} Staffing",
            "segment": SEGMENTS[i % len(SEGMENTS)],
            "plan_tier": "pro" if i % 2 else "team",
            "lifecycle_stage": "onboarding",
            "traits": {"seats": 5 + i % 200, "region": ("emea", "amer", "apac")[i % 3]},
            "timezone": "UTC",
            "holdout_group": False,
            "created_at": now,
        }
        for i in range(len(contact_counts))
    ]
    with database.transaction() as session:
        account_ids = _insert_returning(session, Account, account_rows)
        contact_rows = [
            {
                "account_id": account_id,
                "email": f"{ROLES[j % len(ROLES)].value.replace('_', '.')}.{j}@{prefix}{i}.bench.example",
                "name": f"{FIRST[(i + j) % len(FIRST)]} {LAST[(i * 3 + j) % len(LAST)]}",
                "role": ROLES[j % len(ROLES)],
                "locale": "en",
                "created_at": now,
            }
            for i, (account_id, n) in enumerate(zip(account_ids, contact_counts, strict=True))
            for j in range(n)
        ]
        for part in chunks(contact_rows):
            session.execute(insert(Contact), part)
        if plan_template:
            _create_plans(session, plan_template, account_ids, [r["name"] for r in account_rows], now)
    return account_ids


def _insert_returning(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> list[int]:
    ids: list[int] = []
    for part in chunks(rows):
        stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
        ids.extend(session.scalars(stmt, part))
    return ids


def _create_plans(
    session: Session, template_key: str, account_ids: Sequence[int], names: Sequence[str], now: dt.datetime
) -> None:
    template = session.scalar(select(PlanTemplate).where(PlanTemplate.key == template_key))
    if template is None:
        raise SystemExit(f"plan template {template_key!r} is not in the playbook")
    review = (now + dt.timedelta(days=template.review_days)).date()
    goal = render_text(
        template.goal,
        {"review_date": review.strftime("%B %d, %Y"), "account": {"name": _NAME_TOKEN}},
        field="goal",
    )
    plan_rows = [
        {
            "account_id": account_id,
            "template_key": template.key,
            "status": PlanStatus.ACTIVE,
            "goal": goal.replace(_NAME_TOKEN, name),
            "dependencies": template.dependencies,
            "risks": template.risks,
            "started_at": now,
            "review_date": review,
            "share_token_version": 1,
            "created_at": now,
            "updated_at": now,
        }
        for account_id, name in zip(account_ids, names, strict=True)
    ]
    plan_ids = _insert_returning(session, SuccessPlan, plan_rows)
    milestone_rows = [
        {
            "plan_id": plan_id,
            "key": m["key"],
            "title": m["title"],
            "position": position,
            "owner": m.get("owner", "customer"),
            "due_date": (now + dt.timedelta(days=int(m["due_days"]))).date(),
            "criteria": m.get("criteria"),
            "status": MilestoneStatus.PENDING,
        }
        for plan_id in plan_ids
        for position, m in enumerate(template.milestones)
    ]
    for part in chunks(milestone_rows):
        session.execute(insert(Milestone), part)


def enroll_all(database: Database, account_ids: Sequence[int], campaign_key: str, now: dt.datetime) -> int:
    """Enrol every account in the campaign, due now (what `enroll_account` writes, in bulk)."""
    with database.transaction() as session:
        campaign = get_campaign(session, campaign_key)
        rows = [
            {
                "account_id": account_id,
                "campaign_id": campaign.id,
                "state": EnrollmentState.ACTIVE,
                "current_step": 0,
                "step_started_at": now,
                "next_run_at": now,
                "enrolled_at": now,
                "history": [log_entry(now, "enrolled", reason="bench")],
            }
            for account_id in account_ids
        ]
        for part in chunks(rows):
            session.execute(insert(Enrollment), part)
    return len(account_ids)


def count_sent(database: Database, ids: list[int]) -> int:
    """How many of the messages `ids` (a contiguous run) are `sent`."""
    with database.session() as session:
        stmt = select(func.count(Message.id)).where(
            Message.id.between(min(ids), max(ids)), Message.status == MessageStatus.SENT
        )
        return int(session.scalar(stmt) or 0)
