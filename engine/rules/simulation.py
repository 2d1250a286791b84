"""Simulation: run a rule set version and the published one over real accounts and diff what they
would do (per effect and per account). Writes nothing."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.rules.analysis import Finding
from engine.rules.decide import Decision, compile_rules, decide
from engine.rules.facts import load_facts
from engine.rules.models import RuleSet, published_ruleset

SIMULATION_CHUNK = 1_000
MAX_LISTED_CHANGES = 200


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
