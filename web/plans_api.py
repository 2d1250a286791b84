"""API v1 for success plans: read an account's plan, update it (KR values, milestones, a comment,
a review), and list plans by state with pagination. Token auth."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, g, jsonify, request
from marshmallow import Schema, fields, validate

from engine.accounts import get_account
from engine.db import MAX_ID
from engine.errors import NotFound, ValidationFailed
from engine.plans import updates
from engine.plans.models import MilestoneStatus, SuccessPlan
from engine.plans.queries import MAX_PER_PAGE, STATES, PlanFilter, plan_page
from engine.plans.service import active_plan
from engine.plans.sharing import plan_token
from engine.plans.views import plan_json
from web.api import load, token_required
from web.context import db_session, json_body, now, settings, unit_of_work

bp = Blueprint("plans_api", __name__)
SMALL = validate.Length(max=10)


def share_url(plan: SuccessPlan) -> str:
    return f"{settings().public_url}/p/{plan_token(settings().secret_key, plan)}"


def _plan_of(external_id: str) -> SuccessPlan:
    session = db_session()
    account = get_account(session, external_id)
    plan = active_plan(session, account.id)
    if plan is None:
        raise NotFound(f"account {external_id!r} has no active plan yet")
    return plan


@bp.get("/api/v1/accounts/<external_id>/plan")
@token_required
def get_plan(external_id: str) -> Any:
    plan = _plan_of(external_id)
    return jsonify(plan_json(plan, share_url=share_url(plan), today=now().date()))


class KeyResultPatch(Schema):
    id = fields.Integer(required=True, strict=True, validate=validate.Range(1, MAX_ID))
    current = fields.Raw(load_default=None)
    target = fields.Raw(load_default=None)
    due_date = fields.Date(load_default=None)


class MilestonePatch(Schema):
    key = fields.String(required=True, validate=validate.Length(1, 80))
    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in MilestoneStatus]))
    due_date = fields.Date(load_default=None)


class PlanPatch(Schema):
    key_results = fields.List(
        fields.Nested(KeyResultPatch), load_default=list, validate=validate.Length(max=10)
    )
    milestones = fields.List(
        fields.Nested(MilestonePatch), load_default=list, validate=validate.Length(max=10)
    )
    comment = fields.String(load_default=None)
    review_confirmed = fields.Boolean(load_default=False)


@bp.patch("/api/v1/accounts/<external_id>/plan")
@token_required
def patch_plan(external_id: str) -> Any:
    """Apply every change in one transaction: all of them, or (on any error) none."""
    body = load(PlanPatch(), json_body())
    actor: str = g.get("api_caller") or "api"
    clock = now()
    with unit_of_work() as session:
        plan = _plan_of(external_id)
        for i, change in enumerate(body["key_results"]):
            try:
                updates.update_key_result(
                    session,
                    plan,
                    change["id"],
                    current=change["current"],
                    target=change["target"],
                    due_date=change["due_date"],
                    actor=actor,
                    channel="api",
                    now=clock,
                )
            except (ValidationFailed, NotFound) as exc:
                raise _at(exc, f"key_results.{i}") from exc
        for i, change in enumerate(body["milestones"]):
            try:
                if change["due_date"] is not None:
                    updates.set_milestone_due(
                        session,
                        plan,
                        change["key"],
                        change["due_date"],
                        actor=actor,
                        channel="api",
                        now=clock,
                    )
                if change["status"] is not None:
                    updates.set_milestone_status(
                        session, plan, change["key"], change["status"], actor=actor, channel="api", now=clock
                    )
            except (ValidationFailed, NotFound) as exc:
                raise _at(exc, f"milestones.{i}") from exc
        if body["comment"] is not None:
            updates.add_comment(session, plan, body["comment"], actor=actor, channel="api", now=clock)
        if body["review_confirmed"]:
            updates.confirm_review(session, plan, actor=actor, channel="api", now=clock)
        document = plan_json(plan, share_url=share_url(plan), today=clock.date())
    return jsonify(document)


def _at(exc: ValidationFailed | NotFound, prefix: str) -> ValidationFailed:
    if isinstance(exc, ValidationFailed):
        return ValidationFailed({f"{prefix}.{k}": v for k, v in exc.errors.items()})
    return ValidationFailed({prefix: exc.detail})


class ListArgs(Schema):
    status = fields.String(load_default="active", validate=validate.OneOf(STATES))
    segment = fields.String(load_default=None, validate=validate.Length(1, 80))
    page = fields.Integer(load_default=1, validate=validate.Range(1, 1_000_000))
    per_page = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PER_PAGE))


@bp.get("/api/v1/plans")
@token_required
def list_plans() -> Any:
    """Plans by state (`behind`, `missed`, `on_track`: any milestone in that status; `review_overdue`),
    newest first, `page`/`per_page` pagination with `total` and `next`."""
    args = load(ListArgs(), dict(request.args))
    clock = now()
    status = args["status"]
    found = plan_page(
        db_session(),
        PlanFilter(state=status, segment=args["segment"]),
        today=clock.date(),
        page=args["page"],
        per_page=args["per_page"],
    )
    query = {"status": status, "page": found.page + 1, "per_page": found.per_page}
    if args["segment"]:
        query["segment"] = args["segment"]
    return jsonify(
        {
            "plans": [
                plan_json(p, share_url=share_url(p), today=clock.date(), revisions=0) for p in found.plans
            ],
            "page": found.page,
            "per_page": found.per_page,
            "total": found.total,
            "next": f"/api/v1/plans?{urlencode(query)}" if found.has_next else None,
        }
    )
