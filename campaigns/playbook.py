"""The `campaigns` playbook section: campaigns as ordered steps, checked before they are stored."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, CampaignVersion, Step, StepKind
from content.models import ContentItem, MessageTemplate
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.plans.models import PlanTemplate
from engine.playbook.sections import KEY_PATTERN, JsonLogic
from surveys.links import one_click_question

ROLES = ("exec_sponsor", "champion", "power_user", "other")


TRIGGERS = (
    "rule",
    "milestone_due_soon",
    "milestone_slipped",
    "milestone_achieved",
    "kr_stalled",
    "review_near",
)
STEP_KEY = KEY_PATTERN
# "an email step", not "a email step"
STEP_NAMES = {
    "email": "an email step",
    "in_app": "an in-app step",
    "wait": "a wait step",
    "branch": "a branch step",
}


class StepSchema(Schema):
    key = fields.String(load_default=None, validate=STEP_KEY)
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in StepKind]))
    template = fields.String(load_default=None)
    to = fields.List(fields.String(validate=validate.OneOf(ROLES)), load_default=list)
    content = fields.List(fields.String(), load_default=list)
    days = fields.Float(load_default=None, validate=validate.Range(min=0, max=3650))
    # wait_until: one of `milestone` (achieved; or, with days_before_due, N days before it is due),
    # `event` (happens `count` times after the step starts) or `kr` (its current value reaches
    # `reaches`, a number or "target"); `timeout_days` bounds the wait, `on_timeout` names the step
    # to go to when it times out (default: the next one).
    milestone = fields.String(load_default=None)
    days_before_due = fields.Integer(load_default=None, validate=validate.Range(min=0, max=365))
    event = fields.String(load_default=None)
    count = fields.Integer(load_default=None, validate=validate.Range(min=1, max=1_000_000))
    kr = fields.String(load_default=None)
    reaches = fields.Raw(load_default=None)
    timeout_days = fields.Float(load_default=None, validate=validate.Range(min=0, max=3650))
    on_timeout = fields.String(load_default=None, validate=STEP_KEY)
    # branch: `condition` (JSON Logic over the rules' facts) → `then` (default: next step) or `else`
    # (a step key, or "exit").
    condition = JsonLogic(load_default=None)
    then = fields.String(load_default=None, validate=STEP_KEY)
    else_ = fields.String(data_key="else", load_default=None, validate=STEP_KEY)
    # An email step may invite to a survey: its template gets `survey.options`, one signed link each.
    survey = fields.String(load_default=None)
    # An email step may add the top recommended item for the plan's next milestone (content.recommend):
    # it leads the template's `content` list and is `recommended` in the template.
    recommend = fields.String(load_default=None, validate=validate.OneOf(["next_milestone"]))

    @post_load
    def _else_key(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["else"] = data.pop("else_", None)  # loaded under its YAML name, so it dumps back as `else`
        return data

    @validates_schema
    def _kind_needs(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["kind"]
        needs = {"email": ("template",), "in_app": ("template",), "wait": ("days",), "branch": ("condition",)}
        missing = {
            name: f"required for {STEP_NAMES[kind]}" for name in needs.get(kind, ()) if data.get(name) is None
        }
        if kind == "wait_until":
            targets = [name for name in ("milestone", "event", "kr") if data.get(name)]
            if len(targets) != 1:
                missing["milestone"] = "a wait_until step waits for exactly one of: milestone, event, kr"
            elif data.get("timeout_days") is None and data.get("days_before_due") is None:
                missing["timeout_days"] = "required for a wait_until step (how long to wait at most)"
            if data.get("days_before_due") is not None and not data.get("milestone"):
                missing["days_before_due"] = "only with `milestone`"
            if data.get("kr") and data.get("reaches") is None:
                missing["reaches"] = 'a number, or "target"'
            reaches = data.get("reaches")
            if (
                reaches is not None
                and reaches != "target"
                and (isinstance(reaches, bool) or not isinstance(reaches, int | float))
            ):
                missing["reaches"] = 'a number, or "target"'
        if data.get("recommend") and kind != "email":
            missing["recommend"] = "only email steps can recommend content"
        if missing:
            raise ValidationError(missing)


class TriggerSchema(Schema):
    # `signal`, not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    signal = fields.String(load_default="rule", validate=validate.OneOf(TRIGGERS))
    days = fields.Integer(load_default=None, validate=validate.Range(min=0, max=365))
    milestone = fields.String(load_default=None)


class ExitSchema(Schema):
    plan_completed = fields.Boolean(load_default=True)
    segments = fields.List(fields.String(), load_default=None)
    condition = JsonLogic(load_default=None)


class WindowSchema(Schema):
    start_hour = fields.Integer(load_default=8, validate=validate.Range(0, 23))
    end_hour = fields.Integer(load_default=20, validate=validate.Range(1, 24))
    weekdays_only = fields.Boolean(load_default=False)


class CampaignSchema(Schema):
    key = fields.String(required=True, validate=STEP_KEY)  # the same rule as a step's key
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="")
    steps = fields.List(fields.Nested(StepSchema), required=True, validate=validate.Length(1, 50))
    # How accounts enter: by a rule's `enroll` action (default) or a plan signal.
    trigger = fields.Nested(TriggerSchema, load_default=None)
    exit_when = fields.Nested(ExitSchema, load_default=None)
    reentry_days = fields.Integer(load_default=None, validate=validate.Range(min=1, max=3650))
    holdout_percent = fields.Integer(load_default=0, validate=validate.Range(0, 50))
    category = fields.String(
        load_default="nurture",
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,39}$",
            error="use lower-case letters, digits and '_', starting with a letter (at most 40 characters)",
        ),
    )
    # How the preference page names the category (campaigns.preferences has defaults).
    category_label = fields.String(load_default=None, validate=validate.Length(1, 80))
    category_description = fields.String(load_default=None, validate=validate.Length(1, 200))
    send_window = fields.Nested(WindowSchema, load_default=None)
    caps = fields.Boolean(load_default=True)  # false: never held back by frequency caps (still counted)

    @validates_schema
    def _flow(self, data: dict[str, Any], **_: Any) -> None:
        errors = flow_errors(data["steps"])
        if errors:
            raise ValidationError(errors, "steps")


SETTINGS = (
    "trigger",
    "exit_when",
    "reentry_days",
    "holdout_percent",
    "category",
    "category_label",
    "category_description",
    "send_window",
    "caps",
)


def step_keys(steps: list[dict[str, Any]]) -> list[str]:
    return [step.get("key") or f"step-{j + 1}" for j, step in enumerate(steps)]


def successors(steps: list[dict[str, Any]], index: int, keys: list[str]) -> list[str | None]:
    """Where a step can go next (None: the end of the campaign)."""
    step = steps[index]
    following = keys[index + 1] if index + 1 < len(keys) else None
    kind = step["kind"]
    if kind == "exit":
        return []
    if kind == "branch":
        then = step.get("then") or following
        other = step.get("else_") or step.get("else")
        return [then, None if other == "exit" else (other or following)]
    if kind == "wait_until" and step.get("on_timeout"):
        return [following, step["on_timeout"]]
    return [following]


def flow_errors(steps: list[dict[str, Any]]) -> dict[int, dict[str, list[str]]]:
    """Unknown or backward targets (a loop would never end), duplicate keys, unreachable steps."""
    keys = step_keys(steps)
    position = {key: i for i, key in enumerate(keys)}
    errors: dict[int, dict[str, list[str]]] = {}
    for i, key in enumerate(keys):
        if keys.count(key) > 1:
            errors.setdefault(i, {})["key"] = [f"two steps are named {key!r}"]
    for i, step in enumerate(steps):
        for name in ("then", "else", "else_", "on_timeout"):
            target = step.get(name)
            if not target or (name in ("else", "else_") and target == "exit"):
                continue
            label = "else" if name == "else_" else name
            if target not in position:
                errors.setdefault(i, {})[label] = [f"no step {target!r} in this campaign"]
            elif position[target] <= i:
                errors.setdefault(i, {})[label] = [
                    f"goes back to {target!r}: campaigns only move forward (a loop would never end)"
                ]
    if errors:
        return errors
    reached = {0}
    for i in range(len(steps)):
        if i in reached:
            reached.update(position[t] for t in successors(steps, i, keys) if t is not None)
    for i in range(len(steps)):
        if i not in reached:
            errors.setdefault(i, {})["kind"] = [
                f"step {keys[i]!r} can never be reached (an exit or a branch skips it)"
            ]
    return errors


def _config(step: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in step.items() if k not in ("key", "kind") and v not in (None, [])}
    if "else_" in config:
        config["else"] = config.pop("else_")
    return config


def campaign_settings(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in SETTINGS if item.get(name) is not None}


def _check_references(session: Session, index: int, steps: list[dict[str, Any]]) -> None:
    templates: dict[str, str] = {
        key: kind for key, kind in session.execute(select(MessageTemplate.key, MessageTemplate.kind))
    }
    content = set(session.scalars(select(ContentItem.key)))
    milestones = {m["key"] for t in session.scalars(select(PlanTemplate)) for m in t.milestones}
    errors: dict[str, str] = {}
    for j, step in enumerate(steps):
        where = f"campaigns[{index}].steps[{j}]"
        if step.get("template") and step["template"] not in templates:
            errors[f"{where}.template"] = f"unknown template {step['template']!r}"
        elif (
            step.get("template")
            and step["kind"] in ("email", "in_app")
            and templates[step["template"]] != step["kind"]
        ):
            errors[f"{where}.template"] = (
                f"template {step['template']!r} is an {templates[step['template']]} template; "
                f"{step['kind']} steps need an {step['kind']} template"
            )
        for key in step.get("content") or []:
            if key not in content:
                errors[f"{where}.content"] = f"unknown content item {key!r}"
        if step.get("milestone") and step["milestone"] not in milestones:
            errors[f"{where}.milestone"] = f"no plan template has a milestone {step['milestone']!r}"
        if step.get("survey"):
            if step["kind"] != "email":
                errors[f"{where}.survey"] = "only email steps can carry a survey"
            else:
                try:
                    one_click_question(session, step["survey"])
                except (NotFound, ValidationFailed) as exc:
                    errors[f"{where}.survey"] = exc.detail.removeprefix("survey: ")
        elif step.get("template") in templates and _uses_survey(session, step["template"]):
            errors[f"{where}.survey"] = f"template {step['template']!r} uses survey.*: name the survey here"
    if errors:
        raise ValidationFailed(errors)


def _uses_survey(session: Session, template_key: str) -> bool:
    """Whether the template uses `survey.*` (inside a Jinja tag) in any of its locales: a contact
    in any locale may get that one, so the step must name the survey."""
    bodies = session.scalars(select(MessageTemplate.body).where(MessageTemplate.key == template_key))
    return any(re.search(r"\{[{%][^}]*\bsurvey\b", body or "") is not None for body in bodies)


def load_campaigns(session: Session, items: list[dict[str, Any]]) -> int:
    """Create campaigns, or publish a new version of one whose steps or settings changed (running
    enrolments stay on the version they started)."""
    session.flush()
    now = utcnow()
    for i, item in enumerate(items):
        _check_references(session, i, item["steps"])
        campaign = session.scalar(select(Campaign).where(Campaign.key == item["key"]))
        keys = step_keys(item["steps"])
        wanted = [
            (key, StepKind(step["kind"]), _config(step))
            for key, step in zip(keys, item["steps"], strict=True)
        ]
        settings = campaign_settings(item)
        if campaign is None:
            campaign = Campaign(key=item["key"], name=item["name"], version=0)
            session.add(campaign)
        else:
            current = [(s.key, s.kind, s.config) for s in campaign.steps]
            if current == wanted and current_settings(campaign) == settings:
                campaign.name, campaign.description = item["name"], item["description"]
                continue
        campaign.name, campaign.description = item["name"], item["description"]
        publish_version(session, campaign, wanted, settings, now=now)
    return len(items)


def publish_version(
    session: Session,
    campaign: Campaign,
    steps: list[tuple[str, StepKind, dict[str, Any]]],
    settings: dict[str, Any],
    *,
    now: dt.datetime,
    note: str = "",
) -> CampaignVersion:
    """A new version: its steps and settings; new enrolments run it, running ones keep theirs."""
    version = campaign.version + 1
    campaign.all_steps.extend(
        Step(version=version, position=j, key=key, kind=kind, config=config)
        for j, (key, kind, config) in enumerate(steps)
    )
    row = CampaignVersion(version=version, settings=settings, note=note, created_at=now, published_at=now)
    campaign.versions.append(row)
    campaign.version = version
    session.flush()
    session.expire(campaign, ["steps"])
    return row


def current_settings(campaign: Campaign) -> dict[str, Any]:
    for row in campaign.versions:
        if row.version == campaign.version:
            return dict(row.settings)
    return {}


def dump_campaigns(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(Campaign).order_by(Campaign.id))
    return [
        {
            "key": c.key,
            "name": c.name,
            "description": c.description,
            "steps": [{"key": s.key, "kind": s.kind.value, **s.config} for s in c.steps],
            **current_settings(c),
        }
        for c in rows
    ]


def check_enroll_action(session: Session, action: dict[str, Any]) -> str | None:
    session.flush()
    key = action.get("campaign")
    if not key or session.scalar(select(Campaign.id).where(Campaign.key == key)) is None:
        return f"no campaign {key!r}"
    return None
