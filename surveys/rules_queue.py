"""Completed responses whose rules run in a background job (the widget and API path, ADR 0009).

`submit_response(..., defer_rules=True)` stores the response with `rules_queued_at` set and, once
the transaction commits, wakes the coalesced `rules` job. The job takes the queued responses in id
order, a batch per transaction, and for each sends the same `response_completed` signal the
inline path sends (so the rules, the plan, the enrolments and the choices summary are exactly what
a synchronous submission makes), then clears `rules_queued_at` in that same transaction: a batch
is applied whole or not at all, and a crashed job leaves its responses queued for the next one.

Appliers run side by side (jobs in several workers): each takes rows no other holds (`FOR UPDATE
SKIP LOCKED`) and then its accounts' rules locks (engine.automation.lock_accounts), so two
responses of one account are never decided concurrently. Each account's answers are decided in
id order: an applier that finds an earlier answer of one of its accounts still queued outside its
batch (another applier took it first) leaves that account's answers queued for a later batch. A
batch that finds a backlog makes sure a job waits to continue it, so an idle worker joins in. A
batch that raises is retried one
response at a time in savepoints, so one bad response cannot hold back the rest; it is logged and
dequeued and written as a note on the account for CS ops (the response itself stays stored;
"Re-run rules" on the account applies it again).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, func, select, text, update
from sqlalchemy.orm import Session

from engine import db, queue, signals
from engine.accounts import Account
from engine.automation import lock_accounts
from engine.db import utcnow
from engine.errors import ConfigurationError
from engine.notes import add_note
from engine.rules.facts import load_facts
from engine.rules.published import pinned
from surveys.answers import objective_choices
from surveys.cache import version_spec
from surveys.models import Response, Survey, SurveyVersion
from surveys.reports import refresh_choices_of

log = logging.getLogger(__name__)

# Only the responses waiting for the job (migration 0019): the job's scan stays a few rows.
Index(
    "ix_responses_rules_queued",
    Response.id,
    postgresql_where=text("rules_queued_at IS NOT NULL"),
    sqlite_where=text("rules_queued_at IS NOT NULL"),
)

RULES_JOB = "rules"
BATCH_SIZE = 100
MAX_BATCHES_PER_JOB = 50
STRANDED_AFTER = dt.timedelta(seconds=30)


@dataclass(frozen=True)
class Queued:
    response_id: int
    account_id: int | None  # None only if the account went (privacy erasure): just dequeued
    completed_at: dt.datetime | None
    survey_key: str
    version_id: int
    published_at: dt.datetime | None
    answers: dict[str, Any]
    channel: str


def queue_rules(session: Session, response: Response, *, now: dt.datetime) -> None:
    """Leave `response`'s rules to the job, which is woken when `session` commits."""
    response.rules_queued_at = now
    wake_rules(session)


def wake_rules(session: Session) -> None:
    try:
        runner = queue.current()
    except ConfigurationError:
        return  # a script without a job runner: the scheduler's sweep finds the queued rows
    if not runner.refuse_reason:
        queue.enqueue_after_commit(session, "default", apply_queued_rules_job, coalesce=RULES_JOB)


def _take(session: Session, limit: int) -> list[Queued]:
    statement = (
        select(
            Response.id,
            Response.account_id,
            Response.completed_at,
            Survey.key,
            SurveyVersion.id,
            SurveyVersion.published_at,
            Response.answers,
            Response.channel,
        )
        .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
        .join(Survey, Survey.id == SurveyVersion.survey_id)
        .where(Response.rules_queued_at.is_not(None))
        .order_by(Response.id)
        .limit(limit)
        .with_for_update(of=Response, skip_locked=True)
    )
    return [
        Queued(rid, account_id, done, key, vid, published, dict(answers or {}), str(channel.value))
        for rid, account_id, done, key, vid, published, answers, channel in session.execute(statement)
    ]


def _questions(session: Session, item: Queued) -> list[dict[str, Any]]:
    spec = version_spec(session, item.version_id, item.published_at) if item.published_at else None
    if spec is not None:
        return spec.questions
    definition = session.scalar(select(SurveyVersion.definition).where(SurveyVersion.id == item.version_id))
    return list((definition or {}).get("questions", []))


def _apply(
    session: Session, item: Queued, now: dt.datetime, stored_facts: dict[str, Any] | None = None
) -> None:
    if item.account_id is None:
        return
    signals.response_completed.send(
        "surveys",
        session=session,
        response_id=item.response_id,
        account_id=item.account_id,
        answers={item.survey_key: item.answers},
        choices=objective_choices(_questions(session, item), item.answers),
        channel=item.channel,
        now=now,
        deferred=True,
        # The answers as they stood when this response completed, as the request would have
        # decided: a later answer of the same account, already stored, has its own turn.
        as_of=_as_of(item),
        stored_facts=stored_facts,
    )


def _as_of(item: Queued) -> tuple[dt.datetime, int] | None:
    return (item.completed_at, item.response_id) if item.completed_at else None


def _batch_facts(
    session: Session, taken: list[Queued], accounts: Sequence[Account], now: dt.datetime
) -> dict[int, dict[str, Any]]:
    """The stored facts of each account for its first response in the batch, in one read for the
    batch (what each decision would read for itself); a later response of the same account
    reads its own, after the batch flushes what the first made."""
    first: dict[int, Queued] = {}
    for item in taken:
        if item.account_id is not None:
            first.setdefault(item.account_id, item)
    as_of = {a: stamp for a, item in first.items() if (stamp := _as_of(item)) is not None}
    return load_facts(session, [a for a in accounts if a.id in first], now, answers_as_of=as_of)


def _note_failure(session: Session, item: Queued, exc: Exception, now: dt.datetime) -> None:
    """Tell CS ops on the account's page (its notes), not only in a log nobody reads."""
    account = session.get(Account, item.account_id) if item.account_id is not None else None
    if account is None:
        return
    reason = f"{type(exc).__name__}: {exc}".replace("\x00", "")[:1000]
    body = (
        f"The rules failed on this account's answer to the {item.survey_key!r} survey (response "
        f"{item.response_id}), so no plan or enrolment was made from it: {reason}. The answer is "
        "stored; once the rule or template is fixed, use “Re-run rules” on this account."
    )
    add_note(session, account, body, author="rules job", now=now)


def _apply_batch(
    session: Session, taken: list[Queued], accounts: Sequence[Account], now: dt.datetime
) -> None:
    """The batch's facts in one read, and its plans, measures, milestones and enrolments written
    by one flush at the end (a multi-row INSERT per table), not one per decision. A decision sees
    what an earlier one made for the same account: the batch flushes before it."""
    stored = _batch_facts(session, taken, accounts, now)
    signals.decisions_starting.send("surveys", session=session, account_ids=[a.id for a in accounts])
    decided: set[int] = set()
    with db.deferred_flushes(session):
        for item in taken:
            if item.account_id in decided:
                session.flush()
                decided.clear()
            facts = None
            if item.account_id is not None:
                decided.add(item.account_id)
                facts = stored.pop(item.account_id, None)
            _apply(session, item, now, facts)
        db.assign_ids(session)


def _apply_each(session: Session, taken: list[Queued], now: dt.datetime) -> None:
    """One response at a time, each in a savepoint: one that fails is logged, noted on its
    account and dequeued; the others are applied."""
    for item in taken:
        try:
            with session.begin_nested():
                _apply(session, item, now)
        except Exception as exc:
            log.exception("rules failed for response %d; dequeued", item.response_id)
            _note_failure(session, item, exc, now)


@dataclass(frozen=True)
class BatchResult:
    applied: int
    held_back: int  # taken, but an earlier answer of the same account is another applier's

    @property
    def taken(self) -> int:
        return self.applied + self.held_back


def apply_queued(
    session: Session, *, now: dt.datetime, limit: int = BATCH_SIZE, isolate: bool = False
) -> BatchResult:
    """Apply the rules of up to `limit` queued responses, oldest first, but for those held back
    (see `_behind`). `isolate` runs each in a savepoint and logs (instead of raising) the ones
    that fail."""
    taken = _take(session, limit)
    if not taken:
        return BatchResult(0, 0)
    # The batch's accounts: their rules locks (engine.automation.lock_accounts) in one statement,
    # then the rows in one more; each decision finds its account in the session and its lock
    # already held.
    account_ids = {i.account_id for i in taken if i.account_id is not None}
    lock_accounts(session, account_ids)
    behind = _behind(session, taken)
    if behind:
        log.info("rules: %d accounts' answers wait for an earlier answer another job holds", len(behind))
        account_ids -= behind
    held_back = [i for i in taken if i.account_id in behind]
    taken = [i for i in taken if i.account_id not in behind]
    if not taken:
        return BatchResult(0, len(held_back))
    accounts = session.scalars(select(Account).where(Account.id.in_(account_ids))).all()
    with pinned(session):  # one published-rules lookup for the batch
        if isolate:
            _apply_each(session, taken, now)
        else:
            _apply_batch(session, taken, accounts, now)
    ids = [item.response_id for item in taken]
    refresh_choices_of(session, ids)  # the outcomes report's summary, for the whole batch
    session.execute(
        update(Response)
        .where(Response.id.in_(ids))
        .values(rules_queued_at=None)
        .execution_options(synchronize_session=False)
    )
    return BatchResult(len(taken), len(held_back))


def _behind(session: Session, taken: list[Queued]) -> set[int]:
    """The batch's accounts with an answer queued before their first in the batch that the batch
    does not hold: another applier took it (and may not have reached the account's lock yet), or it
    was queued after this batch read the queue. Run with the accounts' locks held."""
    first: dict[int, int] = {}
    for item in taken:
        if item.account_id is not None:
            first.setdefault(item.account_id, item.response_id)  # `taken` is in id order
    if not first:
        return set()
    mine = [item.response_id for item in taken]
    rows = session.execute(
        select(Response.account_id, func.min(Response.id))
        .where(
            Response.rules_queued_at.is_not(None),
            Response.account_id.in_(list(first)),
            ~db.id_in(session, Response.id, mine),
        )
        .group_by(Response.account_id)
    )
    return {account for account, earliest in rows if account is not None and earliest < first[account]}


def apply_queued_rules_job(limit: int = BATCH_SIZE, backlog: bool = False) -> int:
    """RQ entry point (queue `default`, coalesced as `rules`): apply every queued response.

    Takes no arguments because the queue is the `responses` rows themselves, marked by the
    transactions that stored them (like the reports' summary refresh, ADR 0008). A job woken by
    a commit lingers first (engine.queue, ADR 0012); one that continues a `backlog` does not.
    While a backlog lasts, every full batch makes sure a job waits to continue it (coalesced: one
    at a time), so a second worker takes part instead of idling until this job ends."""
    try:
        runner: queue.JobRunner | None = queue.current()
    except ConfigurationError:
        runner = None
    if runner is not None:
        # before the first batch: later commits queue a new job
        runner.release_coalesced(RULES_JOB, linger=not backlog)
    total = 0
    result = BatchResult(0, 0)
    for _ in range(MAX_BATCHES_PER_JOB):
        try:
            with db.current().transaction() as session:
                result = apply_queued(session, now=utcnow(), limit=limit)
        except Exception:
            log.warning("a batch of queued rules failed; applying it one response at a time", exc_info=True)
            with db.current().transaction() as session:
                result = apply_queued(session, now=utcnow(), limit=limit, isolate=True)
        total += result.applied
        if result.held_back:  # retaken at once they would be held back again: a job later does
            _continue(runner, limit, backlog=False)
            break
        if result.taken < limit:
            break
        _continue(runner, limit, backlog=True)
    return total


def _continue(runner: queue.JobRunner | None, limit: int, *, backlog: bool) -> None:
    """Queue a job to take what this one leaves (none if one already waits). A `backlog` job
    starts at once; otherwise it lingers, giving the applier ahead of it time to commit."""
    if runner is not None and runner.redis is not None:
        runner.enqueue_many(
            [queue.PendingJob("default", apply_queued_rules_job, (limit, backlog), None, RULES_JOB)]
        )


def waiting(session: Session) -> tuple[int, dt.datetime | None]:
    """How many responses wait for the job, and since when the oldest has (one statement)."""
    queued = Response.rules_queued_at
    count, oldest = session.execute(select(func.count(), func.min(queued)).where(queued.is_not(None))).one()
    return int(count), oldest


def queued_count(session: Session) -> int:
    return waiting(session)[0]


def sweep_stranded(session: Session, *, now: dt.datetime) -> bool:
    """Queue the job for responses waiting longer than `STRANDED_AFTER` (their job was lost: a
    worker killed mid-job, Redis flushed). The scheduler loop calls this; returns whether it did."""
    _, oldest = waiting(session)
    if oldest is None or oldest > now - STRANDED_AFTER:
        return False
    try:
        runner = queue.current()
    except ConfigurationError:
        return False
    runner.enqueue("default", apply_queued_rules_job)
    return True
