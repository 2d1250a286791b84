"""A plan as plain JSON-ready values: what the API, the shared page and the admin show."""

from __future__ import annotations

import datetime as dt
from typing import Any

from engine.plans.models import KeyResult, Milestone, SuccessPlan
from engine.plans.progress import triangle


def progress(kr: KeyResult) -> float:
    """How far from baseline to target the current value is, 0..1."""
    span = kr.target - kr.baseline
    return 0.0 if not span else max(0.0, min(1.0, (kr.current - kr.baseline) / span))


def key_result_json(kr: KeyResult) -> dict[str, Any]:
    return {
        "id": kr.id,
        "objective": kr.objective_key,
        "title": kr.title,
        "metric": kr.metric,
        "unit": kr.unit,
        "baseline": kr.baseline,
        "target": kr.target,
        "current": kr.current,
        "due_date": kr.due_date.isoformat(),
        "progress": round(progress(kr), 4),
        "sentence": kr.sentence,
    }


def milestone_json(m: Milestone) -> dict[str, Any]:
    return {
        "key": m.key,
        "title": m.title,
        "owner": m.owner,
        "due_date": m.due_date.isoformat(),
        "after": m.after,
        "status": m.status.value,
        "achieved_at": m.achieved_at.isoformat() if m.achieved_at else None,
    }


def plan_json(plan: SuccessPlan, *, share_url: str, today: dt.date, revisions: int = 20) -> dict[str, Any]:
    account = plan.account
    return {
        "id": plan.id,
        "account": account.external_id,
        "account_name": account.name,
        "template": plan.template_key,
        "stage": plan.stage,
        "status": plan.status.value,
        "goal": plan.goal,
        "key_results": [key_result_json(kr) for kr in plan.key_results],
        "milestones": [milestone_json(m) for m in plan.milestones],
        "dependencies": list(plan.dependencies),
        "risks": list(plan.risks),
        "contacts": triangle(account.contacts).to_dict(),
        "started_at": plan.started_at.isoformat(),
        "review_date": plan.review_date.isoformat(),
        "review_every_days": plan.review_every_days,
        "review_overdue": plan.review_date < today,
        "last_reviewed_at": plan.last_reviewed_at.isoformat() if plan.last_reviewed_at else None,
        "share_url": share_url,
        "revisions": [
            {
                "at": r.created_at.isoformat(),
                "actor": r.actor,
                "channel": r.channel,
                "summary": r.summary,
                "change": r.change,
            }
            for r in (plan.revisions[-revisions:][::-1] if revisions > 0 else [])
        ],
    }
