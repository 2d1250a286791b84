"""`python -m bench events`: events ingested per second with milestone evaluation, and what it costs.

2,000 accounts (2 contacts each, an active `hire_faster_plan` from the recruiting playbook: five
milestones with event criteria) receive batches of 1,000 events through `ingest_events`, one
transaction per batch as `POST /api/v1/events` runs it. A batch mixes the playbook's event names,
repeats ~20 % of its events by idempotency key (half within the batch, half replays of earlier
batches) and spreads over hundreds of accounts (half the events go to a busy tenth of them, so
some reach the higher thresholds). Baseline in the same run, interleaved batch by batch on a second,
identical set of accounts: the same ingest with `evaluate_milestones` skipped, so the evaluation's
share is a ratio measured in one process. Then a few batches go through the HTTP endpoint (the
Flask test client, in-process: JSON + marshmallow + token check on top of the same ingest).
Correctness: every distinct event stored exactly once, duplicates counted as such, and every
milestone achieved exactly when its criteria hold over the generated events (recomputed here).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

import engine.events.service as ingest_service
from bench.common import (
    DEFAULT_DATABASE_URL,
    BenchEnv,
    add_service_arguments,
    bench_env,
    machine,
    print_table,
    result_line,
)
from bench.fixtures import create_accounts
from engine.accounts import Account, Contact
from engine.apitokens import create_token
from engine.db import utcnow
from engine.events.models import Event
from engine.events.service import EventIn, IngestResult, ingest_events
from engine.plans.models import Milestone, MilestoneStatus, PlanRevision, SuccessPlan
from engine.plans.progress import refresh_plans
from engine.rules.logic import holds

TARGET_EVENTS_PER_S = 5000
BATCH = 1000
# Event names and how often each is sent: the five criteria events plus two without a milestone.
NAMES = {
    "application_received": 35,
    "candidate_screened": 20,
    "interview_scheduled": 12,
    "job_posted": 8,
    "offer_accepted": 3,
    "manager_onboarded": 11,
    "new_hire_started": 11,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=2000, help="accounts per phase (%(default)s)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per phase (%(default)s)")
    parser.add_argument("--batch-size", type=int, default=BATCH, help="events per batch (%(default)s)")
    parser.add_argument("--duplicates", type=float, default=0.2, help="share repeated by key (%(default)s)")
    parser.add_argument("--http-batches", type=int, default=5, help="batches through POST /api/v1/events")
    parser.add_argument("--seed", type=int, default=7)
    add_service_arguments(parser)
    own = make_url(DEFAULT_DATABASE_URL).set(database="bench_events").render_as_string(hide_password=False)
    parser.set_defaults(database_url=os.environ.get("BENCH_EVENTS_DATABASE_URL", own))


@dataclass
class Stream:
    """Generates batches for one set of accounts and remembers what a correct ingest must store."""

    prefix: str
    accounts: list[str]
    contacts: dict[str, list[str]]
    start: dt.datetime
    rng: random.Random
    duplicate_share: float
    sent: list[EventIn] = field(default_factory=list)
    ledger: Counter[tuple[str, str]] = field(default_factory=Counter)
    expected_duplicates: int = 0
    batches: int = 0

    def batch(self, size: int, now: dt.datetime) -> list[EventIn]:
        rng = self.rng
        duplicates = round(size * self.duplicate_share)
        busy = self.accounts[: max(1, len(self.accounts) // 10)]
        names, weights = list(NAMES), list(NAMES.values())
        span = max((now - self.start).total_seconds() - 1, 1.0)
        fresh = []
        for i in range(size - duplicates):
            account = rng.choice(busy) if rng.random() < 0.5 else rng.choice(self.accounts)
            contacts = self.contacts.get(account, [])
            fresh.append(
                EventIn(
                    account=account,
                    name=rng.choices(names, weights)[0],
                    idempotency_key=f"{self.prefix}-{self.batches}-{i}",
                    occurred_at=self.start + dt.timedelta(seconds=rng.uniform(0, span)),
                    contact=rng.choice(contacts) if contacts and rng.random() < 0.7 else None,
                    properties={"source": "bench", "n": i},
                )
            )
        replays = [
            rng.choice(self.sent) if self.sent and j % 2 else rng.choice(fresh) for j in range(duplicates)
        ]
        events = fresh + replays
        rng.shuffle(events)
        for e in fresh:
            self.ledger[(e.account, e.name)] += 1
        self.sent.extend(fresh)
        self.expected_duplicates += duplicates
        self.batches += 1
        return events

    @property
    def unique(self) -> int:
        return len(self.sent)


@dataclass
class Phase:
    label: str
    results: list[IngestResult] = field(default_factory=list)
    batch_s: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    eval_s: list[float] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(r.accepted + r.duplicates for r in self.results)

    @property
    def events_per_s(self) -> float:
        return self.events / sum(self.batch_s) if self.batch_s else 0.0

    @property
    def ms_per_batch(self) -> float:
        return 1000 * statistics.fmean(self.batch_s) if self.batch_s else 0.0

    def row(self) -> list[object]:
        ordered = sorted(self.batch_s)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else 0.0
        evaluation = f"{1000 * statistics.fmean(self.eval_s):.1f}" if self.eval_s else "—"
        return [
            self.label,
            len(self.batch_s),
            self.events,
            sum(r.accepted for r in self.results),
            sum(r.duplicates for r in self.results),
            sum(len(r.milestones_achieved) for r in self.results),
            f"{self.ms_per_batch:.1f}",
            f"{1000 * statistics.median(self.batch_s):.1f}" if self.batch_s else "—",
            f"{1000 * p90:.1f}",
            evaluation,
            f"{statistics.fmean(self.queries):.1f}" if self.queries else "—",
            f"{self.events_per_s:,.0f}",
        ]


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1


@contextmanager
def counting_queries(env: BenchEnv) -> Iterator[QueryCounter]:
    counter = QueryCounter()
    event.listen(env.database.engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(env.database.engine, "before_cursor_execute", counter)


@contextmanager
def evaluation(mode: str, phase: Phase) -> Iterator[None]:
    """Time `evaluate_milestones` inside ingest ("timed"), or skip it for the baseline ("skipped")."""
    real = ingest_service.__dict__["evaluate_milestones"]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            phase.eval_s.append(time.perf_counter() - started)

    def skipped(*_: Any, **__: Any) -> list[int]:
        return []

    setattr(ingest_service, "evaluate_milestones", timed if mode == "timed" else skipped)  # noqa: B010
    try:
        yield
    finally:
        setattr(ingest_service, "evaluate_milestones", real)  # noqa: B010


def ingest_batch(env: BenchEnv, phase: Phase, events: list[EventIn], mode: str) -> None:
    with counting_queries(env) as queries, evaluation(mode, phase):
        started = time.perf_counter()
        with env.database.transaction() as session:
            result = ingest_events(session, events, now=utcnow())
        phase.batch_s.append(time.perf_counter() - started)
    phase.results.append(result)
    phase.queries.append(queries.count)


def post_batch(env: BenchEnv, phase: Phase, client: Any, token: str, events: list[EventIn]) -> None:
    body = {
        "events": [
            {
                "account": e.account,
                "contact": e.contact,
                "name": e.name,
                "properties": e.properties,
                "timestamp": e.occurred_at.isoformat(),
                "idempotency_key": e.idempotency_key,
            }
            for e in events
        ]
    }
    with counting_queries(env) as queries:
        started = time.perf_counter()
        response = client.post("/api/v1/events", json=body, headers={"Authorization": f"Bearer {token}"})
        phase.batch_s.append(time.perf_counter() - started)
    if response.status_code != 202:
        raise RuntimeError(f"POST /api/v1/events answered {response.status_code}: {response.get_data()!r}")
    found = response.get_json()
    phase.results.append(
        IngestResult(found["accepted"], found["duplicates"], [0] * found["milestones_achieved"])
    )
    phase.queries.append(queries.count)


def make_stream(
    env: BenchEnv, prefix: str, accounts: int, start: dt.datetime, args: argparse.Namespace
) -> Stream:
    create_accounts(env.database, [2] * accounts, prefix=prefix, now=start)
    with env.database.session() as session:
        rows = session.execute(
            select(Account.external_id, Contact.email)
            .join(Contact, Contact.account_id == Account.id)
            .where(Account.external_id.like(f"{prefix}-%"))
        )
        contacts: dict[str, list[str]] = {}
        for external_id, email in rows:
            contacts.setdefault(external_id, []).append(email)
    ids = [f"{prefix}-{i:06d}" for i in range(accounts)]
    rng = random.Random(f"{args.seed}-{prefix}")
    return Stream(prefix, ids, contacts, start, rng, args.duplicates)


@dataclass
class Check:
    stored: int = 0
    expected_stored: int = 0
    store_mismatches: int = 0
    duplicates: int = 0
    expected_duplicates: int = 0
    achieved: int = 0
    expected_achieved: int = 0
    reported_achieved: int = 0
    milestone_mismatches: int = 0
    achieved_twice: int = 0

    @property
    def stored_ok(self) -> bool:
        return self.stored == self.expected_stored and self.store_mismatches == 0

    @property
    def duplicates_ok(self) -> bool:
        return self.duplicates == self.expected_duplicates

    @property
    def milestones_ok(self) -> bool:
        return (
            self.achieved == self.expected_achieved == self.reported_achieved
            and self.milestone_mismatches == 0
            and self.achieved_twice == 0
        )


def check(env: BenchEnv, stream: Stream, results: list[IngestResult], *, milestones: bool) -> Check:
    found = Check(expected_stored=stream.unique, expected_duplicates=stream.expected_duplicates)
    found.duplicates = sum(r.duplicates for r in results)
    found.reported_achieved = sum(len(r.milestones_achieved) for r in results)
    prefix = f"{stream.prefix}-%"
    with env.database.session() as session:
        stored = session.execute(
            select(
                Account.external_id,
                Event.name,
                func.count(),
                func.count(func.distinct(Event.idempotency_key)),
            )
            .join(Account, Account.id == Event.account_id)
            .where(Event.idempotency_key.like(prefix))
            .group_by(Account.external_id, Event.name)
        ).all()
        in_db = {(a, n): count for a, n, count, _distinct in stored}
        found.stored = sum(in_db.values())
        keys = set(in_db) | set(stream.ledger)
        found.store_mismatches = sum(1 for k in keys if in_db.get(k, 0) != stream.ledger[k])
        found.store_mismatches += sum(1 for *_k, count, distinct in stored if count != distinct)
        found.store_mismatches += sum(r.accepted for r in results) != stream.unique
        if not milestones:
            return found
        milestone_rows = session.execute(
            select(Account.external_id, Milestone.criteria, Milestone.status, Milestone.achieved_at)
            .join(SuccessPlan, SuccessPlan.id == Milestone.plan_id)
            .join(Account, Account.id == SuccessPlan.account_id)
            .where(Account.external_id.like(prefix))
        )
        for external_id, criteria, status, achieved_at in milestone_rows:
            facts = {"events": {name: {"count": stream.ledger[(external_id, name)]} for name in NAMES}}
            expected = bool(criteria) and holds(criteria, facts)
            achieved = status is MilestoneStatus.ACHIEVED and achieved_at is not None
            found.achieved += achieved
            found.expected_achieved += expected
            found.milestone_mismatches += achieved != expected
        revisions = Counter(
            (plan_id, change.get("milestone"))
            for plan_id, change in session.execute(
                select(PlanRevision.plan_id, PlanRevision.change)
                .join(SuccessPlan, SuccessPlan.id == PlanRevision.plan_id)
                .join(Account, Account.id == SuccessPlan.account_id)
                .where(Account.external_id.like(prefix), PlanRevision.summary.like("Milestone achieved%"))
            )
        )
        found.achieved_twice = sum(1 for n in revisions.values() if n != 1)
        found.achieved_twice += len(revisions) != found.achieved
    return found


def refresh_all(env: BenchEnv) -> tuple[float, int]:
    """`refresh_plans(None)`, the scheduler's hourly refresh of every active plan: (seconds, queries)."""
    with counting_queries(env) as queries:
        started = time.perf_counter()
        with env.database.transaction() as session:
            refresh_plans(session, None, now=utcnow(), channel="schedule")
        return time.perf_counter() - started, queries.count


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    with bench_env(args) as env:
        start = utcnow() - dt.timedelta(hours=12)
        evaluated = make_stream(env, "ev", args.accounts, start, args)
        skipped = make_stream(env, "nv", args.accounts, start, args)
        with env.database.session() as session:
            plans = session.scalar(select(func.count()).select_from(SuccessPlan)) or 0
        first_refresh = refresh_all(env)  # every milestone moves from pending to on track
        with env.database.transaction() as session:
            token = create_token(session, "bench-events")
        with_eval = Phase("ingest_events (product path)")
        without_eval = Phase("baseline: no evaluation")
        http = Phase("POST /api/v1/events (Flask test client)")
        warm_eval, warm_skip = Phase("warm-up"), Phase("warm-up")
        ingest_batch(env, warm_eval, evaluated.batch(args.batch_size, utcnow()), "timed")
        ingest_batch(env, warm_skip, skipped.batch(args.batch_size, utcnow()), "skipped")
        for _ in range(args.batches):
            ingest_batch(env, with_eval, evaluated.batch(args.batch_size, utcnow()), "timed")
            ingest_batch(env, without_eval, skipped.batch(args.batch_size, utcnow()), "skipped")
        client = env.app.test_client()
        for _ in range(args.http_batches):
            post_batch(env, http, client, token, evaluated.batch(args.batch_size, utcnow()))
        hourly_refresh = refresh_all(env)
        results = [*warm_eval.results, *with_eval.results, *http.results]
        checked = check(env, evaluated, results, milestones=True)
        baseline_results = [*warm_skip.results, *without_eval.results]
        baseline_checked = check(env, skipped, baseline_results, milestones=False)
    phases = [with_eval, without_eval, *([http] if http.batch_s else [])]
    print_table(
        f"events — batches of {args.batch_size} over {args.accounts} accounts per set, {plans} active plans, "
        f"{machine()}, load avg {load_before:.1f} → {os.getloadavg()[0]:.1f}",
        ["path", "batches", "events", "stored", "dup", "achieved", "ms/batch", "p50", "p90", "eval ms"]
        + ["queries/batch", "events/s"],
        [p.row() for p in phases],
    )
    eval_ms = 1000 * statistics.fmean(with_eval.eval_s)
    share = 1 - without_eval.ms_per_batch / with_eval.ms_per_batch
    timed_share = eval_ms / with_eval.ms_per_batch
    per_event_us = 1000 * eval_ms / args.batch_size
    # The load-independent figure on a shared machine: events/s with evaluation over events/s
    # without, both from this run (interleaved batch by batch).
    vs_baseline = with_eval.events_per_s / without_eval.events_per_s
    print(
        f"with evaluation: {vs_baseline:.2f} × the events/s of the same ingest without it "
        f"({with_eval.events_per_s:,.0f} vs {without_eval.events_per_s:,.0f})"
    )
    print(
        f"evaluation: {share:.0%} of a batch by the with/without ratio, {timed_share:.0%} timed inside "
        f"ingest ({eval_ms:.1f} ms per batch, {per_event_us:.0f} µs per submitted event)"
    )
    print(
        f"refresh_plans(None) over all {plans} active plans (the scheduler's hourly refresh): "
        f"{1000 * hourly_refresh[0]:.0f} ms, {hourly_refresh[1]} queries after the ingest; "
        f"{1000 * first_refresh[0]:.0f} ms, {first_refresh[1]} queries for the first one "
        "(every milestone pending → on track)"
    )
    for name, found in (("evaluated set", checked), ("baseline set", baseline_checked)):
        print(
            f"correctness ({name}): stored {found.stored}/{found.expected_stored} distinct events "
            f"(mismatches {found.store_mismatches}), "
            f"duplicates {found.duplicates}/{found.expected_duplicates}"
        )
    print(
        f"milestones achieved {checked.achieved} (recomputed from the generated events: "
        f"{checked.expected_achieved}; reported by ingest: {checked.reported_achieved}; "
        f"mismatches {checked.milestone_mismatches}; achieved twice {checked.achieved_twice})"
    )
    met = with_eval.events_per_s >= TARGET_EVENTS_PER_S
    print(
        f"target ≥ {TARGET_EVENTS_PER_S:,} events/s with milestone evaluation: {'met' if met else 'MISSED'}"
    )
    ok = checked.stored_ok and baseline_checked.stored_ok and checked.milestones_ok
    duplicates_ok = checked.duplicates_ok and baseline_checked.duplicates_ok
    values: dict[str, object] = {
        "events_per_s": round(with_eval.events_per_s),
        "ms_per_batch": round(with_eval.ms_per_batch, 1),
        "eval_share": round(share, 2),
        "queries_per_batch": round(statistics.fmean(with_eval.queries), 1),
        "baseline_events_per_s": round(without_eval.events_per_s),
        "vs_baseline": round(vs_baseline, 2),
        "eval_ms_per_batch": round(eval_ms, 1),
        "eval_us_per_event": round(per_event_us, 1),
    }
    if http.batch_s:
        values["http_events_per_s"] = round(http.events_per_s)
    values["hourly_refresh_ms"] = round(1000 * hourly_refresh[0])
    values["stored_ok"] = int(checked.stored_ok and baseline_checked.stored_ok)
    values["milestones_ok"] = int(checked.milestones_ok)
    values["duplicates_ok"] = int(duplicates_ok)
    result_line("events", values)
    return 0 if ok and duplicates_ok else 1
