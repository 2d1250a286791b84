"""Plan pages: every account's plan by state (behind, missed, review overdue…), one plan as the customer
sees it plus its history and share link, and CS ops' edits (each a PlanRevision on channel "admin")."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import NotFound as HTTPNotFound

from engine.errors import Conflict, NotFound, ValidationFailed
from engine.plans import updates
from engine.plans.models import LIFECYCLE_STAGES, Milestone, MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.progress import OPEN
from engine.plans.queries import STATES, PlanFilter, count_plans, plan_page, plan_segments
from engine.plans.triangle import ROLE_NAMES, WANTED, triangle
from engine.plans.views import progress
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.nav import account_crumbs, breadcrumbs
from web.context import db_session, now, unit_of_work
from web.plans_api import share_url

CHANNEL = "admin"
PER_PAGE = 25
HISTORY = 100
GOAL_EXCERPT = 100
REVIEW_SOON_DAYS = 14
STATE_LABELS = {
    "active": "Active",
    "behind": "Behind",
    "missed": "Missed a milestone",
    "on_track": "On track",
    "review_overdue": "Review overdue",
    "completed": "Completed",
    "cancelled": "Cancelled",
}
assert set(STATE_LABELS) == set(STATES)
STATUS_ORDER = ("behind", "missed", "on_track", "pending", "achieved")
OWNER_LABELS = {"customer": "Customer", "vendor": "Us"}
FIELD_LABELS = {
    "current": "Current value",
    "target": "Target",
    "due_date": "Due date",
    "status": "Status",
    "comment": "Comment",
    "confirm": "Confirmation",
    "state": "State",
    "stage": "Lifecycle stage",
    "segment": "Segment",
    "search": "Search",
    "page": "Page",
}


@dataclass(frozen=True)
class PlanRow:
    """A plan as one line of the list."""

    plan: SuccessPlan
    goal: str
    kr_progress: int | None
    kr_count: int
    counts: list[tuple[str, int]]
    next_milestone: Milestone | None
    review_overdue_days: int
    gaps: list[str]


@dataclass
class Problems:
    """Why a form was refused: its anchor, the message per field, and what was typed."""

    form: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    typed: dict[str, str] = field(default_factory=dict)
    notice: str | None = None


# -- the list -------------------------------------------------------------------------------------


@bp.get("/plans")
@role_required(*ANY_ROLE)
def plans() -> Any:
    session = db_session()
    today = now().date()
    args = request.args
    chosen = PlanFilter(
        state=args.get("state", "active").strip() or "active",
        segment=args.get("segment", "").strip() or None,
        stage=args.get("stage", "").strip() or None,
        search=args.get("q", "").strip() or None,
    )
    errors: dict[str, str] = {}
    page_text = args.get("page", "1").strip() or "1"
    page = int(page_text) if page_text.isdigit() and len(page_text) <= 7 else 0
    if page < 1:
        errors["page"] = "Enter a page number from 1."
    if any("\x00" in value for value in args.values()):
        errors["search"] = "The filters must not contain NUL characters."
    found = None
    if not errors:
        try:
            found = plan_page(session, chosen, today=today, page=page, per_page=PER_PAGE)
        except ValidationFailed as exc:
            errors.update({name: _sentence(name, message) for name, message in exc.errors.items()})
    counts = {
        state: count_plans(session, PlanFilter(state=state), today=today)
        for state in ("active", "behind", "review_overdue")
    }
    filters = {
        "state": chosen.state,
        "segment": chosen.segment or "",
        "stage": chosen.stage or "",
        "q": chosen.search or "",
    }
    filtered = chosen != PlanFilter()

    def page_url(number: int) -> str:
        kept: dict[str, Any] = {k: v for k, v in filters.items() if v and (k, v) != ("state", "active")}
        return url_for("admin.plans", **kept, page=number)

    return (
        render_template(
            "admin/plans.html",
            section="plans",
            breadcrumbs=breadcrumbs(("Plans", None)),
            found=found,
            rows=[_row(p, today) for p in found.plans] if found else [],
            filters=filters,
            filtered=filtered,
            errors=errors,
            counts=counts,
            segments=plan_segments(session),
            stages=LIFECYCLE_STAGES,
            state_labels=STATE_LABELS,
            page_url=page_url,
            any_plans=counts["active"] > 0 or (found is not None and found.total > 0) or _any_plan(),
        ),
        400 if errors else 200,
    )


def _any_plan() -> bool:
    return db_session().scalar(select(SuccessPlan.id).limit(1)) is not None


def _row(plan: SuccessPlan, today: dt.date) -> PlanRow:
    krs = plan.key_results
    statuses = Counter(m.status.value for m in plan.milestones)
    upcoming = sorted(
        (m for m in plan.milestones if m.status in OPEN), key=lambda m: (m.due_date, m.position)
    )
    return PlanRow(
        plan=plan,
        goal=_excerpt(plan.goal, GOAL_EXCERPT),
        kr_progress=round(100 * sum(progress(kr) for kr in krs) / len(krs)) if krs else None,
        kr_count=len(krs),
        counts=[(status, statuses[status]) for status in STATUS_ORDER if statuses[status]],
        next_milestone=upcoming[0] if upcoming else None,
        review_overdue_days=(today - plan.review_date).days if plan.status is PlanStatus.ACTIVE else 0,
        gaps=triangle(plan.account.contacts).gaps,
    )


def _excerpt(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


# -- one plan -------------------------------------------------------------------------------------


@bp.get("/plans/<int:plan_id>")
@role_required(*ANY_ROLE)
def plan_detail(plan_id: int) -> Any:
    return _detail_page(_plan(plan_id))


def _plan(plan_id: int) -> SuccessPlan:
    plan = db_session().get(SuccessPlan, plan_id)
    if plan is None:
        raise HTTPNotFound(f"There is no plan {plan_id}. It may have been removed; go back to the plan list.")
    return plan


def _detail_page(plan: SuccessPlan, problems: Problems | None = None, status: int = 200) -> Any:
    today = now().date()
    people = triangle(plan.account.contacts)
    corners = [
        {
            "label": ROLE_NAMES[role][0 if wanted == 1 else 1].capitalize() + f" (want {wanted})",
            "people": list(getattr(people, attr)),
        }
        for (role, wanted), attr in zip(
            WANTED.items(), ("exec_sponsors", "champions", "power_users"), strict=True
        )
    ]
    by_key = {m.key: m for m in plan.milestones}
    return (
        render_template(
            "admin/plans_detail.html",
            section="plans",
            breadcrumbs=account_crumbs(plan.account, ("Success plan", None)),
            plan=plan,
            account=plan.account,
            editable=current_user.can_edit and plan.status is PlanStatus.ACTIVE,
            can_rotate=current_user.can_edit,
            progress={kr.id: round(100 * progress(kr)) for kr in plan.key_results},
            by_key=by_key,
            followers={m.key: [f for f in plan.milestones if f.after == m.key] for m in plan.milestones},
            statuses=[s.value for s in MilestoneStatus],
            corners=corners,
            gaps=people.gaps,
            review_overdue_days=(today - plan.review_date).days,
            review_soon=0 <= (plan.review_date - today).days <= REVIEW_SOON_DAYS,
            share=share_url(plan),
            history=plan.revisions[::-1][:HISTORY],
            history_total=len(plan.revisions),
            owners=OWNER_LABELS,
            problems=problems or Problems(),
            max_comment=updates.MAX_COMMENT,
            today=today,
        ),
        status,
    )


def _change(
    plan_id: int,
    form: str,
    apply: Callable[[SuccessPlan], str | None],
    *,
    anchor: str | None = None,
) -> Any:
    """Run one edit in one transaction: flash what changed and go back to the plan (303), or show the
    plan again with the form's error beside it (4xx) and nothing changed."""
    _plan(plan_id)
    typed = {name: value for name, value in request.form.items() if name != "csrf_token"}
    if any("\x00" in value for value in typed.values()):
        return _refused(plan_id, form, typed, {"": "The form must not contain NUL characters."}, 400)
    try:
        with unit_of_work() as session:
            plan = session.get(SuccessPlan, plan_id)
            assert plan is not None
            before = len(plan.revisions)
            message = apply(plan)
            changed = len(plan.revisions) > before
    except ValidationFailed as exc:
        return _refused(plan_id, form, typed, exc.errors, 422)
    except BadRequest as exc:
        return _refused(plan_id, form, typed, {"": str(exc.description)}, 400)
    except (Conflict, NotFound) as exc:
        return _refused(plan_id, form, typed, {"": exc.detail}, exc.status)
    flash(message if changed and message else "Nothing changed: the values are the ones already saved.", "ok")
    return redirect(url_for("admin.plan_detail", plan_id=plan_id, _anchor=anchor or form), 303)


def _refused(plan_id: int, form: str, typed: dict[str, str], errors: Mapping[str, Any], status: int) -> Any:
    db_session().expire_all()
    plan = _plan(plan_id)
    messages = {name: _sentence(name, message) for name, message in errors.items()}
    first = next(iter(messages.values()), "")
    problems = Problems(form=form, errors=messages, typed=typed, notice=f"Nothing was saved. {first}")
    return _detail_page(plan, problems, status)


def _sentence(name: str, message: Any) -> str:
    """A domain error as a sentence naming its field: "Target: the target must differ from…"."""
    while isinstance(message, list | tuple) and message:
        message = message[0]
    text = str(message).strip()
    label = FIELD_LABELS.get(name)
    if label and text.startswith("one of"):
        return f"{label} must be {text}."
    if label:
        return f"{label}: {text}"
    return text[:1].upper() + text[1:]


def _date(name: str, *, required: bool = True) -> dt.date | None:
    typed = request.form.get(name, "").strip()
    if not typed:
        if required:
            raise ValidationFailed({name: "enter a date like 2027-03-31"})
        return None
    try:
        return dt.date.fromisoformat(typed)
    except ValueError:
        raise ValidationFailed({name: f"{typed[:40]!r} is not a date: enter one like 2027-03-31"}) from None


def _actor() -> str:
    return str(current_user.email)


@bp.post("/plans/<int:plan_id>/key-results/<int:kr_id>")
@role_required(*EDITORS)
def update_key_result(plan_id: int, kr_id: int) -> Any:
    def apply(plan: SuccessPlan) -> str | None:
        kr = updates.key_result(plan, kr_id)
        due = _date("due_date")
        updates.update_key_result(
            db_session(),
            plan,
            kr_id,
            current=request.form.get("current", ""),
            target=request.form.get("target", ""),
            due_date=due if due != kr.due_date else None,
            actor=_actor(),
            channel=CHANNEL,
            now=now(),
        )
        return f"Saved. {plan.revisions[-1].summary}."

    return _change(plan_id, f"kr-{kr_id}", apply)


@bp.post("/plans/<int:plan_id>/milestones/<key>")
@role_required(*EDITORS)
def update_milestone(plan_id: int, key: str) -> Any:
    def apply(plan: SuccessPlan) -> str | None:
        milestone = updates.milestone(plan, key)
        session, clock, before = db_session(), now(), len(plan.revisions)
        due = _date("due_date")
        if due is not None and due != milestone.due_date:
            updates.set_milestone_due(session, plan, key, due, actor=_actor(), channel=CHANNEL, now=clock)
        status = request.form.get("status", "").strip()
        if status:
            updates.set_milestone_status(
                session, plan, key, status, actor=_actor(), channel=CHANNEL, now=clock
            )
        return "Saved. " + "; ".join(r.summary for r in plan.revisions[before:]) + "."

    return _change(plan_id, f"m-{key}", apply)


@bp.post("/plans/<int:plan_id>/comments")
@role_required(*EDITORS)
def add_comment(plan_id: int) -> Any:
    def apply(plan: SuccessPlan) -> str:
        text = request.form.get("comment", "").replace("\r\n", "\n")
        updates.add_comment(db_session(), plan, text, actor=_actor(), channel=CHANNEL, now=now())
        return "Comment added to the plan's history."

    return _change(plan_id, "comment", apply, anchor="history")


@bp.post("/plans/<int:plan_id>/review")
@role_required(*EDITORS)
def confirm_review(plan_id: int) -> Any:
    def apply(plan: SuccessPlan) -> str:
        updates.confirm_review(db_session(), plan, actor=_actor(), channel=CHANNEL, now=now())
        return f"Review confirmed. The next review is on {_day(plan.review_date)}."

    return _change(plan_id, "review", apply)


@bp.post("/plans/<int:plan_id>/share-link")
@role_required(*EDITORS)
def rotate_share_link(plan_id: int) -> Any:
    def apply(plan: SuccessPlan) -> str:
        if request.form.get("confirm") != "rotate":
            raise BadRequest("Confirm that the old link should stop working, then rotate it.")
        updates.rotate_share_link(db_session(), plan, actor=_actor(), now=now())
        return "New share link made. The old link no longer opens the plan: send the new one to the customer."

    return _change(plan_id, "share", apply)


def _day(day: dt.date) -> str:
    return f"{day:%b} {day.day}, {day.year}"
