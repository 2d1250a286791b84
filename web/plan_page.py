"""The shared one-page plan at `/p/<token>`: read it, and update it without an account.

The link token is the capability (signed, revocable by rotating the plan's share version). Every
POST also carries a form token signed for that link when the page was rendered, so a form from a
rotated link, another plan or a forged page is refused; the change itself goes through
`engine.plans.updates` (a PlanRevision on channel "shared") in one transaction, then the browser is
sent back to the page (303) with a short confirmation. Plain HTML forms: no JavaScript needed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from flask import Blueprint, make_response, render_template, request, url_for
from flask import Response as FlaskResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.utils import redirect

from engine.accounts import ContactRole
from engine.automation import CUSTOMER_ACTOR
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.plans import updates
from engine.plans.models import KeyResult, MilestoneStatus, PlanStatus, SuccessPlan
from engine.plans.progress import ROLE_NAMES, WANTED, triangle
from engine.plans.service import active_plan
from engine.plans.sharing import plan_from_token, plan_token
from engine.plans.views import progress
from engine.reports.models import record_plan_opened
from surveys.models import Response as SurveyResponse
from surveys.plan_link import response_id_from_token
from web.context import db_session, now, settings, unit_of_work
from web.ratelimit import limiter

bp = Blueprint("plan_page", __name__)

ACTOR = "customer via shared link"
CHANNEL = updates.SHARED
FORM_SALT = "northstar.plan-form"
# A form is signed when the page is shown; a day covers a tab left open overnight.
FORM_MAX_AGE = dt.timedelta(days=1)
HISTORY = 10
SAVED = {
    "kr": "Saved: the new number is on the plan.",
    "milestone": "Marked done. Nice work!",
    "reopened": "Undone: the milestone is open again.",
    "comment": "Your comment is on the plan; we will see it too.",
    "review": "Review confirmed. Thank you!",
}
FRIENDLIER = {  # "must be a number" is said per measure, in its unit: _number_hint
    "current: is too large": "That number is too large.",
    "target: is too large": "That number is too large.",
    "target: the target must differ from the baseline": "The target must differ from the starting number.",
}
# What to ask when a corner of the 1-2-3 relationship triangle is missing (seed 000).
GAP_QUESTIONS = {
    ContactRole.EXEC_SPONSOR: "who signs off on the budget for this plan?",
    ContactRole.CHAMPION: "who else leads a team that gains from this?",
    ContactRole.POWER_USER: "who works in it every day?",
}
ACTOR_NAMES = {
    ACTOR: "Your team (shared link)",
    "northstar": "Northstar",
    "rules": "Northstar (from your answers)",
    CUSTOMER_ACTOR: "Your team (survey answer)",
    "events": "Northstar (from product use)",
}


class FormRefused(Exception):
    """A POST whose form token is missing, forged, from another link, or too old."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@bp.after_request
def _private(response: FlaskResponse) -> FlaskResponse:
    # The URL is the capability: never cache the page, never leak the URL in a Referer, never index.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _limit_per_ip() -> str:
    return settings().response_limit_per_ip


# --- tokens --------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _form_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=FORM_SALT)


def _link_ref(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def form_token(plan: SuccessPlan, link_token: str) -> str:
    """Binds a rendered form to this plan, its current share version and the link it was opened with."""
    payload = [plan.id, plan.share_token_version, _link_ref(link_token)]
    return str(_form_serializer(settings().secret_key).dumps(payload))


def check_form_token(plan: SuccessPlan, link_token: str, sent: str | None) -> None:
    if not sent:
        raise FormRefused("This form was sent without its security token. Please try again.", 400)
    try:
        payload = _form_serializer(settings().secret_key).loads(
            sent, max_age=int(FORM_MAX_AGE.total_seconds())
        )
    except SignatureExpired:
        raise FormRefused(
            "This page was open for a long time, so nothing was saved. Please send it again.", 422
        ) from None
    except BadSignature:
        payload = None
    if payload != [plan.id, plan.share_token_version, _link_ref(link_token)]:
        raise FormRefused("We could not verify this form, so nothing was saved. Please try again.", 400)


def _plan(session: Session, token: str) -> SuccessPlan:
    if len(token) > 200:  # a real link token is ~40 characters; never sign-check a megabyte
        raise NotFound("this plan link is not valid")
    return plan_from_token(session, settings().secret_key, token)


# --- reading -------------------------------------------------------------------------------------


@bp.get("/p/<token>")
def shared_plan(token: str) -> Any:
    try:
        plan = _plan(db_session(), token)
    except NotFound as exc:
        return _invalid_link(exc)
    with unit_of_work() as session:  # the customer opened the shared page (plan-adoption report)
        record_plan_opened(session, plan.id, now=now())
    return _render(plan, token, saved=SAVED.get(request.args.get("saved", "")))


SLOW_PLAN = dt.timedelta(minutes=2)


@bp.get("/p/r/<token>")
def response_plan(token: str) -> Any:
    """The plan a widget/API response makes (surveys.plan_link): its page once the `rules` job has
    made it, a page that checks again every two seconds until then."""
    try:
        if len(token) > 200:
            raise NotFound("this plan link is not valid")
        response_id = response_id_from_token(settings().secret_key, token)
    except NotFound as exc:
        return _invalid_link(exc)
    session = db_session()
    found = session.execute(
        select(SurveyResponse.account_id, SurveyResponse.rules_queued_at).where(
            SurveyResponse.id == response_id
        )
    ).first()
    if found is None:
        return _invalid_link(NotFound("this plan link is not valid"))
    account_id, queued_at = found
    plan = active_plan(session, account_id) if account_id is not None and queued_at is None else None
    if plan is not None:
        return redirect(url_for("plan_page.shared_plan", token=plan_token(settings().secret_key, plan)))
    # Past a couple of minutes the job is backlogged or down: say so, and ask less often.
    slow = queued_at is not None and now() - queued_at > SLOW_PLAN
    page = make_response(render_template("plan_pending.html", pending=queued_at is not None, slow=slow))
    if queued_at is not None:
        page.headers["Refresh"] = page.headers["Retry-After"] = "15" if slow else "2"
    return page


def _invalid_link(exc: NotFound) -> Any:
    return render_template("plan_invalid.html", detail=exc.detail), 404


def _render(
    plan: SuccessPlan,
    token: str,
    *,
    saved: str | None = None,
    notice: str | None = None,
    errors: Mapping[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    status: int = 200,
) -> Any:
    today = now().date()
    editable = plan.status is PlanStatus.ACTIVE
    people = triangle(plan.account.contacts)
    have_by_role = {
        ContactRole.EXEC_SPONSOR: people.exec_sponsors,
        ContactRole.CHAMPION: people.champions,
        ContactRole.POWER_USER: people.power_users,
    }
    corners = []
    for role, wanted in WANTED.items():
        have = have_by_role[role]
        one, many = ROLE_NAMES[role]
        gap = None
        if not have:
            gap = f"No {one} yet — {GAP_QUESTIONS[role]}"
        elif len(have) < wanted:
            gap = f"{len(have)} of {wanted} {many} — {GAP_QUESTIONS[role]}"
        corners.append(
            {
                "label": (one if wanted == 1 else many).capitalize(),
                "names": [c.name or c.email.split("@")[0] for c in have],
                "gap": gap,
            }
        )
    return render_template(
        "plan.html",
        plan=plan,
        account=plan.account,
        token=token,
        form_token=form_token(plan, token),
        editable=editable,
        progress={kr.id: progress(kr) for kr in plan.key_results},
        corners=corners,
        can_mark_done={
            m.key
            for m in plan.milestones
            if m.owner == updates.CUSTOMER and m.status is not MilestoneStatus.ACHIEVED
        },
        can_undo=updates.marked_done_on_shared_page(db_session(), plan) if editable else set(),
        review_overdue=plan.review_date < today,
        review_soon=today <= plan.review_date <= today + dt.timedelta(days=14),
        history=plan.revisions[-HISTORY:][::-1],
        saved=saved,
        notice=notice,
        errors=dict(errors or {}),
        form=dict(form or {}),
        max_comment=updates.MAX_COMMENT,
        amount=_amount,
        plain=_plain,
        actor_name=lambda actor: ACTOR_NAMES.get(actor, actor),
    ), status


def _amount(value: float) -> str:
    """12,000 or 12.50: how a measure reads on the page."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _plain(value: float) -> str:
    """12000 or 12.5: how a measure reads in an input the customer edits."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.6g}"


# --- changing ------------------------------------------------------------------------------------


def _change(token: str, where: str, saved: str, apply: Callable[[Session, SuccessPlan], object]) -> Any:
    """Check the form, apply one change in one transaction, redirect back; or show why not (4xx)."""
    try:
        with unit_of_work() as session:
            plan = _plan(session, token)
            check_form_token(plan, token, request.form.get("_form"))
            apply(session, plan)
    except NotFound as exc:
        if exc.detail.startswith("this plan link"):
            return _invalid_link(exc)
        return _again(token, notice=_sentence(exc.detail), status=404)
    except FormRefused as exc:
        return _again(token, notice=exc.message, status=exc.status)
    except ValidationFailed as exc:
        message = "; ".join(_friendly(field, value) for field, value in exc.errors.items())
        return _again(token, errors={where: message}, status=422)
    except Conflict as exc:
        return _again(token, notice=_sentence(exc.detail), status=409)
    return redirect(url_for("plan_page.shared_plan", token=token, saved=saved, _anchor=where), 303)


def _again(
    token: str, *, status: int, notice: str | None = None, errors: Mapping[str, str] | None = None
) -> Any:
    """The page once more after a refused change: the transaction rolled back, so read it afresh."""
    session = db_session()
    session.expire_all()
    try:
        plan = _plan(session, token)
    except NotFound as exc:
        return _invalid_link(exc)
    form = {k: v for k, v in request.form.items() if k != "_form"}
    return _render(plan, token, notice=notice, errors=errors, form=form, status=status)


def _friendly(field: str, value: Any) -> str:
    text = value[0] if isinstance(value, list) and value else value
    return FRIENDLIER.get(f"{field}: {text}") or _sentence(str(text))


def _number_hint(kr: KeyResult, field: str) -> str:
    """What to say for text where a number belongs, with an example that fits this measure: its
    own number (the target, for the target), in its unit; a percentage is typed without its sign."""
    value = kr.target if field == "target" else kr.current
    example = f"{value:,.2f}".rstrip("0").rstrip(".")
    if kr.unit == "%":
        return f"Enter a number, like {example}, without the % sign."
    if kr.unit == "days":
        return f"Enter a number of days, like {example}."
    return f"Enter a number, like {example}."


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise NotFound("that measure is not on this plan") from None


@bp.post("/p/<token>/key-results/<kr_id>")
@limiter.limit(_limit_per_ip)
def update_key_result(token: str, kr_id: str) -> Any:
    target = (request.form.get("target") or "").strip() or None

    def apply(session: Session, plan: SuccessPlan) -> None:
        kr = updates.key_result(plan, _int(kr_id))
        try:
            updates.update_key_result(
                session,
                plan,
                kr.id,
                current=request.form.get("current", ""),
                target=target,
                actor=ACTOR,
                channel=CHANNEL,
                now=now(),
            )
        except ValidationFailed as exc:
            raise ValidationFailed(
                {
                    field: _number_hint(kr, field) if message == "must be a number" else message
                    for field, message in exc.errors.items()
                }
            ) from None

    return _change(token, f"kr-{kr_id}"[:40], "kr", apply)


@bp.post("/p/<token>/milestones/<key>/done")
@limiter.limit(_limit_per_ip)
def mark_milestone_done(token: str, key: str) -> Any:
    def apply(session: Session, plan: SuccessPlan) -> None:
        updates.set_milestone_status(
            session,
            plan,
            key,
            MilestoneStatus.ACHIEVED.value,
            actor=ACTOR,
            channel=CHANNEL,
            now=now(),
            customer=True,
        )

    return _change(token, f"m-{key}"[:90], "milestone", apply)


@bp.post("/p/<token>/milestones/<key>/reopen")
@limiter.limit(_limit_per_ip)
def reopen_milestone(token: str, key: str) -> Any:
    """Undo a "Mark done" made by mistake (only the customer's own, made on this page)."""

    def apply(session: Session, plan: SuccessPlan) -> None:
        updates.reopen_milestone(session, plan, key, actor=ACTOR, channel=CHANNEL, now=now())

    return _change(token, f"m-{key}"[:90], "reopened", apply)


@bp.post("/p/<token>/comments")
@limiter.limit(_limit_per_ip)
def add_comment(token: str) -> Any:
    def apply(session: Session, plan: SuccessPlan) -> None:
        # Browsers count a line break as one character against maxlength but send it as CRLF.
        text = request.form.get("comment", "").replace("\r\n", "\n").replace("\x00", "")
        updates.add_comment(session, plan, text, actor=ACTOR, channel=CHANNEL, now=now())

    return _change(token, "comment", "comment", apply)


@bp.post("/p/<token>/review")
@limiter.limit(_limit_per_ip)
def confirm_review(token: str) -> Any:
    def apply(session: Session, plan: SuccessPlan) -> None:
        updates.confirm_review(session, plan, actor=ACTOR, channel=CHANNEL, now=now())

    return _change(token, "review", "review", apply)
