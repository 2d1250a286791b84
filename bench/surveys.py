"""`python -m bench surveys`: widget size, and survey responses per second through plan creation.

Gunicorn serves the real app on PostgreSQL; an open-loop client sends widget-style submissions
(an HS256 identity JWT per contact, CORS origin, the outcomes survey answered in full) at a fixed
rate. Each request creates a response, runs the rules, creates a one-page plan and an enrolment.
Latency is measured from each request's *scheduled* start, so a slow server cannot hide its
queueing delay (no coordinated omission). Baseline in the same run: `GET /healthz` (one
`SELECT 1` and a Redis ping) at the same rate.

`--inprocess N` measures the cost of one submission instead (bench.surveys_inprocess): CPU time in
the app and in PostgreSQL, SQL statements and Redis commands, against `GET /healthz`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bench.common import BenchEnv, add_service_arguments, bench_env, machine, print_table, result_line
from bench.fixtures import create_accounts
from bench.http_load import Load, free_port, wait_ready
from bench.proc_cpu import CpuMeter, workers_cpu
from engine.accounts import Account
from engine.db import utcnow
from engine.plans.models import SuccessPlan
from engine.workspaces import ensure_workspace
from surveys.models import Response, ResponseStatus
from surveys.rules_queue import queued_count

WIDGET = Path(__file__).resolve().parent.parent / "web" / "static" / "embed" / "widget.js"
ORIGIN = "https://app.bench.example"
TARGET_P99_MS = 50.0
TARGET_GZIP = 10_000  # "< 10 KB gzipped", read strictly
HEALTH, POST = "baseline: GET /healthz", "POST response (widget JWT)"  # the phases' names
WARM = 100  # submissions before the first phase, not measured (as a server in service is warm)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser)
    parser.add_argument(
        "--rates",
        default="100,500",
        help="comma-separated request rates per second (open loop), one phase each",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each phase")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument(
        "--server",
        choices=("gunicorn", "granian"),
        default="gunicorn",
        help="the WSGI server: gunicorn sync workers (what `northstar web` runs), or granian for "
        "comparison (Rust HTTP, WSGI on its blocking threads; `pip install granian` first)",
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for the server, e.g. --server-arg=--worker-class=gthread (repeatable)",
    )
    parser.add_argument("--clients", type=int, default=48, help="client threads (keep-alive connections)")
    parser.add_argument(
        "--alone",
        type=int,
        default=300,
        metavar="N",
        help="before the load: N GET /healthz and N submissions one at a time (one client, no "
        "concurrency), for what a request costs alone against what it costs under load (0: skip)",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="niceness of the RQ worker (`northstar worker`) that runs the rules job beside gunicorn",
    )
    parser.add_argument(
        "--rules-workers",
        type=int,
        default=1,
        help="how many `northstar worker` processes make the plans (their jobs run side by side)",
    )
    parser.add_argument(
        "--rules-worker",
        choices=("during", "after"),
        default="during",
        help="start the RQ worker with the load (the real case) or only once it ends (the web tier alone)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=600.0, help="seconds to wait for the last plans after the load"
    )
    parser.add_argument(
        "--inprocess",
        type=int,
        default=0,
        metavar="N",
        help="instead of gunicorn: N submissions and N GET /healthz through the Flask test client, "
        "with CPU time (app and PostgreSQL), SQL statements and Redis commands per request",
    )
    parser.add_argument(
        "--limits",
        choices=("on", "off"),
        default="on",
        help="--inprocess: count the rate limiter's Redis round trips (limits raised) or switch it off",
    )
    parser.add_argument("--profile", metavar="FILE", help="--inprocess: write a cProfile of the submissions")


def widget_sizes() -> tuple[int, int]:
    raw = WIDGET.read_bytes() if WIDGET.exists() else b""
    return len(raw), len(gzip.compress(raw, compresslevel=9))


def answers(today: dt.date) -> dict[str, object]:
    return {
        "outcomes": ["hire_faster"],
        "objectives": ["careers_site_traffic", "applicant_conversion"],
        "key_results": {
            "careers_site_traffic": {
                "baseline": 8000,
                "target": 12000,
                "due_date": str(today + dt.timedelta(days=120)),
            },
            "applicant_conversion": {
                "baseline": 3,
                "target": 3.5,
                "due_date": str(today + dt.timedelta(days=90)),
            },
        },
        "role": "leader",
        "nps": 9,
    }


def run(args: argparse.Namespace) -> int:
    if args.inprocess:
        from bench.surveys_inprocess import run_inprocess

        with bench_env(args) as env:
            return run_inprocess(env, args, answers(utcnow().date()))
    raw, gz = widget_sizes()
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    totals = [int(rate * args.seconds) for rate in rates]
    with bench_env(args) as env:
        now = utcnow()
        with env.database.transaction() as session:
            secret = ensure_workspace(session, origins=[ORIGIN]).jwt_secret
        alone = max(0, args.alone)
        create_accounts(
            env.database, [1] * (WARM + alone + sum(totals)), prefix="sv", now=now, plan_template=None
        )
        exp = int((now + dt.timedelta(hours=1)).timestamp())
        tokens = [
            jwt.encode(
                {"sub": f"c-{i}", "account": f"sv-{i:06d}", "email": f"c{i}@sv.bench.example", "exp": exp},
                secret,
                algorithm="HS256",
            )
            for i in range(WARM + alone + sum(totals))
        ]
        body_template = answers(now.date())
        offset = 0

        def submit(i: int) -> tuple[str, str, bytes, dict[str, str]]:
            body = {"client_response_id": str(uuid.uuid4()), "channel": "in_app", "answers": body_template}
            headers = {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {tokens[offset + i]}",
                "Origin": ORIGIN,
                "X-Northstar-Workspace": "default",
            }
            return "POST", "/api/v1/surveys/outcomes/responses", json.dumps(body).encode(), headers

        def health(_i: int) -> tuple[str, str, bytes, dict[str, str]]:
            return "GET", "/healthz", b"", {}

        port = free_port()
        if args.server == "granian":
            command = [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers", str(args.workers)]
            command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-ws"]
        else:
            command = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}"]
            command += ["--log-level", "warning"]
        server = subprocess.Popen(
            [*command, *args.server_arg, "web.wsgi:app"],
            # The limits stay on, so their Redis round trips count. Every request comes from one
            # address here; verified widget answers skip the per-IP limit anyway (ADR 0010), and it
            # is raised so that a change there cannot make the bench measure 429s.
            env={**env.worker_env(), "NORTHSTAR_RESPONSE_LIMIT_PER_IP": "10000000/minute"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        # The production worker (every queue: the rules job, plan notifications, report refresh),
        # at a lower priority than the web server, as on a box that runs both.
        def start_workers() -> list[subprocess.Popen[bytes]]:
            return [
                subprocess.Popen(
                    ["nice", "-n", str(args.worker_nice), sys.executable, "-m", "web.cli", "worker"],
                    env=env.worker_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(args.rules_workers)
            ]

        workers: list[subprocess.Popen[bytes]] = []
        worker_pids: list[int] = []
        phases: list[tuple[str, int, Load, float]] = []
        alone_meter = CpuMeter(env, server.pid, [])
        alone_phases: list[tuple[str, Load, float]] = []
        windows: list[tuple[int, int]] = []  # account index range of each POST phase
        drain_s = worker_per_plan_ms = float("nan")
        drained = 0
        warmed = 0
        try:
            wait_ready(port)
            Load(port, 200, 200, 8, health).run()  # warm every worker: connections, then the
            warm = Load(port, 50, WARM, 8, submit)  # submission's statements and caches
            warm.run()
            warmed, offset = warm.statuses.get(201, 0), WARM
            if alone:  # one client sending back to back, no worker yet: the box to itself
                for name, make in ((HEALTH, health), (POST, submit)):
                    serial = Load(port, 1_000_000, alone, 1, make)
                    alone_phases.append((name, serial, alone_meter.measure(serial)))
                offset += alone
            if args.rules_worker == "during":  # it makes the answers' plans so far, then the load's
                workers = start_workers()
                worker_pids = [worker.pid for worker in workers]
                _drain(env, args.drain_timeout)
            meter = CpuMeter(env, server.pid, worker_pids)
            worker_from = (workers_cpu(worker_pids), _plan_count(env)) if worker_pids else None
            for rate, total in zip(rates, totals, strict=True):
                baseline = Load(port, rate, total, args.clients, health)
                phases.append((HEALTH, rate, baseline, meter.measure(baseline)))
                load = Load(port, rate, total, args.clients, submit)
                phases.append((POST, rate, load, meter.measure(load)))
                windows.append((offset, offset + total))
                offset += total
            server.terminate()
            workers = workers or start_workers()
            worker_pids = [worker.pid for worker in workers]
            drain_from = _plan_count(env)
            drain_s = _drain(env, args.drain_timeout)
            drained = _plan_count(env) - drain_from
            if worker_from is not None:
                cpu_from, plans_from = worker_from
                made = max(1, _plan_count(env) - plans_from)
                worker_per_plan_ms = 1000 * (workers_cpu(worker_pids) - cpu_from) / made
        finally:
            server.terminate()
            server.wait(timeout=20)
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
        with env.database.session() as session:
            stored = session.scalar(
                select(func.count()).select_from(Response).where(Response.status == ResponseStatus.COMPLETED)
            )
            plans = session.scalar(select(func.count()).select_from(SuccessPlan))
            lags = _plan_lags(session)
    values_cpu: dict[str, float] = {}
    rows = [
        [
            name,
            rate,
            len(phase.latencies),
            f"{sum(n for s, n in phase.statuses.items() if 200 <= s < 300) / seconds:.0f}",
            f"{phase.percentile(50):.1f}",
            f"{phase.percentile(99):.1f}",
            json.dumps(phase.statuses),
        ]
        for name, rate, phase, seconds in phases
    ]
    print_table(
        f"surveys — {args.server} {args.workers} workers {' '.join(args.server_arg)}, open loop, "
        f"{args.seconds:.0f}s/phase, {machine()}",
        ["path", "offered/s", "requests", "ok/s", "p50 ms", "p99 ms", "statuses"],
        rows,
    )
    cpu_rows = []
    for (name, rate, phase, _seconds), cpu in zip(phases, meter.phases, strict=True):
        n = max(1, len(phase.latencies))
        server_side = cpu["web"] + cpu["postgres"] + cpu["worker"]
        cpu_rows.append(
            [
                name,
                rate,
                *(f"{1000 * cpu[k] / n:.2f}" for k in ("web", "postgres", "worker", "client")),
                f"{1000 * server_side / n:.2f}",
                f"{rate * server_side / n:.2f}",
            ]
        )
        prefix = f"r{rate}_health" if name.startswith("baseline") else f"r{rate}"
        values_cpu[f"{prefix}_web_cpu_ms"] = round(1000 * cpu["web"] / n, 2)
        if worker_pids and not name.startswith("baseline"):
            values_cpu[f"r{rate}_worker_cpu_ms"] = round(1000 * cpu["worker"] / n, 2)
            values_cpu[f"r{rate}_server_cores"] = round(rate * server_side / n, 2)
    for rate in rates:
        health_cpu = values_cpu.get(f"r{rate}_health_web_cpu_ms") or float("nan")
        values_cpu[f"r{rate}_web_cpu_ratio"] = round(values_cpu[f"r{rate}_web_cpu_ms"] / health_cpu, 2)
    print_table(
        "CPU per request, ms (this run's /healthz phase is the yardstick on a machine whose speed varies; "
        "worker: the RQ worker making plans meanwhile, with --rules-worker during; server = gunicorn + "
        "postgres + worker, and the cores that takes at the offered rate)",
        ["path", "offered/s", "gunicorn", "postgres", "worker", "client", "server", "server cores"],
        cpu_rows,
    )
    if alone_phases:
        _print_alone(alone_phases, alone_meter, phases, meter, values_cpu)
    accepted = warmed + sum(
        phase.statuses.get(201, 0) for name, _r, phase, _s in phases if name.startswith("POST")
    )
    accepted += sum(
        serial.statuses.get(201, 0) for name, serial, _s in alone_phases if name.startswith("POST")
    )
    verdict = "met" if gz < TARGET_GZIP else "MISSED"
    print(f"widget.js: {raw} bytes raw, {gz} bytes gzip -9 (target < {TARGET_GZIP}: {verdict})")
    print(f"stored: {stored} completed responses and {plans} plans for {accepted} accepted requests")
    values: dict[str, object] = {"widget_bytes": raw, "widget_gzip_bytes": gz}
    for name, rate, phase, seconds in phases:
        if name.startswith("POST"):
            ok = phase.statuses.get(201, 0)
            values[f"r{rate}_ok_per_s"] = round(ok / seconds)
            values[f"r{rate}_p50_ms"] = round(phase.percentile(50), 1)
            values[f"r{rate}_p99_ms"] = round(phase.percentile(99), 1)
            met = phase.percentile(99) < TARGET_P99_MS and ok == len(phase.latencies)
            print(
                f"at {rate} req/s: p99 {phase.percentile(99):.1f} ms (target < {TARGET_P99_MS:.0f}): "
                f"{'met' if met else 'MISSED'}"
            )
        else:
            values[f"r{rate}_health_p99_ms"] = round(phase.percentile(99), 1)
    print(
        f"plans: {plans} for {accepted} accepted; the last made {drain_s:.1f} s after the load ended "
        f"({args.rules_workers} worker{'s' if args.rules_workers > 1 else ''}, nice {args.worker_nice}); "
        f"{drained} of them in that drain: {drained / drain_s if drain_s > 0 else float('nan'):.0f} plans/s"
    )
    lag_rows = []
    for (first, last), rate in zip(windows, rates, strict=True):
        phase_lags = sorted(lag for index, lag in lags if first <= index < last)
        lag_rows.append([rate, len(phase_lags), *(f"{_pct(phase_lags, p):.2f}" for p in (50, 99, 100))])
        values[f"r{rate}_plan_lag_p50_s"] = round(_pct(phase_lags, 50), 2)
        values[f"r{rate}_plan_lag_p99_s"] = round(_pct(phase_lags, 99), 2)
    print_table(
        "response → plan (the rules job), seconds from the response's commit to its plan's",
        ["offered/s", "plans", "p50 s", "p99 s", "max s"],
        lag_rows,
    )
    if worker_per_plan_ms == worker_per_plan_ms:
        print(
            f"the worker's CPU per plan over the phases and the drain: {worker_per_plan_ms:.2f} ms "
            "(per phase above it counts only while the worker keeps up)"
        )
        values["worker_cpu_per_plan_ms"] = round(worker_per_plan_ms, 2)
    values.update(values_cpu)
    values["plans"] = plans
    values["drain_s"] = round(drain_s, 1)
    values["drain_plans_per_s"] = round(drained / drain_s) if drain_s > 0 else None
    values["rules_workers"] = args.rules_workers
    result_line("surveys", values)
    return 0 if accepted == stored == plans and drain_s == drain_s else 1


def _print_alone(
    alone_phases: list[tuple[str, Load, float]],
    alone_meter: CpuMeter,
    phases: list[tuple[str, int, Load, float]],
    meter: CpuMeter,
    values: dict[str, float],
) -> None:
    """What a request costs gunicorn and PostgreSQL one at a time (no worker running yet), and each
    loaded phase's cost against it: what contention adds within the run (bench/RESULTS.md,
    session 11: 0-10 % for a submission)."""
    alone_ms: dict[str, tuple[float, float]] = {}
    rows: list[list[object]] = []
    for (name, serial, seconds), cpu in zip(alone_phases, alone_meter.phases, strict=True):
        n = max(1, len(serial.latencies))
        web, pg = 1000 * cpu["web"] / n, 1000 * cpu["postgres"] / n
        alone_ms[name] = (web, pg)
        rows.append([name, "alone", f"{web:.2f}", f"{pg:.2f}", f"{1000 * seconds / n:.2f}", ""])
        values["alone_health_web_cpu_ms" if name.startswith("baseline") else "alone_web_cpu_ms"] = round(
            web, 2
        )
    for (name, rate, phase, _s), cpu in zip(phases, meter.phases, strict=True):
        n = max(1, len(phase.latencies))
        web = 1000 * cpu["web"] / n
        ratio = web / alone_ms[name][0] if alone_ms[name][0] else float("nan")
        rows.append([name, rate, f"{web:.2f}", f"{1000 * cpu['postgres'] / n:.2f}", "", f"{ratio:.2f}"])
        key = (
            f"r{rate}_health_web_cpu_vs_alone" if name.startswith("baseline") else f"r{rate}_web_cpu_vs_alone"
        )
        values[key] = round(ratio, 2)
    print_table(
        "CPU per request, ms, alone (one request at a time) and under each load, with gunicorn's "
        "cost under load ÷ its cost alone",
        ["path", "offered/s", "gunicorn", "postgres", "wall ms", "gunicorn ÷ alone"],
        rows,
    )


def _plan_count(env: BenchEnv) -> int:
    with env.database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SuccessPlan)) or 0)


def _drain(env: BenchEnv, timeout: float) -> float:
    """Seconds until no response waits for the rules job (NaN if `timeout` passes first)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with env.database.session() as session:
            if queued_count(session) == 0:
                return time.perf_counter() - started
        time.sleep(0.2)
    return float("nan")


def _plan_lags(session: Session) -> list[tuple[int, float]]:
    """(account index, seconds from the response's completion to its plan's creation) per response."""
    rows = session.execute(
        select(Account.external_id, Response.completed_at, SuccessPlan.created_at)
        .join(Response, Response.account_id == Account.id)
        .join(SuccessPlan, SuccessPlan.account_id == Account.id)
        .where(Account.external_id.like("sv-%"), Response.completed_at.is_not(None))
    )
    return [(int(ext[3:]), (made - done).total_seconds()) for ext, done, made in rows if done is not None]


def _pct(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
