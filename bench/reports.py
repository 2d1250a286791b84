"""Seconds per segment report on the seeded data set (`northstar bench seed --accounts 1000000`).

Runs every report over the default range (the last 90 days), over the full two years, and a few
filtered and grouped variants, each `--repeat` times on a warm cache; prints the best and median
time per variant and ends with `reports: survey_funnel_s=… …` (the worst variant of each report).
The database is only read (each report runs in a transaction that is rolled back); the reports read
the summary rows the seeder builds (engine.reports.summaries), so it refuses to run without them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bench.common import machine, print_table, result_line
from bench.seed_reports import DEFAULT_DATABASE_URL
from engine.reports import REPORT_NAMES, parse_filters, run_report

TARGET_S = 2.0

VARIANTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("last 90 days", {}),
    ("2 years", {"from": "-729"}),
    ("segment=enterprise", {"segment": "enterprise"}),
    ("trait.industry=staffing, stage", {"trait.industry": "staffing", "stage": "adoption"}),
    ("campaign=onboard", {"campaign": "onboard"}),
    ("group_by=segment, 1 year", {"group_by": "segment", "from": "-364"}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_REPORTS_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="the seeded database (northstar bench seed); only read (default %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant (default %(default)s)")
    parser.add_argument("--report", action="append", choices=REPORT_NAMES, help="only these reports")
    parser.add_argument("--variant", action="append", help="only the variants whose label starts so")


def _params(variant: dict[str, str], today: dt.date) -> dict[str, str]:
    params = dict(variant)
    if "from" in params:
        params["from"] = (today + dt.timedelta(days=int(params["from"]))).isoformat()
    return params


def run(args: argparse.Namespace) -> int:
    from engine.db import make_engine
    from web.wiring import connect_all

    connect_all()
    engine = make_engine(args.database_url)
    today = dt.datetime.now(dt.UTC).date()
    with engine.connect() as conn:
        accounts = conn.scalar(select(func.count()).select_from(text("accounts"))) or 0
        events = conn.scalar(text("SELECT reltuples::bigint FROM pg_class WHERE relname = 'events'")) or 0
        migrated = conn.scalar(text("SELECT to_regclass('report_dirty') IS NOT NULL"))
        summarised = migrated and conn.scalar(text("SELECT count(*) FROM report_plan_facts"))
        stale = conn.scalar(text("SELECT count(*) FROM report_dirty")) if migrated else 0
    if not accounts:
        raise SystemExit(
            f"{args.database_url}: no accounts; run `northstar bench seed --accounts 1000000` first"
        )
    if not migrated:
        raise SystemExit(f"{args.database_url}: migrate it first (northstar db upgrade, migration 0016)")
    if not summarised or stale:
        raise SystemExit(
            f"{args.database_url}: the reports' summary rows are missing or stale ({stale:,} stale keys); "
            "run `northstar reports rebuild` (or `northstar reports refresh`) on it first"
        )
    load = os.getloadavg()[0]
    # A fixed yardstick measured alongside, so a busy machine's figures can be read as ratios:
    # one sequential pass over the 2.4M milestones (~0.15 s on an idle 2-core machine).
    with engine.connect() as conn:
        conn.execute(text("SET jit = off"))
        started = time.perf_counter()
        conn.execute(text("SELECT count(*), max(achieved_at) FROM milestones"))
        yardstick = time.perf_counter() - started
    print(f"yardstick (one pass over milestones): {yardstick:.3f} s, load avg {load:.1f}", flush=True)
    rows: list[list[object]] = []
    worst: dict[str, float] = {}
    for name in args.report or REPORT_NAMES:
        group = "channel" if name == "survey-funnel" else None
        for label, variant in VARIANTS:
            if args.variant and not any(label.startswith(v) for v in args.variant):
                continue
            params = _params(variant, today)
            if group and "group_by" not in params:
                params["group_by"] = group
            if name in ("campaign-funnel", "holdout-lift") and "campaign" in params:
                label += " (per campaign)"
            filters = parse_filters(params, today=today)
            times = []
            for _ in range(max(1, args.repeat)):
                with engine.connect() as conn:
                    session = Session(bind=conn)
                    started = time.perf_counter()
                    result = run_report(session, name, filters)
                    times.append(time.perf_counter() - started)
                    session.close()
                    conn.rollback()
            best, median = min(times), statistics.median(times)
            worst[name] = max(worst.get(name, 0.0), median)
            rows.append([name, label, f"{best:.3f}", f"{median:.3f}", len(result.rows)])
            print(f"  {name:<16} {label:<34} {median:7.3f} s", flush=True)
    print_table(
        f"reports — {accounts:,} accounts, ~{events:,} events, {machine()}, load avg {load:.1f} "
        f"(seconds, {args.repeat} runs each)",
        ["report", "variant", "best s", "median s", "rows"],
        rows,
    )
    slowest = max(worst.values())
    verdict = "met" if slowest < TARGET_S else "MISSED"
    print(f"target < {TARGET_S:.0f} s per report (median of the slowest variant): {verdict}")
    engine.dispose()
    result_line(
        "reports",
        {
            **{f"{name.replace('-', '_')}_s": round(worst[name], 3) for name in worst},
            "slowest_s": round(slowest, 3),
            "yardstick_s": round(yardstick, 3),
            "slowest_over_yardstick": round(slowest / yardstick, 1),
            "accounts": accounts,
            "events": events,
        },
    )
    return 0 if slowest < TARGET_S else 1
