"""Segment preview: a rule's JSON Logic condition as SQL over accounts, or evaluated in batches.

`translate` compiles the vocabulary rules use most (account columns and traits, event counts, plan
state; and/or/!/!!, comparisons, `in`) to a SQLAlchemy predicate on PostgreSQL. It must never
change the answer `evaluate()` gives, and datalogic's coercions are subtle (`null == 0` holds,
`"" == 0` raises, `"05" == 5` holds, `"05" < "5"` compares text), so every leaf is built per JSON
type of the value it reads:

- types whose result is certain (a number against a number literal, text against a text
  literal, null or a boolean, whose handful of values are evaluated by datalogic itself at
  translation time) become exact SQL;
- the rest (a string like "1e3" or "abc" compared with a number, arrays compared with scalars,
  anything that would raise) becomes SQL NULL: "SQL cannot decide this account".

NULL is carried through and/or/! with JsonLogic's left-to-right short-circuit (not SQL's
three-valued AND), so an account is counted by SQL only when its result is certain, and the few
undecided accounts are evaluated in Python with the facts rules read. Conditions outside the
vocabulary (survey answers, outcomes, arithmetic, ...) are not translated at all: the preview
evaluates every account in batches and says why.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import datalogic_py
from sqlalchemy import Boolean, cast, func, select
from sqlalchemy.orm import Session

from engine.accounts import Account
from engine.rules.facts import load_facts
from engine.rules.logic import compile_condition, facts_handle, truthy_evaluator, validate_condition
from engine.rules.sql_translate import Translation, Untranslatable, translate

__all__ = [
    "BATCH_SIZE",
    "Preview",
    "Translation",
    "Untranslatable",
    "preview",
    "preview_in_batches",
    "translate",
]

BATCH_SIZE = 2000


@dataclass(frozen=True)
class Preview:
    """How many accounts a condition matches now, and how that was found out."""

    count: int
    total: int
    method: str  # "sql" or "batched"
    reason: str | None
    sample: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0
    evaluated: int = 0  # accounts whose condition ran in Python (all of them when batched)
    complete: bool = True  # False when `fallback_limit` stopped the batches early


def preview(
    session: Session,
    condition: Any,
    *,
    now: dt.datetime,
    limit_sample: int = 10,
    fallback_limit: int | None = None,
) -> Preview:
    """How many accounts `condition` matches: one SQL count when it translates, else batches.

    Raises InvalidCondition for a condition that is not valid JSON Logic. `fallback_limit` caps
    the accounts the batched evaluation reads (the preview is then marked incomplete).
    """
    started = time.perf_counter()
    validate_condition(condition)
    bind = session.get_bind()
    translation = translate(condition, now=now, dialect=bind.dialect.name)
    if translation.where is None:
        where = f" at {translation.pointer}" if translation.pointer else ""
        reason = f"evaluated in batches: {translation.reason}{where}"
        return preview_in_batches(
            session,
            condition,
            now=now,
            reason=reason,
            limit_sample=limit_sample,
            fallback_limit=fallback_limit,
            started=started,
        )
    assert translation.state is not None
    # One pass, the condition computed once per account (OFFSET 0 keeps PostgreSQL from
    # inlining it into each count): how many are TRUE, and how many SQL left undecided.
    states = (
        select(cast(translation.state, Boolean).label("state"))
        .select_from(translation.from_)
        .offset(0)
        .subquery()
    )
    state = states.c.state
    total, count, unsure = session.execute(
        select(func.count(), func.count().filter(state.is_(True)), func.count().filter(state.is_(None)))
    ).one()
    sample = _first_matches(session, condition, now, limit_sample, share=count / max(total, 1))
    evaluated = 0
    if unsure:
        # The accounts SQL could not judge exactly: evaluated in Python with the facts rules read.
        assert translation.undecided is not None
        ids = list(
            session.scalars(
                select(Account.id)
                .select_from(translation.from_)
                .where(translation.undecided)
                .order_by(Account.id)
            )
        )
        extra, extra_sample = _evaluate_ids(session, condition, ids, now, limit_sample)
        count += extra
        evaluated = len(ids)
        sample = sorted(sample + extra_sample)[:limit_sample]
    return Preview(
        count=int(count),
        total=int(total),
        method="sql",
        reason=None,
        sample=[external_id for _, external_id in sample],
        elapsed_ms=_ms_since(started),
        evaluated=evaluated,
    )


def preview_in_batches(
    session: Session,
    condition: Any,
    *,
    now: dt.datetime,
    reason: str = "evaluated in batches",
    limit_sample: int = 10,
    fallback_limit: int | None = None,
    started: float | None = None,
) -> Preview:
    """Evaluate `condition` on every account's facts, `BATCH_SIZE` accounts at a time, by id."""
    started = time.perf_counter() if started is None else started
    total = int(session.scalar(select(func.count()).select_from(Account)) or 0)
    count, evaluated, last_id = 0, 0, 0
    sample: list[str] = []
    while fallback_limit is None or evaluated < fallback_limit:
        size = BATCH_SIZE if fallback_limit is None else min(BATCH_SIZE, fallback_limit - evaluated)
        ids = list(
            session.scalars(select(Account.id).where(Account.id > last_id).order_by(Account.id).limit(size))
        )
        if not ids:
            break
        matched, matched_sample = _evaluate_ids(session, condition, ids, now, limit_sample - len(sample))
        count += matched
        sample += [external_id for _, external_id in matched_sample]
        evaluated += len(ids)
        last_id = ids[-1]
    complete = evaluated >= total
    if not complete:
        reason = f"{reason}; stopped after {evaluated:,} of {total:,} accounts"
    return Preview(
        count=count,
        total=total,
        method="batched",
        reason=reason,
        sample=sample,
        elapsed_ms=_ms_since(started),
        evaluated=evaluated,
        complete=complete,
    )


def _first_matches(
    session: Session, condition: Any, now: dt.datetime, limit: int, share: float
) -> list[tuple[int, str]]:
    """The first `limit` accounts by id SQL says match, reading only a prefix of the accounts
    big enough to hold them at the matching `share` (widened while it falls short)."""
    if not limit or not share:
        return []
    span = max(1000, int(4 * limit / share))
    while True:
        bound = session.scalar(select(Account.id).order_by(Account.id).offset(span).limit(1))
        translation = translate(condition, now=now, up_to_account=bound)
        assert translation.where is not None
        found = [
            (row.id, row.external_id)
            for row in session.execute(
                select(Account.id, Account.external_id)
                .select_from(translation.from_)
                .where(translation.where)
                .order_by(Account.id)
                .limit(limit)
            )
        ]
        if len(found) >= limit or bound is None:
            return found
        span *= 8


def _evaluate_ids(
    session: Session, condition: Any, ids: Sequence[int], now: dt.datetime, limit_sample: int
) -> tuple[int, list[tuple[int, str]]]:
    """How many of these accounts match (a condition that raises does not), and the first ones."""
    rule = compile_condition(condition)
    holds = truthy_evaluator()
    count = 0
    sample: list[tuple[int, str]] = []
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        # Transient copies, so a preview never fills (or detaches from) the caller's session.
        accounts = [
            Account(
                id=row.id,
                external_id=row.external_id,
                segment=row.segment,
                plan_tier=row.plan_tier,
                lifecycle_stage=row.lifecycle_stage,
                traits=row.traits,
            )
            for row in session.execute(
                select(
                    Account.id,
                    Account.external_id,
                    Account.segment,
                    Account.plan_tier,
                    Account.lifecycle_stage,
                    Account.traits,
                )
                .where(Account.id.in_(chunk))
                .order_by(Account.id)
            )
        ]
        facts = load_facts(session, accounts, now)
        for account in accounts:
            try:
                matched = holds(rule, facts_handle(facts[account.id]))
            except datalogic_py.DataLogicError:
                matched = False  # as decide() treats it: a rule that fails to evaluate does not match
            if matched:
                count += 1
                if len(sample) < limit_sample:
                    sample.append((account.id, account.external_id))
    return count, sample


def _ms_since(started: float) -> float:
    return 1000 * (time.perf_counter() - started)
