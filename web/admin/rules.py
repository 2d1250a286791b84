"""Rules pages: the published rule set, the draft and its rule editor, validate, simulate, publish,
history, rollback, and testing a version against one account."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers.response import Response as BaseResponse

from engine.errors import Conflict, NorthstarError, NotFound
from engine.rules import TraceEntry, service
from engine.rules.actions import ACTION_PARAMS
from engine.rules.models import Rule, RuleSet, published_ruleset
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.nav import Crumb, breadcrumbs
from web.admin.rules_form import (
    ACTION_LABELS,
    ALL_PARAMS,
    BLANK_ACTIONS,
    PARAM_LABELS,
    ActionRow,
    RuleForm,
    describe,
    describe_action,
    error_at,
    error_summary,
    field_choices,
    known_keys,
    parse_rule_form,
    split_errors,
    trace_in_words,
)
from web.context import db_session, json_body, now, unit_of_work

SAMPLES = {"1000": 1_000, "10000": 10_000, "all": None}
SAMPLE_LABELS = {"1000": "1,000 accounts", "10000": "10,000 accounts", "all": "every account"}
MAX_NOTE = 2000
MAX_ACCOUNT_ID = 200
FINDING_LABELS = {"never_matches": "Never matches", "unreachable": "Unreachable", "conflict": "Conflict"}


@dataclass
class RuleRow:
    """A rule as the lists show it, in evaluation order."""

    rule: Rule
    summary: str
    actions: list[str]
    errors: list[str] = field(default_factory=list)


@dataclass
class AccountCheck:
    """The "test against account" panel's result."""

    account: str
    error: str | None = None
    result: service.AccountTest | None = None
    facts_json: str = ""
    trace: list[TraceEntry] = field(default_factory=list)  # the reasons in words (trace_in_words)
    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    published_matched: dict[str, bool] = field(default_factory=dict)


# -- the published version and the draft ------------------------------------------------------------

HISTORY = "History"


def rules_crumbs(*trail: Crumb) -> list[Crumb]:
    return breadcrumbs(("Rules", url_for("admin.rules")), *trail)


@bp.get("/rules")
@role_required(*ANY_ROLE)
def rules() -> Any:
    session = db_session()
    live = published_ruleset(session)
    return render_template(
        "admin/rules.html",
        section="rules",
        breadcrumbs=breadcrumbs(("Rules", None)),
        live=live,
        rows=_rows(live) if live else [],
        findings=service.validate_ruleset(session, live).findings if live else (),
        draft=service.current_draft(session),
        check=_account_check(session, live) if live else None,
        finding_labels=FINDING_LABELS,
    )


@bp.post("/rules/draft")
@role_required(*EDITORS)
def start_draft() -> Any:
    with unit_of_work() as session:
        draft = service.start_draft(session, user=current_user.email)
        based_on = draft.based_on_version
    flash(
        f"Draft started from version {based_on}." if based_on else "Draft started. Add its first rule.",
        "ok",
    )
    return redirect(url_for("admin.rules_draft"), 303)


@bp.get("/rules/draft")
@role_required(*ANY_ROLE)
def rules_draft() -> Any:
    session = db_session()
    draft = service.current_draft(session)
    if draft is None:
        flash("There is no draft. Start one to change the rules.", "ok")
        return redirect(url_for("admin.rules"), 303)
    return _draft_page(session, draft)


def _draft_page(
    session: Session, draft: RuleSet, *, status: int = 200, publish_errors: Mapping[str, str] | None = None
) -> Any:
    report = service.validate_ruleset(session, draft)
    rows = _rows(draft, report.errors)
    return (
        render_template(
            "admin/rules_draft.html",
            section="rules",
            breadcrumbs=rules_crumbs((f"Draft {draft.version}", None)),
            draft=draft,
            live=published_ruleset(session),
            rows=rows,
            report=report,
            general_errors=[m for p, m in report.errors.items() if p == "/rules"],
            publish_errors=error_summary(_rule_pointers(draft, publish_errors or {})),
            check=_account_check(session, draft),
            samples=SAMPLE_LABELS,
            finding_labels=FINDING_LABELS,
        ),
        status,
    )


def _rows(ruleset: RuleSet, errors: Mapping[str, str] | None = None) -> list[RuleRow]:
    by_index: dict[int, list[str]] = {}
    for pointer, message in (errors or {}).items():
        parts = pointer.split("/")
        if len(parts) >= 3 and parts[1] == "rules" and parts[2].isdigit():
            rest = "/".join(parts[3:])
            by_index.setdefault(int(parts[2]), []).append(f"{rest}: {message}" if rest else message)
    indexed = {rule.id: i for i, rule in enumerate(ruleset.rules)}
    ordered = sorted(ruleset.rules, key=lambda r: (-r.priority, r.name))
    return [
        RuleRow(
            rule,
            describe(rule.condition),
            [describe_action(a) for a in rule.actions if isinstance(a, Mapping)],
            by_index.get(indexed[rule.id], []),
        )
        for rule in ordered
    ]


def _rule_pointers(ruleset: RuleSet, errors: Mapping[str, str]) -> dict[str, str]:
    """`/rules/2/condition` → `/Rule name/condition`, so a summary names the rule, not its index."""
    named = {}
    for pointer, message in errors.items():
        parts = pointer.split("/")
        if (
            len(parts) >= 3
            and parts[1] == "rules"
            and parts[2].isdigit()
            and int(parts[2]) < len(ruleset.rules)
        ):
            name = ruleset.rules[int(parts[2])].name
            named[f"{name}: {'/'.join(parts[3:]) or 'rule'}"] = message
        else:
            named[pointer] = message
    return named


# -- the rule editor --------------------------------------------------------------------------------


@bp.route("/rules/draft/rules/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def new_rule() -> Any:
    session = db_session()
    draft = service.current_draft(session)
    if draft is None:
        return _no_draft()
    if request.method == "GET":
        return _editor_page(session, draft, None, RuleForm(actions=[ActionRow("create_plan")]))
    return _save(session, draft, None)


@bp.route("/rules/draft/rules/<int:rule_id>", methods=["GET", "POST"])
@role_required(*EDITORS)
def edit_rule(rule_id: int) -> Any:
    session = db_session()
    draft = service.current_draft(session)
    if draft is None:
        return _no_draft()
    rule = service.get_rule(draft, rule_id)
    if request.method == "GET":
        return _editor_page(session, draft, rule, RuleForm.from_rule(rule))
    return _save(session, draft, rule)


@bp.post("/rules/draft/rules/<int:rule_id>/delete")
@role_required(*EDITORS)
def delete_rule(rule_id: int) -> Any:
    draft = service.current_draft(db_session())
    if draft is None:
        return _no_draft()
    with unit_of_work() as session:
        name = service.get_rule(draft, rule_id).name
        service.delete_rule(session, draft, rule_id)
    flash(f"Deleted rule {name!r} from the draft.", "ok")
    return redirect(url_for("admin.rules_draft"), 303)


def _save(session: Session, draft: RuleSet, rule: Rule | None) -> Any:
    form, document, errors = parse_rule_form(request.form)
    stale: str | None = None
    expected = request.form.get("revision", type=int) if rule is not None else None
    if not errors:
        try:
            with unit_of_work() as session:
                saved = service.save_rule(
                    session,
                    draft,
                    document,
                    rule_id=rule.id if rule else None,
                    expected_revision=expected,
                )
                name = saved.name
        except service.RuleInvalid as exc:
            errors = {str(k): str(v) for k, v in exc.errors.items()}
        except service.StaleRule as exc:
            stale = exc.detail
        else:
            flash(f"Saved rule {name!r} in the draft. Nothing changes for customers until you publish.", "ok")
            return redirect(url_for("admin.rules_draft"), 303)
    else:
        # Report what the service would say about the rest too, so one save shows every problem.
        for pointer, message in service.rule_errors(db_session(), document).items():
            if not any(pointer == p or pointer.startswith(p + "/") for p in errors):
                errors.setdefault(pointer, message)
    fresh = service.current_draft(db_session())
    if fresh is None:
        return _no_draft()
    current = service.get_rule(fresh, rule.id) if rule is not None else None
    if stale is not None:
        # Keep what this editor typed; the form now carries the current revision, so saving again
        # replaces the other editor's version on purpose.
        return _editor_page(db_session(), fresh, current, form, errors, 409, stale=stale)
    return _editor_page(db_session(), fresh, current, form, errors, 422)


def _editor_page(
    session: Session,
    draft: RuleSet,
    rule: Rule | None,
    form: RuleForm,
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    *,
    stale: str | None = None,
) -> Any:
    condition_errors, other_errors = split_errors(errors or {})
    slots = list(form.actions) + [ActionRow() for _ in range(BLANK_ACTIONS)]
    return (
        render_template(
            "admin/rules_rule.html",
            section="rules",
            breadcrumbs=rules_crumbs(
                (f"Draft {draft.version}", url_for("admin.rules_draft")),
                (rule.name if rule else "New rule", None),
            ),
            draft=draft,
            rule=rule,
            form=form,
            slots=slots,
            first_blank=len(form.actions),
            errors=other_errors,
            condition_errors=condition_errors,
            summary=error_summary(errors or {}),
            stale=stale,
            error_at=error_at,
            fields=field_choices(session),
            keys=known_keys(session),
            action_labels=ACTION_LABELS,
            all_params=ALL_PARAMS,
            param_labels=PARAM_LABELS,
            param_types={p: [t for t, names in ACTION_PARAMS.items() if p in names] for p in ALL_PARAMS},
            blank_action=ActionRow(),
        ),
        status,
    )


def _no_draft() -> BaseResponse:
    flash("There is no draft any more (it was published or discarded). Start a new one to edit.", "warn")
    return redirect(url_for("admin.rules"), 303)


@bp.post("/rules/validate")
@role_required(*EDITORS)
def validate_condition() -> Any:
    """The editor's live check: {errors: {pointer: message}, preview: {...} | null}."""
    try:
        body = json_body()
    except NorthstarError as exc:
        return jsonify(errors={"/condition": exc.detail}, preview=None), 400
    if "condition" not in body:
        return jsonify(errors={"/condition": "send the condition to check"}, preview=None), 400
    session = db_session()
    errors = service.condition_errors(session, body["condition"], pointer="/condition")
    preview = None if errors else _preview(session, body["condition"])
    return jsonify(errors=errors, preview=preview)


def _preview(session: Session, condition: Any) -> dict[str, Any] | None:
    """How many accounts match now, when the SQL preview is available (engine.rules.sql)."""
    try:
        from engine.rules.sql import preview
    except ImportError:
        return None
    try:
        found = preview(session, condition, now=now())
    except NorthstarError as exc:
        return {"text": f"cannot count matches: {exc.detail}", "count": None}
    count, total = int(found.count), int(found.total)
    complete = bool(getattr(found, "complete", True))
    text = f"matches {'at least ' if not complete else ''}{count:,} of {total:,} accounts"
    if found.method == "batched":
        text += " (counted by evaluating accounts in batches" + ("" if complete else ", stopped early") + ")"
    return {
        "count": count,
        "total": total,
        "method": str(found.method),
        "reason": str(found.reason or ""),
        "complete": complete,
        "sample": [str(s) for s in list(found.sample)[:5]],
        "elapsed_ms": round(float(found.elapsed_ms), 1),
        "text": text,
    }


# -- simulate, publish, discard ---------------------------------------------------------------------


@bp.post("/rules/draft/simulate")
@role_required(*EDITORS)
def simulate_draft() -> Any:
    session = db_session()
    draft = service.current_draft(session)
    if draft is None:
        return _no_draft()
    choice = request.form.get("sample", "1000")
    if choice not in SAMPLES:
        abort(400, description=f"Choose a sample size: {', '.join(SAMPLE_LABELS.values())}.")
    result = service.simulate(session, draft, now=now(), sample=SAMPLES[choice])
    session.rollback()  # a simulation reads only; end its transaction
    return render_template(
        "admin/rules_simulate.html",
        section="rules",
        breadcrumbs=rules_crumbs(
            (f"Draft {draft.version}", url_for("admin.rules_draft")), ("Simulation", None)
        ),
        draft=draft,
        sim=result,
        sample=choice,
        samples=SAMPLE_LABELS,
    )


@bp.post("/rules/draft/publish")
@role_required(*EDITORS)
def publish_draft() -> Any:
    session = db_session()
    draft = service.current_draft(session)
    if draft is None:
        return _no_draft()
    note = request.form.get("note", "").replace("\x00", "").strip()[:MAX_NOTE]
    try:
        with unit_of_work() as session:
            published = service.publish(session, draft, user=current_user.email, note=note)
            version = published.version
    except service.RuleInvalid as exc:
        fresh = service.current_draft(db_session())
        if fresh is None:
            return _no_draft()
        flash("Nothing was published: fix the problems below first.", "warn")
        return _draft_page(db_session(), fresh, status=422, publish_errors=exc.errors)
    except Conflict as exc:
        flash(f"Nothing was published: {exc.detail}.", "warn")
        return redirect(url_for("admin.rules"), 303)
    flash(f"Published version {version}. New decisions use it from now on.", "ok")
    return redirect(url_for("admin.rules"), 303)


@bp.post("/rules/draft/discard")
@role_required(*EDITORS)
def discard_draft_rules() -> Any:
    draft = service.current_draft(db_session())
    if draft is None:
        return _no_draft()
    with unit_of_work() as session:
        service.discard_draft(session, draft)
    flash("Draft discarded. The published rules are unchanged.", "ok")
    return redirect(url_for("admin.rules"), 303)


# -- history and rollback ---------------------------------------------------------------------------


@bp.get("/rules/history")
@role_required(*ANY_ROLE)
def rules_history() -> Any:
    session = db_session()
    return render_template(
        "admin/rules_history.html",
        section="rules",
        breadcrumbs=rules_crumbs((HISTORY, None)),
        versions=service.history(session),
    )


@bp.get("/rules/versions/<int:version>")
@role_required(*ANY_ROLE)
def rules_version(version: int) -> Any:
    session = db_session()
    ruleset = service.get_version(session, version)
    return render_template(
        "admin/rules_version.html",
        section="rules",
        breadcrumbs=rules_crumbs(
            (HISTORY, url_for("admin.rules_history")), (f"Version {ruleset.version}", None)
        ),
        ruleset=ruleset,
        rows=_rows(ruleset),
        findings=service.validate_ruleset(session, ruleset).findings,
        check=_account_check(session, ruleset),
        finding_labels=FINDING_LABELS,
    )


@bp.post("/rules/versions/<int:version>/rollback")
@role_required(*EDITORS)
def rollback_rules(version: int) -> Any:
    try:
        with unit_of_work() as session:
            copy = service.rollback(session, version, user=current_user.email)
            number = copy.version
    except Conflict as exc:
        flash(f"Nothing was rolled back: {exc.detail}.", "warn")
        return redirect(url_for("admin.rules_history"), 303)
    flash(f"Rolled back: version {number} is a copy of version {version} and is live now.", "ok")
    return redirect(url_for("admin.rules"), 303)


# -- one account ------------------------------------------------------------------------------------


def _account_check(session: Session, ruleset: RuleSet) -> AccountCheck | None:
    """The panel's result when the page was asked about an account (`?account=acme`)."""
    external_id = request.args.get("account", "").strip()
    if not external_id:
        return None
    if len(external_id) > MAX_ACCOUNT_ID or not external_id.isprintable():
        return AccountCheck(external_id[:80], error="That is not an account id.")
    try:
        result = service.test_account(session, ruleset, external_id, now=now())
    except NotFound:
        return AccountCheck(external_id, error=f"There is no account with the id {external_id!r}.")
    check = AccountCheck(
        external_id,
        result=result,
        facts_json=json.dumps(result.facts, indent=2, ensure_ascii=False, sort_keys=True, default=str),
        trace=trace_in_words(result.decision),
    )
    if result.published is not None:
        mine, theirs = service.effects(result.decision), service.effects(result.published)
        check.gained, check.lost = sorted(mine - theirs), sorted(theirs - mine)
        check.published_matched = {entry.rule: entry.matched for entry in result.published.trace}
    return check
