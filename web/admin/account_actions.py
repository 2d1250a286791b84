"""Account 360's actions: re-run rules after reading the trace, enrol/exit, rotate the plan's share
link, add a note; each editors-only, CSRF-checked, and flashed (the page itself: web.admin.accounts)."""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from campaigns.enrollment import enroll_account, exit_account
from engine.automation import rerun_rules
from engine.errors import NotFound, ValidationFailed
from engine.notes import add_note
from engine.plans import updates
from engine.rules.models import published_ruleset
from engine.rules.service import test_account
from web.admin import bp
from web.admin.accounts import Problem, account_or_404, latest_plan, render_account
from web.admin.auth import EDITORS, role_required
from web.admin.nav import account_crumbs
from web.admin.rules_form import trace_in_words
from web.context import db_session, now, unit_of_work


def _actor() -> str:
    return str(current_user.email)


def _refuse(account_id: int, form: str, message: str, status: int) -> Any:
    session = db_session()
    session.rollback()
    typed = {k: v for k, v in request.form.items() if k != "csrf_token"}
    return render_account(account_or_404(session, account_id), Problem(form, message, typed), status)


def _back(account_id: int, anchor: str) -> Any:
    return redirect(url_for("admin.account", account_id=account_id, _anchor=anchor), 303)


@bp.get("/accounts/<int:account_id>/rerun")
@role_required(*EDITORS)
def rerun_preview(account_id: int) -> Any:
    """What re-running the published rules would decide for this account, rule by rule, before
    anything changes; the page's button confirms it."""
    session = db_session()
    account = account_or_404(session, account_id)
    ruleset = published_ruleset(session)
    result = test_account(session, ruleset, account.external_id, now=now()) if ruleset is not None else None
    return render_template(
        "admin/account_rerun.html",
        section="accounts",
        breadcrumbs=account_crumbs(account, ("Re-run rules", None)),
        account=account,
        ruleset=ruleset,
        result=result,
        plan=latest_plan(session, account.id),
        trace=trace_in_words(result.decision) if result else [],
        facts_json=json.dumps(result.facts, indent=2, sort_keys=True, default=str) if result else "",
    )


@bp.post("/accounts/<int:account_id>/rerun")
@role_required(*EDITORS)
def rerun(account_id: int) -> Any:
    session = db_session()
    account = account_or_404(session, account_id)
    if request.form.get("confirm") != "rerun":
        return _refuse(
            account_id, "rules", "Read the trace first, then confirm the re-run on that page.", 400
        )
    if published_ruleset(session) is None:
        return _refuse(account_id, "rules", "No rules are published yet, so there is nothing to re-run.", 409)
    with unit_of_work() as work:
        outcome = rerun_rules(work, account, now=now(), channel="admin")
        actions = sorted({a.type.replace("_", " ") for a in outcome.decision.actions})
        rules = sorted({a.rule for a in outcome.decision.actions})
    if outcome.plan_created:
        flash(f"Rules re-run: a plan was created ({', '.join(actions)} from {', '.join(rules)}).", "ok")
    elif actions:
        flash(
            f"Rules re-run: {', '.join(actions)} from {', '.join(rules)} applied; "
            "what the account already had is unchanged.",
            "ok",
        )
    else:
        flash("Rules re-run: no rule matched, so nothing changed.", "ok")
    return _back(account_id, "plan")


def _campaign_key(account_id: int, form: str) -> str | Any:
    key = request.form.get("campaign", "").strip()
    if not key:
        return _refuse(account_id, form, "Choose a campaign.", 422)
    if len(key) > 80 or "\x00" in key:
        return _refuse(account_id, form, "That is not a campaign key.", 422)
    return key


@bp.post("/accounts/<int:account_id>/enroll")
@role_required(*EDITORS)
def enroll(account_id: int) -> Any:
    account_or_404(db_session(), account_id)
    key = _campaign_key(account_id, "enroll")
    if not isinstance(key, str):
        return key
    try:
        with unit_of_work() as work:
            enrollment, created = enroll_account(
                work, account_id, key, now=now(), reason=f"console: {_actor()}"
            )
            name = enrollment.campaign.name
            paused = enrollment.campaign.paused
    except NotFound:
        return _refuse(account_id, "enroll", f"There is no campaign {key!r}.", 404)
    if paused and not created:
        flash(f"{name} is paused: nobody is enrolled until it is resumed.", "warn")
    elif created:
        flash(f"Enrolled in {name}. The next scheduler tick runs its first step.", "ok")
    else:
        flash(
            f"Already in {name}: the enrolment is unchanged (it can re-enter only when its campaign allows).",
            "warn",
        )
    return _back(account_id, "enrollments")


@bp.post("/accounts/<int:account_id>/exit")
@role_required(*EDITORS)
def exit_campaign(account_id: int) -> Any:
    account_or_404(db_session(), account_id)
    key = _campaign_key(account_id, "exit")
    if not isinstance(key, str):
        return key
    try:
        with unit_of_work() as work:
            exited = exit_account(work, account_id, key, now=now(), reason=f"console: {_actor()}")
    except NotFound:
        return _refuse(account_id, "exit", f"There is no campaign {key!r}.", 404)
    if exited is None:
        flash(f"Not in {key!r} (or already finished): nothing changed.", "warn")
    else:
        flash(f"Exited {exited.campaign.name}. No further steps run for this account.", "ok")
    return _back(account_id, "enrollments")


@bp.post("/accounts/<int:account_id>/share-link")
@role_required(*EDITORS)
def rotate_link(account_id: int) -> Any:
    session = db_session()
    account_or_404(session, account_id)
    if request.form.get("confirm") != "rotate":
        return _refuse(
            account_id, "share", "Confirm that the old link should stop working, then rotate it.", 400
        )
    if latest_plan(session, account_id) is None:
        return _refuse(account_id, "share", "This account has no plan, so there is no link to rotate.", 409)
    with unit_of_work() as work:
        plan = latest_plan(work, account_id)
        assert plan is not None
        updates.rotate_share_link(work, plan, actor=_actor(), now=now())
    flash(
        "New share link made. The old link no longer opens the plan: send the new one to the customer.", "ok"
    )
    return _back(account_id, "plan")


@bp.post("/accounts/<int:account_id>/notes")
@role_required(*EDITORS)
def add_account_note(account_id: int) -> Any:
    session = db_session()
    account = account_or_404(session, account_id)
    try:
        with unit_of_work() as work:
            add_note(work, account, request.form.get("body", ""), author=_actor(), now=now())
    except ValidationFailed as exc:
        # The page puts "Nothing was changed." before it; next to the field it stands alone.
        reason = str(exc.errors.get("body", exc.detail))
        return _refuse(account_id, "note", f"{reason[:1].upper()}{reason[1:]}.", 422)
    flash("Note added.", "ok")
    return _back(account_id, "notes")
