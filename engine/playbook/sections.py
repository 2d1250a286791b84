"""The playbook sections engine owns: outcomes, objectives, event types, plan templates, rules."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts import TraitDefinition, TraitType
from engine.db import utcnow
from engine.errors import ValidationFailed
from engine.events.models import EventType
from engine.library import Objective, Outcome, below_least
from engine.plans.models import LIFECYCLE_STAGES, MAX_MEASURES, MAX_MILESTONES, PlanTemplate
from engine.playbook.loader import Section, register_section
from engine.rules.actions import check_actions
from engine.rules.decide import ACTION_TYPES
from engine.rules.logic import InvalidCondition, validate_condition
from engine.rules.models import Rule, RuleSet, RuleSetStatus, published_ruleset
from engine.rules.service import condition_errors, rule_document

# Said in full: marshmallow's own "String does not match expected pattern." tells no one what to type.
KEY_RULE = "use lower-case letters, digits, '-' and '_', starting with a letter (at most 80 characters)"
KEY_PATTERN = validate.Regexp(r"^[a-z][a-z0-9_\-]{0,79}$", error=KEY_RULE)
KEY = fields.String(required=True, validate=KEY_PATTERN)


class JsonLogic(fields.Raw):
    """A JSON Logic condition, checked with the engine before it is stored."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            validate_condition(value)
        except InvalidCondition as exc:
            raise ValidationError("; ".join(f"{p or '/'}: {m}" for p, m in exc.errors.items())) from exc
        return value


class OutcomeSchema(Schema):
    key = KEY
    title = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="")


class ObjectiveSchema(Schema):
    key = KEY
    outcome = fields.String(required=True)
    title = fields.String(required=True, validate=validate.Length(1, 200))
    metric = fields.String(required=True, validate=validate.Length(1, 200))
    unit = fields.String(required=True, validate=validate.Length(1, 40))
    baseline = fields.Float(required=True)
    target = fields.Float(required=True)
    days = fields.Integer(required=True, validate=validate.Range(1, 3650))

    @validates_schema
    def _target_moves(self, data: dict[str, Any], **_: Any) -> None:
        if data["baseline"] == data["target"]:
            raise ValidationError("target must differ from baseline", "target")
        for name in ("baseline", "target"):
            if why := below_least(data[name], data["unit"]):
                raise ValidationError(why, name)


class EventTypeSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_.\-]{0,119}$",
            error="use lower-case letters, digits, '.', '-' and '_', starting with a letter (at most 120)",
        ),
    )
    description = fields.String(load_default="")


class MilestoneSpecSchema(Schema):
    key = KEY
    title = fields.String(required=True, validate=validate.Length(1, 200))
    due_days = fields.Integer(required=True, validate=validate.Range(0, 3650))
    owner = fields.String(load_default="customer", validate=validate.OneOf(["customer", "vendor"]))
    criteria = JsonLogic(load_default=None)
    # Due `due_days` after this earlier milestone is due (a dependency), not after the plan start.
    after = fields.String(load_default=None, validate=validate.Length(1, 80))


class DependencySchema(Schema):
    owner = fields.String(required=True, validate=validate.OneOf(["customer", "vendor"]))
    text = fields.String(required=True)


class RiskSchema(Schema):
    text = fields.String(required=True)
    likelihood = fields.String(load_default="medium", validate=validate.OneOf(["low", "medium", "high"]))
    impact = fields.String(load_default="medium", validate=validate.OneOf(["low", "medium", "high"]))


class PlanTemplateSchema(Schema):
    key = KEY
    name = fields.String(required=True, validate=validate.Length(1, 200))
    goal = fields.String(required=True)
    default_objectives = fields.List(
        fields.String(), load_default=list, validate=validate.Length(max=MAX_MEASURES)
    )
    review_days = fields.Integer(load_default=90, validate=validate.Range(7, 730))
    milestones = fields.List(
        fields.Nested(MilestoneSpecSchema),
        load_default=list,
        validate=validate.Length(max=MAX_MILESTONES),
    )
    dependencies = fields.List(fields.Nested(DependencySchema), load_default=list)
    risks = fields.List(fields.Nested(RiskSchema), load_default=list)
    stage = fields.String(load_default=None, validate=validate.OneOf(LIFECYCLE_STAGES))

    @validates_schema
    def _milestones_in_dependency_order(self, data: dict[str, Any], **_: Any) -> None:
        seen: set[str] = set()
        for i, milestone in enumerate(data.get("milestones", [])):
            after = milestone.get("after")
            if after is not None and after not in seen:
                raise ValidationError(
                    {i: {"after": [f"{after!r} is not an earlier milestone of this template"]}}, "milestones"
                )
            seen.add(milestone["key"])


class ActionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    type = fields.String(required=True, validate=validate.OneOf(ACTION_TYPES))


class RuleSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="")
    priority = fields.Integer(load_default=100, validate=validate.Range(-1_000_000, 1_000_000))
    condition = JsonLogic(required=True)
    actions = fields.List(fields.Dict(), required=True, validate=validate.Length(min=1))
    stop = fields.Boolean(load_default=False)

    @validates_schema
    def _actions_have_types(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[int, Any] = {}
        for i, action in enumerate(data.get("actions", [])):
            try:
                ActionSchema().load(action)
            except ValidationError as exc:
                errors[i] = exc.messages
        if errors:
            raise ValidationError(errors, "actions")


def _load_outcomes(session: Session, items: list[dict[str, Any]]) -> int:
    for item in items:
        outcome = session.get(Outcome, item["key"]) or Outcome(key=item["key"])
        outcome.title, outcome.description = item["title"], item["description"]
        session.add(outcome)
    return len(items)


def _load_objectives(session: Session, items: list[dict[str, Any]]) -> int:
    session.flush()
    known = set(session.scalars(select(Outcome.key)))
    for i, item in enumerate(items):
        if item["outcome"] not in known:
            raise ValidationFailed({f"objectives[{i}].outcome": f"unknown outcome {item['outcome']!r}"})
        objective = session.get(Objective, item["key"]) or Objective(key=item["key"])
        objective.outcome_key = item["outcome"]
        objective.title, objective.metric, objective.unit = (
            item["title"],
            item["metric"],
            item["unit"],
        )
        objective.default_baseline, objective.default_target = item["baseline"], item["target"]
        objective.default_days = item["days"]
        session.add(objective)
    return len(items)


def _load_event_types(session: Session, items: list[dict[str, Any]]) -> int:
    for item in items:
        event_type = session.get(EventType, item["name"]) or EventType(name=item["name"])
        event_type.description = item["description"]
        session.add(event_type)
    return len(items)


def _load_plan_templates(session: Session, items: list[dict[str, Any]]) -> int:
    session.flush()
    objectives = set(session.scalars(select(Objective.key)))
    for i, item in enumerate(items):
        missing = [k for k in item["default_objectives"] if k not in objectives]
        if missing:
            raise ValidationFailed(
                {f"plan_templates[{i}].default_objectives": f"unknown objectives: {', '.join(missing)}"}
            )
        template = session.scalar(select(PlanTemplate).where(PlanTemplate.key == item["key"]))
        if template is None:
            template = PlanTemplate(key=item["key"])
            session.add(template)
        template.name, template.goal = item["name"], item["goal"]
        template.default_objectives = item["default_objectives"]
        template.review_days = item["review_days"]
        template.milestones = item["milestones"]
        template.dependencies = item["dependencies"]
        template.risks = item["risks"]
        template.stage = item["stage"]
    return len(items)


def _rule_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": item["name"],
        "description": item.get("description", ""),
        "priority": item["priority"],
        "condition": item["condition"],
        "actions": item["actions"],
        "stop_processing": item["stop"],
    }


def _load_rules(session: Session, items: list[dict[str, Any]]) -> int:
    """Publish the playbook's rules as a new ruleset version, unless identical to the published one."""
    session.flush()
    errors: dict[str, str] = {}
    names: set[str] = set()
    for i, item in enumerate(items):
        for pointer, message in check_actions(session, item["actions"], pointer="").items():
            j, _, param = pointer.lstrip("/").partition("/")
            errors[f"rules[{i}].actions[{j}]" + (f".{param}" if param else "")] = message
        # Every field a condition reads must be in the catalogue (loaded by the sections above).
        for pointer, message in condition_errors(session, item["condition"]).items():
            errors[f"rules[{i}].condition{pointer}"] = message
        if item["name"] in names:
            errors[f"rules[{i}].name"] = f"two rules are named {item['name']!r}"
        names.add(item["name"])
    if errors:
        raise ValidationFailed(errors)
    wanted = [_rule_row(item) for item in items]
    current = published_ruleset(session)
    if current is not None:
        existing = [_rule_row(rule_document(r)) for r in current.rules]
        if existing == wanted:
            return 0
        current.status = RuleSetStatus.ARCHIVED
    latest = session.scalar(select(RuleSet.version).order_by(RuleSet.version.desc()).limit(1)) or 0
    ruleset = RuleSet(version=latest + 1, status=RuleSetStatus.PUBLISHED, published_at=utcnow())
    ruleset.rules = [Rule(**row) for row in wanted]
    session.add(ruleset)
    return len(items)


class TraitSchema(Schema):
    key = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,79}$",
            error="use lower-case letters, digits and '_', starting with a letter (at most 80 characters)",
        ),
    )
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in TraitType]))
    description = fields.String(load_default="")


def _load_traits(session: Session, items: list[dict[str, Any]]) -> int:
    for item in items:
        trait = session.get(TraitDefinition, item["key"]) or TraitDefinition(key=item["key"])
        trait.type, trait.description = TraitType(item["type"]), item["description"]
        session.add(trait)
    return len(items)


def _dump_traits(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(TraitDefinition).order_by(TraitDefinition.key))
    return [{"key": t.key, "type": t.type.value, "description": t.description} for t in rows]


def _dump_outcomes(session: Session) -> list[dict[str, Any]]:
    return [o.item() for o in session.scalars(select(Outcome).order_by(Outcome.key))]


def _dump_objectives(session: Session) -> list[dict[str, Any]]:
    return [o.item() for o in session.scalars(select(Objective).order_by(Objective.key))]


def _dump_event_types(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(EventType).order_by(EventType.name))
    return [{"name": e.name, "description": e.description} for e in rows]


def _dump_plan_templates(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(PlanTemplate).order_by(PlanTemplate.id))
    return [
        {
            "key": t.key,
            "name": t.name,
            "goal": t.goal,
            "default_objectives": list(t.default_objectives),
            "review_days": t.review_days,
            "milestones": list(t.milestones),
            "dependencies": list(t.dependencies),
            "risks": list(t.risks),
            "stage": t.stage,
        }
        for t in rows
    ]


def _dump_rules(session: Session) -> list[dict[str, Any]]:
    """The published rules (a draft is work in progress and stays in its workspace)."""
    ruleset = published_ruleset(session)
    if ruleset is None:
        return []
    return [rule_document(r) for r in ruleset.rules]


def register() -> None:
    register_section(Section("traits", 5, TraitSchema, _load_traits, _dump_traits))
    register_section(Section("outcomes", 10, OutcomeSchema, _load_outcomes, _dump_outcomes))
    register_section(Section("objectives", 11, ObjectiveSchema, _load_objectives, _dump_objectives))
    register_section(Section("event_types", 12, EventTypeSchema, _load_event_types, _dump_event_types))
    register_section(
        Section("plan_templates", 20, PlanTemplateSchema, _load_plan_templates, _dump_plan_templates)
    )
    # Rules load last: their actions name templates, campaigns and content from other sections.
    register_section(Section("rules", 90, RuleSchema, _load_rules, _dump_rules))
