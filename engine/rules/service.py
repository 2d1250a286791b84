"""Rule sets as CS ops work on them: draft → validate → simulate → publish, history and rollback.

Versions are immutable once published. Ops edit the one draft (a copy of the published rules);
publishing archives the current version and makes the draft live in one transaction; a rollback
publishes a copy of an old version as a new version, so history only ever grows.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.accounts import Account, get_account
from engine.db import utcnow
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.rules.actions import check_actions
from engine.rules.analysis import Finding, analyse
from engine.rules.decide import CompiledRules, Decision, RuleSpec, compile_rules, decide
from engine.rules.facts import load_facts
from engine.rules.logic import InvalidCondition, validate_condition
from engine.rules.models import Rule, RuleSet, RuleSetStatus, published_ruleset

MAX_RULES = 500
SIMULATION_CHUNK = 1_000
MAX_LISTED_CHANGES = 200


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


def save_rule(session: Session, ruleset: RuleSet, data: Any, *, rule_id: int | None = None) -> Rule:
    """Add (rule_id None) or replace a rule in a draft; rejected with every error's JSON pointer."""
    _require_draft(ruleset)
    rule = get_rule(ruleset, rule_id) if rule_id is not None else None
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


# -- simulation -------------------------------------------------------------------------------------


def effects(decision: Decision) -> set[str]:
    """What a decision does, as comparable labels: `create_plan:hire_faster_plan`, `enroll:nurture`."""
    labels = set()
    for action in decision.actions:
        params = dict(action.params)
        names = ("template", "campaign", "key", "tag", "value")
        key = next((str(params[k]) for k in names if k in params), "")
        labels.add(f"{action.type}:{key}")
    return labels


@dataclass(frozen=True)
class EffectChange:
    effect: str
    before: int
    after: int
    gained: int
    lost: int


@dataclass(frozen=True)
class AccountChange:
    external_id: str
    name: str
    gained: tuple[str, ...]
    lost: tuple[str, ...]


@dataclass(frozen=True)
class Simulation:
    version: int
    against_version: int | None
    accounts_total: int
    accounts_evaluated: int
    accounts_changed: int
    effects: tuple[EffectChange, ...]
    changes: tuple[AccountChange, ...]
    conflicts_seen: tuple[Finding, ...]
    elapsed_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "against_version": self.against_version,
            "accounts_total": self.accounts_total,
            "accounts_evaluated": self.accounts_evaluated,
            "accounts_changed": self.accounts_changed,
            "effects": [e.__dict__ for e in self.effects],
            "changes": [
                {"account": c.external_id, "name": c.name, "gained": list(c.gained), "lost": list(c.lost)}
                for c in self.changes
            ],
            "conflicts": [f.to_dict() for f in self.conflicts_seen],
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def simulate(
    session: Session,
    ruleset: RuleSet,
    *,
    now: dt.datetime,
    sample: int | None = 1_000,
    against: RuleSet | None = None,
) -> Simulation:
    """Run `ruleset` and the published version (or `against`) over real accounts and diff them.

    `sample=None` evaluates every account; otherwise a deterministic spread of `sample` accounts.
    Nothing is written.
    """
    started = time.perf_counter()
    baseline = against if against is not None else published_ruleset(session)
    new_rules = compile_rules(ruleset.specs())
    old_rules = compile_rules(baseline.specs()) if baseline is not None else compile_rules([])
    total = int(session.scalar(select(func.count(Account.id))) or 0)
    ids = _sample_ids(session, sample)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    gained: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    changes: list[AccountChange] = []
    changed = 0
    plan_clash: dict[tuple[str, ...], str] = {}
    for start in range(0, len(ids), SIMULATION_CHUNK):
        accounts = list(
            session.scalars(
                select(Account)
                .where(Account.id.in_(ids[start : start + SIMULATION_CHUNK]))
                .order_by(Account.id)
            )
        )
        facts = load_facts(session, accounts, now)
        for account in accounts:
            new = decide(facts[account.id], new_rules)
            old_effects, new_effects = effects(decide(facts[account.id], old_rules)), effects(new)
            before.update(old_effects)
            after.update(new_effects)
            plus, minus = new_effects - old_effects, old_effects - new_effects
            gained.update(plus)
            lost.update(minus)
            templates = new.of_type("create_plan")
            if len({str(a.params.get("template")) for a in templates}) > 1:
                plan_clash.setdefault(tuple(sorted({a.rule for a in templates})), account.external_id)
            if plus or minus:
                changed += 1
                if len(changes) < MAX_LISTED_CHANGES:
                    change = AccountChange(
                        account.external_id, account.name, tuple(sorted(plus)), tuple(sorted(minus))
                    )
                    changes.append(change)
    effect_rows = tuple(
        EffectChange(label, before[label], after[label], gained[label], lost[label])
        for label in sorted(set(before) | set(after))
    )
    clashes = tuple(
        Finding(
            "conflict",
            "warning",
            rules,
            f"account {example!r} matches {len(rules)} rules that create different plans; "
            "only the first (by priority) is created",
        )
        for rules, example in sorted(plan_clash.items())
    )
    return Simulation(
        version=ruleset.version,
        against_version=baseline.version if baseline is not None else None,
        accounts_total=total,
        accounts_evaluated=len(ids),
        accounts_changed=changed,
        effects=effect_rows,
        changes=tuple(changes),
        conflicts_seen=clashes,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


def _sample_ids(session: Session, sample: int | None) -> list[int]:
    query = select(Account.id)
    if sample is not None:
        # A deterministic spread over the whole id range (the same sample on every run).
        query = query.order_by((Account.id * 7919) % 10007, Account.id).limit(max(sample, 0))
    return sorted(session.scalars(query))


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


def compiled(ruleset: RuleSet) -> CompiledRules:
    return compile_rules(ruleset.specs())


def specs_of(documents: Sequence[Mapping[str, Any]]) -> list[RuleSpec]:
    return [
        RuleSpec(
            name=str(d["name"]),
            condition=d["condition"],
            actions=tuple(d["actions"]),
            priority=int(d.get("priority", 100)),
            stop_processing=bool(d.get("stop", False)),
        )
        for d in documents
    ]
