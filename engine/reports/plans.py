"""The engine's own reports: plan adoption, and milestones with time to value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, case, func, select, true
from sqlalchemy.orm import Session

from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, SuccessPlan
from engine.reports import summaries
from engine.reports.base import Chart, Column, Filters, ReportResult, Series, register_report
from engine.reports.grouping import grouped_select, split_total
from engine.reports.models import PlanPageView
from engine.reports.plan_facts import PlanFact, register_plan_summaries
from engine.reports.scope import group_column, scope_accounts, snapshot_conditions, snapshot_group
from engine.reports.stats import share

CUSTOMER_CHANNEL = "shared"  # web/plan_page.py: changes the customer makes on the shared page
REVIEW_SUMMARY = "Review confirmed%"  # engine.plans.updates.confirm_review


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(condition)


def plan_adoption(session: Session, filters: Filters) -> ReportResult:
    """Plans created in the range, and how many of them the customer opened, updated, reviewed."""
    plan = SuccessPlan
    # Uncorrelated IN (…) lists: PostgreSQL hashes each once ("hashed SubPlan") instead of probing
    # an index per plan, which is what a correlated EXISTS would do (~3 probes x 800k plans).
    opened = plan.id.in_(select(PlanPageView.plan_id).where(PlanPageView.day <= filters.end))
    updated = plan.id.in_(
        select(PlanRevision.plan_id).where(
            PlanRevision.channel == CUSTOMER_CHANNEL, PlanRevision.created_at < filters.end_before
        )
    )
    reviewed = plan.id.in_(
        select(PlanRevision.plan_id).where(
            PlanRevision.summary.like(REVIEW_SUMMARY), PlanRevision.created_at < filters.end_before
        )
    )
    group = group_column(filters)
    query = scope_accounts(
        grouped_select(
            filters,
            group,
            [
                func.count().label("created"),
                _count_if(opened).label("opened"),
                _count_if(updated).label("updated"),
                _count_if(reviewed).label("reviewed"),
            ],
        )
        .select_from(plan)
        .where(plan.created_at >= filters.start_at, plan.created_at < filters.end_before),
        filters,
        plan.account_id,
    )
    return _adoption_report(session, filters, query)


def plan_adoption_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """Plan adoption from report_plan_facts: each plan's first view, update and review dates."""
    fact = PlanFact
    query = (
        grouped_select(
            filters,
            snapshot_group(filters, fact),
            [
                func.count().label("created"),
                _count_if(fact.first_opened_on <= filters.end).label("opened"),
                _count_if(fact.first_update_at < filters.end_before).label("updated"),
                _count_if(fact.first_review_at < filters.end_before).label("reviewed"),
            ],
        )
        .select_from(fact)
        .where(
            fact.created_at >= filters.start_at,
            fact.created_at < filters.end_before,
            *snapshot_conditions(filters, fact),
        )
    )
    return _adoption_report(session, filters, query)


def _adoption_report(session: Session, filters: Filters, query: Select[Any]) -> ReportResult:
    rows, total = split_total(session, query, filters)
    table = [_adoption_row(r) for r in (rows if filters.group_by else [total])]
    if filters.group_by:
        table.append(_adoption_row(total))
    steps = ("created", "opened", "updated", "reviewed")
    labels = ["Plans created", "Shared page opened", "Customer updated", "Review confirmed"]
    charts = [
        Chart(
            "funnel",
            "Plan adoption",
            labels,
            [Series("plans", [float(total.get(k) or 0) for k in steps])],
            unit="plans",
        )
    ]
    if filters.group_by:
        charts.append(
            Chart(
                "hbar",
                "Shared page opened, share of plans",
                [r["group"] for r in table[:-1]],
                [Series("opened", [r["opened_pct"] for r in table[:-1]])],
                unit="%",
            )
        )
    t = _adoption_row(total)
    return ReportResult(
        name="plan-adoption",
        title="Plan adoption",
        description=(
            "Success plans created in the date range, and how many of them the customer has opened "
            "(shared page), updated themselves (a measure, milestone or comment) and reviewed."
        ),
        filters=filters,
        columns=[
            Column("group", _group_label(filters), "text"),
            Column("created", "Plans created", "int"),
            Column("opened", "Shared page opened", "int"),
            Column("opened_pct", "Opened %", "pct"),
            Column("updated", "Customer updated", "int"),
            Column("updated_pct", "Updated %", "pct"),
            Column("reviewed", "Review confirmed", "int"),
            Column("reviewed_pct", "Reviewed %", "pct"),
        ],
        rows=table,
        charts=charts,
        headline={
            "plans_created": t["created"],
            "opened_pct": t["opened_pct"],
            "updated_pct": t["updated_pct"],
            "reviewed_pct": t["reviewed_pct"],
        },
        notes=[
            "Cohort: plans created between the dates; what they did is counted up to the end date.",
            "Opened counts visits to the shared plan page (recorded since reports were introduced).",
        ],
    )


def _adoption_row(r: dict[str, Any]) -> dict[str, Any]:
    created = int(r.get("created") or 0)
    out: dict[str, Any] = {"group": r["grp"], "created": created}
    for key in ("opened", "updated", "reviewed"):
        out[key] = int(r.get(key) or 0)
        out[f"{key}_pct"] = share(out[key], created)
    return out


def _group_label(filters: Filters) -> str:
    if not filters.group_by:
        return "Accounts"
    if filters.group_by.startswith("trait."):
        return filters.group_by.removeprefix("trait.").replace("_", " ").capitalize()
    return filters.group_by.capitalize()


def milestones(session: Session, filters: Filters) -> ReportResult:
    """Milestones of plans started in the range by status, and days to the first one achieved
    (from the raw plans and milestones)."""
    group = group_column(filters)
    status = Milestone.status
    # Each plan's milestones read through the plan_id index (a LATERAL subquery per plan): 2.5x
    # faster on the seeded million than hashing all 2.4M milestones to keep a tenth of them.
    per_plan_milestones = (
        select(
            func.count(Milestone.id).label("milestones"),
            _count_if(status == MilestoneStatus.ACHIEVED).label("achieved"),
            _count_if(status == MilestoneStatus.ON_TRACK).label("on_track"),
            _count_if(status == MilestoneStatus.PENDING).label("pending"),
            _count_if(status == MilestoneStatus.BEHIND).label("behind"),
            _count_if(status == MilestoneStatus.MISSED).label("missed"),
            func.min(Milestone.achieved_at).filter(status == MilestoneStatus.ACHIEVED).label("first_at"),
        )
        .where(Milestone.plan_id == SuccessPlan.id)
        .correlate(SuccessPlan)
        .lateral("plan_milestones")
    )
    m = per_plan_milestones.c
    per_plan_query = (
        select(
            SuccessPlan.id.label("plan_id"),
            group.label("grp"),
            *(m[k] for k in ("milestones", *_STATUSES)),
            (func.extract("epoch", m.first_at - SuccessPlan.started_at) / 86400.0).label("days"),
        )
        .select_from(SuccessPlan)
        .join(per_plan_milestones, true())
        .where(SuccessPlan.started_at >= filters.start_at, SuccessPlan.started_at < filters.end_before)
    )
    per_plan = scope_accounts(per_plan_query, filters, SuccessPlan.account_id).subquery()
    return _milestones_report(session, filters, per_plan)


def milestones_from_summaries(session: Session, filters: Filters) -> ReportResult:
    """The milestones report from report_plan_facts: one narrow row per plan, no join."""
    fact = PlanFact
    per_plan = (
        select(
            fact.plan_id,
            snapshot_group(filters, fact).label("grp"),
            *(getattr(fact, k) for k in ("milestones", *_STATUSES)),
            (func.extract("epoch", fact.first_achieved_at - fact.started_at) / 86400.0).label("days"),
        )
        .where(
            fact.started_at >= filters.start_at,
            fact.started_at < filters.end_before,
            *snapshot_conditions(filters, fact),
        )
        .subquery()
    )
    return _milestones_report(session, filters, per_plan)


def _milestones_report(session: Session, filters: Filters, per_plan: Subquery) -> ReportResult:
    """Aggregate per-plan rows (grp, milestones, statuses, days) into the report."""
    # GREATEST would turn a plan without an achieved milestone (NULL) into 0 days: clamp with CASE.
    days = case((per_plan.c.days < 0, 0.0), else_=per_plan.c.days)
    measures: list[ColumnElement[Any]] = [
        func.count().label("plans"),
        func.count(per_plan.c.days).label("plans_with_value"),
        *(func.coalesce(func.sum(per_plan.c[k]), 0).label(k) for k in _STATUSES),
        func.coalesce(func.sum(per_plan.c.milestones), 0).label("milestones"),
        func.percentile_cont(0.5).within_group(days).label("ttv_median"),
        func.percentile_cont(0.75).within_group(days).label("ttv_p75"),
    ]
    if filters.group_by:
        query = select(per_plan.c.grp, *measures).group_by(func.rollup(per_plan.c.grp))
    else:
        query = grouped_select(filters, per_plan.c.grp, measures).select_from(per_plan)
    rows, total = split_total(session, query, filters)
    table = [_milestone_row(r) for r in (rows if filters.group_by else [total])]
    if filters.group_by:
        table.append(_milestone_row(total))
    t = _milestone_row(total)
    charts = [
        Chart(
            "bar",
            "Milestones by status",
            ["Achieved", "On track", "Pending", "Behind", "Missed"],
            [Series("milestones", [float(t[k]) for k in _STATUSES])],
            unit="milestones",
        )
    ]
    if filters.group_by:
        groups = table[:-1]
        charts.append(
            Chart(
                "hbar",
                "Time to value (days to the first milestone)",
                [r["group"] for r in groups],
                [
                    Series("median", [r["ttv_median"] for r in groups]),
                    Series("p75", [r["ttv_p75"] for r in groups]),
                ],
                unit="days",
            )
        )
    return ReportResult(
        name="milestones",
        title="Milestones and time to value",
        description=(
            "Milestones of the plans started in the date range by status, and time to value: days "
            "from the plan's start to its first achieved milestone (median and 75th percentile)."
        ),
        filters=filters,
        columns=[
            Column("group", _group_label(filters), "text"),
            Column("plans", "Plans started", "int"),
            Column("milestones", "Milestones", "int"),
            Column("achieved", "Achieved", "int"),
            Column("on_track", "On track", "int"),
            Column("pending", "Pending", "int"),
            Column("behind", "Behind", "int"),
            Column("missed", "Missed", "int"),
            Column("reached_value_pct", "Plans with a milestone achieved", "pct"),
            Column("ttv_median", "Time to value, median", "days"),
            Column("ttv_p75", "Time to value, p75", "days"),
        ],
        rows=table,
        charts=charts,
        headline={
            "plans": t["plans"],
            "achieved": t["achieved"],
            "behind": t["behind"],
            "missed": t["missed"],
            "ttv_median_days": t["ttv_median"],
            "ttv_p75_days": t["ttv_p75"],
        },
        notes=[
            "Cohort: plans started between the dates; statuses are as of now.",
            "Time to value counts only plans with at least one achieved milestone.",
        ],
    )


_STATUSES = ("achieved", "on_track", "pending", "behind", "missed")


def _milestone_row(r: dict[str, Any]) -> dict[str, Any]:
    plans = int(r.get("plans") or 0)
    out: dict[str, Any] = {"group": r["grp"], "plans": plans, "milestones": int(r.get("milestones") or 0)}
    for key in _STATUSES:
        out[key] = int(r.get(key) or 0)
    out["reached_value_pct"] = share(int(r.get("plans_with_value") or 0), plans)
    for key in ("ttv_median", "ttv_p75"):
        value = r.get(key)
        out[key] = round(float(value), 1) if value is not None else None
    return out


def register_engine_reports() -> None:
    register_report(
        "plan-adoption",
        "Plan adoption",
        "Plans created, shared page opened, customer updates, reviews confirmed",
        plan_adoption,
        build_from_summaries=plan_adoption_from_summaries,
    )
    register_report(
        "milestones",
        "Milestones and time to value",
        "Milestone status counts and days from plan start to the first milestone achieved",
        milestones,
        build_from_summaries=milestones_from_summaries,
    )
    register_plan_summaries()
    summaries.connect()
