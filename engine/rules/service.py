"""Rule sets as CS ops work on them: draft → validate → simulate → publish, history and rollback.

Simulation lives in engine.rules.simulation (re-exported here).

Versions are immutable once published. Ops edit the one draft (a copy of the published rules);
publishing archives the current version and makes the draft live in one transaction; a rollback
publishes a copy of an old version as a new version, so history only ever grows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.accounts import get_account
from engine.db import utcnow
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.rules.actions import check_actions
from engine.rules.analysis import Finding, analyse
from engine.rules.decide import Decision, decide
from engine.rules.facts import load_facts
from engine.rules.logic import InvalidCondition, validate_condition
from engine.rules.models import Rule, RuleSet, RuleSetStatus, published_ruleset
from engine.rules.simulation import AccountChange, EffectChange, Simulation, effects, simulate

MAX_RULES = 500


class StaleRule(Conflict):
    """The rule changed since the editor opened it (another editor saved it first)."""


class RuleInvalid(ValidationFailed):
    """A rule (or a rule set being published) that breaks the rules; errors keyed by JSON pointer."""


class RuleInputSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    priority = fields.Integer(load_default=100, validate=validate.Range(-10_000, 10_000), strict=True)
    condition = fields.Raw(required=True)
    actions = fields.Raw(required=True)
    stop = fields.Boolean(load_default=False)


def rule_errors(session: Session, data: Any) -> dict[str, str]:
    """JSON pointer → message for everything wrong with one rule document ({} when it can be saved)."""
    if not isinstance(data, Mapping):
        return {"": "a rule is a JSON object"}
    try:
        RuleInputSchema().load(data)
        errors: dict[str, str] = {}
    except ValidationError as exc:
        errors = {f"/{name}": _message(msgs) for name, msgs in dict(exc.messages).items()}  # type: ignore[arg-type]
    if "condition" in data:
        errors.update(condition_errors(session, data["condition"], pointer="/condition"))
    if "actions" in data:
        errors.update(check_actions(session, data["actions"], pointer="/actions"))
    return errors


def condition_errors(session: Session, condition: Any, *, pointer: str = "") -> dict[str, str]:
    """Syntax, operators, depth, and every `var` checked against the field catalogue."""
    try:
        from engine.rules.catalogue import catalogue, check_condition
    except ImportError:  # pragma: no cover - the catalogue lands with its own change
        try:
            validate_condition(condition, pointer=pointer)
        except InvalidCondition as exc:
            return {k: str(v) for k, v in exc.errors.items()}
        return {}
    return check_condition(catalogue(session), condition, pointer=pointer)


def _message(messages: Any) -> str:
    if isinstance(messages, list):
        return "; ".join(str(m) for m in messages)
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_message(v)}" for k, v in messages.items())
    return str(messages)


def rule_document(rule: Rule) -> dict[str, Any]:
    """A rule as ops write it (API, YAML playbook, the editor's raw view)."""
    return {
        "name": rule.name,
        "description": rule.description,
        "priority": rule.priority,
        "condition": rule.condition,
        "actions": list(rule.actions),
        "stop": rule.stop_processing,
    }


def _apply_document(rule: Rule, data: Mapping[str, Any]) -> None:
    rule.name = str(data["name"]).strip()
    rule.description = str(data.get("description", ""))
    rule.priority = int(data.get("priority", 100))
    rule.condition = data["condition"]
    rule.actions = list(data["actions"])
    rule.stop_processing = bool(data.get("stop", False))


# -- versions ---------------------------------------------------------------------------------------


def history(session: Session) -> list[RuleSet]:
    return list(session.scalars(select(RuleSet).order_by(RuleSet.version.desc())))


def get_version(session: Session, version: int) -> RuleSet:
    ruleset = session.scalar(select(RuleSet).where(RuleSet.version == version))
    if ruleset is None:
        raise NotFound(f"no rule set version {version}")
    return ruleset


def current_draft(session: Session) -> RuleSet | None:
    return session.scalar(
        select(RuleSet).where(RuleSet.status == RuleSetStatus.DRAFT).order_by(RuleSet.version.desc()).limit(1)
    )


def _next_version(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(RuleSet.version), 0))) or 0) + 1


def _copy_rules(source: RuleSet | None) -> list[Rule]:
    if source is None:
        return []
    copies = []
    for rule in source.rules:
        copy = Rule()
        _apply_document(copy, rule_document(rule))
        copies.append(copy)
    return copies


def start_draft(session: Session, *, user: str | None = None, note: str = "") -> RuleSet:
    """The draft ops edit: the existing one, or a new copy of the published rules."""
    existing = current_draft(session)
    if existing is not None:
        return existing
    source = published_ruleset(session)
    draft = RuleSet(
        version=_next_version(session),
        status=RuleSetStatus.DRAFT,
        note=note,
        created_by=user,
        based_on_version=source.version if source else None,
    )
    draft.rules = _copy_rules(source)
    session.add(draft)
    session.flush()
    return draft


def discard_draft(session: Session, ruleset: RuleSet) -> None:
    _require_draft(ruleset)
    session.delete(ruleset)
    session.flush()


def _require_draft(ruleset: RuleSet) -> None:
    if ruleset.status != RuleSetStatus.DRAFT:
        raise Conflict(
            f"rule set version {ruleset.version} is {ruleset.status.value}: only a draft can change; "
            "start a draft to edit"
        )


def get_rule(ruleset: RuleSet, rule_id: int) -> Rule:
    for rule in ruleset.rules:
        if rule.id == rule_id:
            return rule
    raise NotFound(f"no rule {rule_id} in rule set version {ruleset.version}")


def save_rule(
    session: Session,
    ruleset: RuleSet,
    data: Any,
    *,
    rule_id: int | None = None,
    expected_revision: int | None = None,
) -> Rule:
    """Add (rule_id None) or replace a rule in a draft; rejected with every error's JSON pointer.

    `expected_revision` is the revision the editor started from: if someone saved the rule since,
    StaleRule is raised and nothing changes (the row is locked while checking, so two concurrent
    saves from the same revision cannot both win)."""
    _require_draft(ruleset)
    rule = get_rule(ruleset, rule_id) if rule_id is not None else None
    if rule is not None:
        current = session.execute(
            select(Rule.revision).where(Rule.id == rule.id).with_for_update()
        ).scalar_one()
        if expected_revision is not None and current != expected_revision:
            raise StaleRule(
                f"someone else saved rule {rule.name!r} since you opened it (your copy is revision "
                f"{expected_revision}, the draft has revision {current}); reload it to see their change"
            )
        rule.revision = current + 1
    errors = rule_errors(session, data)
    if not errors:
        name = str(data["name"]).strip()
        if any(other.name == name and other is not rule for other in ruleset.rules):
            errors["/name"] = f"another rule in this draft is already named {name!r}"
        if rule is None and len(ruleset.rules) >= MAX_RULES:
            errors[""] = f"a rule set holds at most {MAX_RULES} rules"
    if errors:
        raise RuleInvalid(errors)
    if rule is None:
        rule = Rule()
        ruleset.rules.append(rule)
    _apply_document(rule, data)
    session.flush()
    return rule


def replace_rules(session: Session, ruleset: RuleSet, documents: Any) -> RuleSet:
    """Replace every rule of a draft at once (the API's PUT); all or nothing."""
    _require_draft(ruleset)
    if not isinstance(documents, list):
        raise RuleInvalid({"/rules": "rules is a list of rule objects"})
    errors: dict[str, str] = {}
    seen: set[str] = set()
    for i, data in enumerate(documents):
        for pointer, message in rule_errors(session, data).items():
            errors[f"/rules/{i}{pointer}"] = message
        name = str(data.get("name", "")).strip() if isinstance(data, Mapping) else ""
        if name and name in seen:
            errors[f"/rules/{i}/name"] = f"two rules are named {name!r}"
        seen.add(name)
    if len(documents) > MAX_RULES:
        errors["/rules"] = f"a rule set holds at most {MAX_RULES} rules"
    if errors:
        raise RuleInvalid(errors)
    ruleset.rules.clear()
    session.flush()
    for data in documents:
        rule = Rule()
        _apply_document(rule, data)
        ruleset.rules.append(rule)
    session.flush()
    return ruleset


def delete_rule(session: Session, ruleset: RuleSet, rule_id: int) -> None:
    _require_draft(ruleset)
    ruleset.rules.remove(get_rule(ruleset, rule_id))
    session.flush()


# -- validation and publishing ----------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything ops should know before publishing: errors block it, findings warn."""

    errors: dict[str, str]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_ruleset(session: Session, ruleset: RuleSet) -> Report:
    errors: dict[str, str] = {}
    names: set[str] = set()
    for i, rule in enumerate(ruleset.rules):
        for pointer, message in rule_errors(session, rule_document(rule)).items():
            errors[f"/rules/{i}{pointer}"] = message
        if rule.name in names:
            errors[f"/rules/{i}/name"] = f"two rules are named {rule.name!r}"
        names.add(rule.name)
    if not ruleset.rules:
        errors["/rules"] = "a rule set needs at least one rule"
    return Report(errors, tuple(analyse(ruleset.specs())))


def publish(session: Session, ruleset: RuleSet, *, user: str | None = None, note: str = "") -> RuleSet:
    """Make a valid draft the live rules, archiving the previous version, in the caller's transaction."""
    locked = session.scalar(select(RuleSet).where(RuleSet.id == ruleset.id).with_for_update())
    if locked is None:
        raise NotFound(f"no rule set version {ruleset.version}")
    _require_draft(locked)
    report = validate_ruleset(session, locked)
    if not report.ok:
        raise RuleInvalid(report.errors, f"version {locked.version} cannot be published: {_first(report)}")
    _archive_published(session)
    locked.status = RuleSetStatus.PUBLISHED
    locked.published_at = utcnow()
    locked.published_by = user
    if note:
        locked.note = note
    session.flush()
    return locked


def rollback(session: Session, version: int, *, user: str | None = None) -> RuleSet:
    """Publish a copy of an earlier version as a new version (history is never rewritten)."""
    source = get_version(session, version)
    if source.status == RuleSetStatus.DRAFT:
        raise Conflict(f"version {version} is a draft; publish it instead of rolling back to it")
    current = published_ruleset(session)
    if current is not None and current.id == source.id:
        raise Conflict(f"version {version} is already the published version")
    _archive_published(session)
    copy = RuleSet(
        version=_next_version(session),
        status=RuleSetStatus.PUBLISHED,
        published_at=utcnow(),
        created_by=user,
        published_by=user,
        based_on_version=version,
        note=f"rollback to version {version}",
    )
    copy.rules = _copy_rules(source)
    session.add(copy)
    session.flush()
    return copy


def _archive_published(session: Session) -> None:
    for live in session.scalars(
        select(RuleSet).where(RuleSet.status == RuleSetStatus.PUBLISHED).with_for_update()
    ):
        live.status = RuleSetStatus.ARCHIVED


def _first(report: Report) -> str:
    pointer, message = next(iter(report.errors.items()))
    return f"{pointer}: {message}"


# -- one account ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountTest:
    account: str
    facts: dict[str, Any]
    decision: Decision
    published: Decision | None = field(default=None)


def test_account(session: Session, ruleset: RuleSet, external_id: str, *, now: dt.datetime) -> AccountTest:
    """Run a version (draft or not) for one real account and return its facts and trace."""
    account = get_account(session, external_id)
    facts = load_facts(session, [account], now)[account.id]
    live = published_ruleset(session)
    published = decide(facts, live.specs()) if live is not None and live.id != ruleset.id else None
    return AccountTest(account.external_id, facts, decide(facts, ruleset.specs()), published)


__all__ = [
    "AccountChange",
    "AccountTest",
    "EffectChange",
    "Report",
    "RuleInvalid",
    "Simulation",
    "effects",
    "simulate",
]
