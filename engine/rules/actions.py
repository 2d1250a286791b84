"""What a rule may do, each action's parameters, and the checks that its names exist.

Upper layers check the actions that name their own objects (campaigns for `enroll`/`exit`, content
tags for `assign_content`) through `register_action_check` (docs/adr/0002).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.library import Objective
from engine.plans.models import MAX_MILESTONES, PlanTemplate
from engine.rules.decide import ACTION_TYPES

ActionCheck = Callable[[Session, dict[str, Any]], str | None]
_action_checks: dict[str, ActionCheck] = {}
NAME = fields.String(
    required=True,
    validate=validate.Regexp(
        r"^[a-z][a-z0-9_\-]{0,79}$",
        error="use lower-case letters, digits, '-' and '_', starting with a letter (at most 80 characters)",
    ),
)


def register_action_check(action_type: str, check: ActionCheck) -> None:
    _action_checks[action_type] = check


class _ActionSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(ACTION_TYPES))


class CreatePlan(_ActionSchema):
    template = NAME


class AddObjective(_ActionSchema):
    key = NAME
    baseline = fields.Float(load_default=None, allow_nan=False)
    target = fields.Float(load_default=None, allow_nan=False)
    due_in_days = fields.Integer(load_default=None, validate=validate.Range(1, 3650))


class AddMilestone(_ActionSchema):
    key = NAME
    title = fields.String(required=True, validate=validate.Length(1, 200))
    due_in_days = fields.Integer(required=True, validate=validate.Range(0, 3650))
    owner = fields.String(load_default="customer", validate=validate.OneOf(["customer", "vendor"]))
    criteria = fields.Raw(load_default=None)


class Enroll(_ActionSchema):
    campaign = NAME


class AssignContent(_ActionSchema):
    tag = fields.String(required=True, validate=validate.Length(1, 80))


class TagAccount(_ActionSchema):
    value = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9_\-]{0,59}$",
            error=(
                "use lower-case letters, digits, '-' and '_', starting with a letter or digit "
                "(at most 60 characters)"
            ),
        ),
    )


SCHEMAS: dict[str, type[Schema]] = {
    "create_plan": CreatePlan,
    "add_objective": AddObjective,
    "add_milestone": AddMilestone,
    "enroll": Enroll,
    "exit": Enroll,
    "assign_content": AssignContent,
    "tag_account": TagAccount,
}
ACTION_PARAMS: dict[str, list[str]] = {
    kind: [name for name in schema._declared_fields if name != "type"] for kind, schema in SCHEMAS.items()
}


def check_actions(session: Session, actions: Any, *, pointer: str = "/actions") -> dict[str, str]:
    """JSON pointer → message for every malformed action or one naming something that does not exist.

    Returns {} when every action is well-formed and its template/objective/campaign exists.
    """
    if not isinstance(actions, list) or not actions:
        return {pointer: "a rule needs at least one action"}
    errors: dict[str, str] = {}
    templates: set[str] | None = None
    objectives: set[str] | None = None
    for i, action in enumerate(actions):
        where = f"{pointer}/{i}"
        if not isinstance(action, dict):
            errors[where] = "an action is an object with a `type`"
            continue
        kind = action.get("type")
        if not isinstance(kind, str) or kind not in SCHEMAS:
            errors[f"{where}/type"] = f"unknown action {kind!r}; one of {', '.join(ACTION_TYPES)}"
            continue
        try:
            params = SCHEMAS[kind]().load(action)
        except ValidationError as exc:
            for name, messages in dict(exc.messages).items():  # type: ignore[arg-type]
                errors[f"{where}/{name}"] = _message(messages)
            continue
        if kind == "create_plan":
            templates = templates if templates is not None else set(session.scalars(select(PlanTemplate.key)))
            if params["template"] not in templates:
                errors[f"{where}/template"] = f"no plan template {params['template']!r}"
        elif kind == "add_objective":
            objectives = objectives if objectives is not None else set(session.scalars(select(Objective.key)))
            if params["key"] not in objectives:
                errors[f"{where}/key"] = f"no objective {params['key']!r} in the library"
        elif kind == "add_milestone" and params.get("criteria") is not None:
            from engine.rules.logic import InvalidCondition, validate_condition

            try:
                validate_condition(params["criteria"], pointer=f"{where}/criteria")
            except InvalidCondition as exc:
                errors.update({k: str(v) for k, v in exc.errors.items()})
        check = _action_checks.get(kind)
        problem = check(session, dict(action)) if check is not None else None
        if problem:
            errors[f"{where}/{ACTION_PARAMS[kind][0]}"] = problem
    return errors


def _message(messages: Any) -> str:
    if isinstance(messages, list):
        return "; ".join(str(m) for m in messages)
    return str(messages)


__all__ = ["ACTION_PARAMS", "MAX_MILESTONES", "check_actions", "register_action_check"]
