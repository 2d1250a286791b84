"""The published rules, compiled once per process and keyed by what the database says is published.

Every decision asks the database which rule set is published (one small query: its id, version,
publish time, and its rules' count, highest id and revision sum); the compiled rules for that key
are kept in memory. A publish or a rollback in any process changes the answer, so every gunicorn
worker uses the new rules from its next decision on, with no TTL and no cross-process message. A
published rule set never changes (only drafts are edited); the rules' fingerprint would show it if
one did.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.rules.decide import CompiledRules, compile_rules
from engine.rules.models import Rule, RuleSet, RuleSetStatus

MAX_ENTRIES = 16
RulesKey = tuple[str, int, int, dt.datetime | None, int, int, int]
_compiled: dict[RulesKey, CompiledRules] = {}
_lock = threading.Lock()


def _key_statement() -> Select[int, int, dt.datetime | None, int, int, int]:
    return (
        select(
            RuleSet.id,
            RuleSet.version,
            RuleSet.published_at,
            func.count(Rule.id),
            func.coalesce(func.max(Rule.id), 0),
            func.coalesce(func.sum(Rule.revision), 0),
        )
        .outerjoin(Rule, Rule.ruleset_id == RuleSet.id)
        .where(RuleSet.status == RuleSetStatus.PUBLISHED)
        .group_by(RuleSet.id, RuleSet.version, RuleSet.published_at)
        .order_by(RuleSet.version.desc())
        .limit(1)
    )


_KEY = _key_statement()


_PINNED = "northstar.pinned_rules"


@contextmanager
def pinned(session: Session) -> Iterator[CompiledRules | None]:
    """Within the block, every decision in `session` uses the rules published as it began: one
    key query for a batch of decisions (the `rules` job) instead of one each. A publish meanwhile
    applies from the next block on."""
    rules = published_rules(session)
    session.info[_PINNED] = rules
    try:
        yield rules
    finally:
        session.info.pop(_PINNED, None)


def published_rules(session: Session) -> CompiledRules | None:
    """The published rule set, compiled (None when nothing is published)."""
    if _PINNED in session.info:
        pinned_rules: CompiledRules | None = session.info[_PINNED]
        return pinned_rules
    row = session.execute(_KEY).first()
    if row is None:
        return None
    ruleset_id, version, published_at, count, last_rule, revisions = row
    database = str(session.get_bind().engine.url)
    key: RulesKey = (database, ruleset_id, version, published_at, int(count), int(last_rule), int(revisions))
    with _lock:
        hit = _compiled.get(key)
    if hit is not None:
        return hit
    rules = session.scalars(select(Rule).where(Rule.ruleset_id == ruleset_id).order_by(Rule.id)).all()
    compiled = compile_rules([rule.spec() for rule in rules])
    with _lock:
        if len(_compiled) >= MAX_ENTRIES:
            _compiled.clear()
        _compiled[key] = compiled
    return compiled


def clear() -> None:
    """Forget the compiled rules (tests; never needed for correctness)."""
    with _lock:
        _compiled.clear()
