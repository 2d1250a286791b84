"""`python -m bench preview`: segment preview counts in SQL over N accounts vs batched evaluation.

Generates N accounts (default 1,000,000) with realistic traits (seats, region, industry, tags),
events over the last 120 days and active plans for about a third of them, with COPY, in a database
this benchmark owns (`northstar_bench_preview`, not the `northstar_bench` the other benchmarks drop
and recreate on every run): a second run with the same `--accounts` and `--seed` reuses the data.
Then times `engine.rules.sql.preview` for representative conditions, and the batched fallback
(`load_facts` + compiled JsonLogic per chunk of accounts) on a sample of accounts as the baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.common import DEFAULT_DATABASE_URL, machine, print_table, result_line
from engine.accounts import Account
from engine.config import normalise_database_url
from engine.db import make_engine
from engine.rules.sql import Preview, preview, preview_in_batches, translate

# Every run reads the data "as of" this instant, so generated data can be reused run after run.
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
TARGET_MS = 2000.0
PREFIX = "pv"
SEGMENTS = (("starter", 50), ("growth", 30), ("enterprise", 15), ("strategic", 5))
PLAN_TIERS = (("team", 40), ("pro", 35), ("enterprise", 15), (None, 10))
STAGES = (("onboarding", 20), ("adopting", 40), ("renewing", 25), ("churn_risk", 15))
REGIONS = ("emea", "amer", "apac", "latam")
INDUSTRIES = ("staffing", "healthcare", "retail", "technology", "finance", "logistics", "education", "public")
TAGS = ("vip", "beta", "ats_integration", "high_volume", "agency", "champion_left", "renewal_q1", "expansion")
EVENTS = (("login", 2.0), ("job_posted", 0.8), ("report_viewed", 0.5), ("integration_connected", 0.05))
TEMPLATES = ("hire_faster_plan", "reduce_time_to_fill", "onboarding_plan")
EVENT_HORIZON_DAYS = 120

CONDITIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("segment equality", {"==": [{"var": "account.segment"}, "enterprise"]}),
    ("trait numeric comparison", {">=": [{"var": "account.traits.seats"}, 100]}),
    ("trait between", {"<=": [25, {"var": "account.traits.seats"}, 250]}),
    ("tag membership", {"in": ["vip", {"var": "account.traits.tags"}]}),
    ("event count_30d threshold", {">=": [{"var": ["events.login.count_30d", 0]}, 5]}),
    ("plan.exists", {"!": {"var": "plan.exists"}}),
    (
        "and: segment in list, region, no recent job posts",
        {
            "and": [
                {"in": [{"var": "account.segment"}, ["growth", "enterprise"]]},
                {"==": [{"var": "account.traits.region"}, "emea"]},
                {"<": [{"var": "events.job_posted.count_7d"}, 1]},
            ]
        },
    ),
    (
        "or: churn risk, or active plan + few logins",
        {
            "or": [
                {"===": [{"var": "account.lifecycle_stage"}, "churn_risk"]},
                {
                    "and": [
                        {"var": "plan.exists"},
                        {"<": [{"var": ["events.login.count_90d", 0]}, 3]},
                        {"!": {"in": ["champion_left", {"var": "account.traits.tags"}]}},
                    ]
                },
            ]
        },
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default_url = make_url(DEFAULT_DATABASE_URL).set(database="northstar_bench_preview")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts (%(default)s)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_PREVIEW_DATABASE_URL", default_url.render_as_string()),
        help="PostgreSQL URL of a database this benchmark owns: created if missing, its accounts, "
        "events and plans replaced when they do not match --accounts/--seed "
        "(env BENCH_PREVIEW_DATABASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--fallback-accounts",
        type=int,
        default=20000,
        help="accounts in the batched-evaluation baseline, a sample (µs per account compared)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per condition; the median counts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--regenerate", action="store_true", help="replace the data even if it matches")


def _weighted(rng: random.Random, choices: tuple[tuple[Any, int], ...]) -> Any:
    values = [c for c, _ in choices]
    weights = [w for _, w in choices]
    return rng.choices(values, weights)[0]


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    text_value = str(value)
    if any(c in text_value for c in "\\\t\n\r"):
        raise ValueError(f"unexpected character in COPY value {text_value!r}")
    return text_value


def _lines(rows: Iterator[tuple[Any, ...]], size: int = 20000) -> Iterator[str]:
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write("\t".join(_copy_text(v) for v in row))
        buffer.write("\n")
        count += 1
        if count == size:
            yield buffer.getvalue()
            buffer, count = io.StringIO(), 0
    if count:
        yield buffer.getvalue()


def _traits(rng: random.Random) -> dict[str, Any]:
    traits: dict[str, Any] = {
        "region": rng.choice(REGIONS),
        "industry": rng.choice(INDUSTRIES),
        "tags": rng.sample(TAGS, rng.choice((0, 0, 1, 1, 1, 2, 2, 3))),
    }
    if rng.random() > 0.03:  # CRM syncs leave a few accounts without a seat count
        traits["seats"] = int(rng.lognormvariate(3.2, 1.3)) + 1
    return traits


def _account_rows(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    created = NOW - dt.timedelta(days=400)
    for i in range(1, n + 1):
        yield (
            i,
            f"{PREFIX}-{i:07d}",
            f"Account {i} Staffing",
            _weighted(rng, SEGMENTS),
            _weighted(rng, PLAN_TIERS),
            _weighted(rng, STAGES),
            json.dumps(_traits(rng), separators=(",", ":")),
            "UTC",
            "f",
            created.isoformat(),
        )


def _event_rows(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    event_id = 0
    horizon = EVENT_HORIZON_DAYS * 86400
    for account_id in range(1, n + 1):
        activity = rng.lognormvariate(0, 0.9)  # some accounts are busy, most are quiet
        for name, mean in EVENTS:
            for _ in range(int(rng.expovariate(1 / (mean * activity)))):
                event_id += 1
                occurred = NOW - dt.timedelta(seconds=rng.randrange(horizon))
                stamp = occurred.isoformat()
                yield (event_id, account_id, name, "{}", stamp, stamp, f"{PREFIX}-{event_id}")


def _plan_rows(n: int, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    plan_id = 0
    for account_id in range(1, n + 1):
        roll = rng.random()
        if roll > 0.40:
            continue
        plan_id += 1
        status = "active" if roll < 0.35 else "completed"
        started = NOW - dt.timedelta(days=rng.randrange(1, 300))
        yield (
            plan_id,
            account_id,
            rng.choice(TEMPLATES),
            status,
            "Fill roles faster",
            "[]",
            "[]",
            started.isoformat(),
            (started + dt.timedelta(days=90)).date().isoformat(),
            1,
            started.isoformat(),
            started.isoformat(),
        )


COPIES: tuple[tuple[str, str, Callable[[int, random.Random], Iterator[tuple[Any, ...]]]], ...] = (
    (
        "accounts",
        "id, external_id, name, segment, plan_tier, lifecycle_stage, traits, timezone, holdout_group, "
        "created_at",
        _account_rows,
    ),
    ("events", "id, account_id, name, properties, occurred_at, received_at, idempotency_key", _event_rows),
    (
        "success_plans",
        "id, account_id, template_key, status, goal, dependencies, risks, started_at, review_date, "
        "share_token_version, created_at, updated_at",
        _plan_rows,
    ),
)


def _marker(n: int, seed: int) -> str:
    return f"{PREFIX} accounts={n} seed={seed} now={NOW.isoformat()}"


def prepare_data(database_url: str, n: int, seed: int, *, regenerate: bool = False) -> tuple[bool, float]:
    """Make the database hold exactly the generated data set; returns (generated?, seconds)."""
    from migrations.runner import upgrade

    _create_database_if_missing(database_url)
    upgrade(database_url)
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_preview_data (marker text NOT NULL)")
        found = conn.execute("SELECT marker FROM bench_preview_data").fetchone()
        if found is not None and found[0] == _marker(n, seed) and not regenerate:
            return False, 0.0
        started = time.perf_counter()
        conn.execute("TRUNCATE bench_preview_data, accounts RESTART IDENTITY CASCADE")
        for table, columns, rows in COPIES:
            rng = random.Random(f"{seed}-{table}")
            t0 = time.perf_counter()
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in _lines(rows(n, rng)):
                    copy.write(chunk)
            last_id = f"(SELECT coalesce(max(id), 1) FROM {table})"
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last_id})")
            print(f"  copied {table} in {time.perf_counter() - t0:.1f} s", flush=True)
        conn.execute("VACUUM ANALYZE accounts")
        conn.execute("VACUUM ANALYZE events")
        conn.execute("VACUUM ANALYZE success_plans")
        conn.execute("INSERT INTO bench_preview_data (marker) VALUES (%s)", (_marker(n, seed),))
        return True, time.perf_counter() - started


def _create_database_if_missing(database_url: str) -> None:
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql") or not url.database:
        raise SystemExit(f"--database-url must be a PostgreSQL URL naming a database, got {database_url!r}")
    if url.database in ("postgres", "template0", "template1", "test", "northstar_bench"):
        raise SystemExit(f"refusing to fill the {url.database!r} database; point --database-url elsewhere")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database})
            if not exists:
                quoted = conn.dialect.identifier_preparer.quote(url.database)
                conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()


def _sql_count_up_to(session: Session, condition: Any, bound: int) -> tuple[int, int]:
    """(matches, undecided) among accounts with id <= bound, by SQL alone."""
    translation = translate(condition, now=NOW, up_to_account=bound)
    assert translation.state is not None
    state = translation.state
    matched, undecided = session.execute(
        select(func.count().filter(state.is_(True)), func.count().filter(state.is_(None))).select_from(
            translation.from_
        )
    ).one()
    return int(matched), int(undecided)


def run(args: argparse.Namespace) -> int:
    database_url = normalise_database_url(args.database_url)
    print(f"preparing {args.accounts:,} accounts in {make_url(database_url).database} ...", flush=True)
    generated, generate_s = prepare_data(database_url, args.accounts, args.seed, regenerate=args.regenerate)
    print("generated" if generated else "reused the data of an earlier run", f"({generate_s:.0f} s)")
    load_before = os.getloadavg()[0]
    engine = make_engine(database_url)
    rows: list[list[object]] = []
    sql_ms: list[float] = []
    fallback_us: list[float] = []
    mismatches = 0
    try:
        with Session(engine) as session:
            accounts = int(session.scalar(select(func.count()).select_from(Account)) or 0)
            bound = session.scalar(
                select(Account.id).order_by(Account.id).offset(args.fallback_accounts - 1).limit(1)
            )
            for label, condition in CONDITIONS:
                runs: list[Preview] = [preview(session, condition, now=NOW) for _ in range(args.repeat)]
                result = runs[-1]
                if result.method != "sql":
                    print(f"  {label}: not translated ({result.reason})")
                    mismatches += 1
                ms = statistics.median(r.elapsed_ms for r in runs)
                sql_ms.append(ms)
                batched = preview_in_batches(
                    session, condition, now=NOW, reason="baseline", fallback_limit=args.fallback_accounts
                )
                us = 1000 * batched.elapsed_ms / max(batched.evaluated, 1)
                fallback_us.append(us)
                in_sql, undecided = _sql_count_up_to(session, condition, bound or 0)
                agree = undecided == 0 and in_sql == batched.count
                mismatches += not agree
                rows.append(
                    [
                        label,
                        f"{result.count:,}",
                        f"{100 * result.count / max(result.total, 1):.1f} %",
                        result.evaluated,
                        f"{ms:.0f}",
                        f"{us:.0f}",
                        f"{us * accounts / 1e6:.0f}",
                        f"{in_sql:,} / {batched.count:,}" + ("" if agree else " MISMATCH"),
                    ]
                )
    finally:
        engine.dispose()
    print_table(
        f"preview — {accounts:,} accounts, {machine()}, load avg {load_before:.1f}; "
        f"SQL ms = median of {args.repeat} preview() calls",
        [
            "condition",
            "matches",
            "share",
            "evaluated in Python",
            "SQL ms",
            "batched µs/account",
            "batched s (all, est.)",
            f"first {args.fallback_accounts:,}: SQL / batched",
        ],
        rows,
    )
    for label, condition in CONDITIONS:
        print(f"  {label}: {json.dumps(condition, separators=(',', ':'))}")
    median_ms, max_ms = statistics.median(sql_ms), max(sql_ms)
    fallback = statistics.median(fallback_us)
    ratio = fallback * accounts / 1000 / median_ms
    print(f"\nbatched baseline measured on the first {args.fallback_accounts:,} accounts (µs/account)")
    verdict = "met" if max_ms < TARGET_MS else "MISSED"
    print(f"target < {TARGET_MS:.0f} ms per preview at {accounts:,} accounts: {verdict}")
    result_line(
        "preview",
        {
            "accounts": accounts,
            "max_ms": round(max_ms),
            "median_ms": round(median_ms),
            "fallback_us_per_account": round(fallback, 1),
            "ratio": round(ratio, 1),
            "mismatches": mismatches,
            "generated_s": round(generate_s),
        },
    )
    return 0 if mismatches == 0 else 1
