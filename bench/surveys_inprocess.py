"""`python -m bench surveys --inprocess N`: what one survey submission costs, without the network.

N widget-style submissions (identity JWT, CORS origin, the outcomes survey answered in full; each
creates a response, runs the rules, creates a plan and an enrolment) go through the Flask test
client in this process, then N `GET /healthz` for the same-run baseline. Per request it reports
this process's CPU time (`time.process_time`), the PostgreSQL backends' CPU time (utime + stime
from `/proc/<pid>/stat` of the bench database's backends), SQL statements (SQLAlchemy's
`before_cursor_execute`) and Redis commands. CPU time and counts survive a noisy machine where
wall-clock latency does not. `--profile FILE` also writes a cProfile of the measured submissions.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import json
import os
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import redis
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from bench.common import BenchEnv, print_table, profile_report, result_line
from bench.fixtures import create_accounts
from engine.db import utcnow
from engine.workspaces import ensure_workspace
from surveys.rules_queue import apply_queued_rules_job

ORIGIN = "https://app.bench.example"
WARMUP = 20
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Cost:
    """Totals over `n` requests of one kind."""

    n: int = 0
    cpu_s: float = 0.0
    pg_cpu_s: float = 0.0
    wall_s: float = 0.0
    statements: int = 0
    redis_commands: int = 0
    sql_s: float = 0.0
    by_statement: Counter[str] = dataclasses.field(default_factory=Counter)
    time_by_statement: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))
    pg_by_statement: dict[str, float] = dataclasses.field(default_factory=lambda: defaultdict(float))

    def per(self, total: float, scale: float = 1.0) -> float:
        return scale * total / self.n if self.n else 0.0


class Counters:
    """SQL statements (with their wall time) and Redis commands issued by this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, float, float]] = []
        self.redis_commands = 0
        # Also read the backend's CPU clock around every statement (costs this process CPU, so
        # only for the profiled run): clock ticks are coarse, but summed over many statements of
        # one shape they estimate PostgreSQL's own time per statement.
        self.backend_clock = False
        self._started: float = 0.0
        self._ticks: float = 0.0

    def _before(self, conn: Any, *_: Any) -> None:
        if self.backend_clock:
            self._ticks = _backend_ticks(conn.connection.dbapi_connection.info.backend_pid)
        self._started = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        wall = time.perf_counter() - self._started
        pg = 0.0
        if self.backend_clock:
            pg = (
                _backend_ticks(conn.connection.dbapi_connection.info.backend_pid) - self._ticks
            ) / CLOCK_TICKS
        self.statements.append((_shape(statement), wall, pg))

    @contextmanager
    def installed(self) -> Iterator[Counters]:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        original_command: Any = redis.Redis.execute_command
        original_pipeline: Any = redis.client.Pipeline.execute
        counters = self

        def command(client: redis.Redis, *args: Any, **kwargs: Any) -> Any:
            counters.redis_commands += 1
            return original_command(client, *args, **kwargs)

        def pipeline(pipe: redis.client.Pipeline, *args: Any, **kwargs: Any) -> Any:
            counters.redis_commands += 1  # one round trip, however many commands it carries
            return original_pipeline(pipe, *args, **kwargs)

        redis.Redis.execute_command = command  # type: ignore[method-assign,assignment]
        redis.client.Pipeline.execute = pipeline  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            redis.Redis.execute_command = original_command  # type: ignore[method-assign]
            redis.client.Pipeline.execute = original_pipeline  # type: ignore[method-assign]
            event.remove(self.engine, "before_cursor_execute", self._before)
            event.remove(self.engine, "after_cursor_execute", self._after)


def _shape(statement: str) -> str:
    """A statement's shape: whitespace folded, IN-lists and numbered parameters collapsed."""
    shape = re.sub(r"\s+", " ", statement).strip()
    shape = re.sub(r"__\[POSTCOMPILE_\w+\]", "(…)", shape)
    return shape[:150]


def _backend_ticks(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # PostgreSQL on another machine: no per-statement server time
    return float(int(fields[11]) + int(fields[12]))


def backend_cpu(env: BenchEnv) -> float:
    """CPU seconds used so far by every PostgreSQL backend connected to the bench database."""
    return sum(backend_cpu_by_pid(env).values())


def backend_cpu_by_pid(env: BenchEnv) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the bench database (asked on a
    connection of its own: the app's pooled connection is one of those backends)."""
    engine = create_engine(env.database.engine.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pids = list(
                conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        engine.dispose()
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # not on this machine, or gone
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def measure(
    env: BenchEnv,
    counters: Counters,
    n: int,
    request: Callable[[int], Any],
    profile: cProfile.Profile | None = None,
) -> Cost:
    cost = Cost(n=n)
    counters.statements.clear()
    counters.redis_commands = 0
    pg_before = backend_cpu(env)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    for i in range(n):
        request(i)
    if profile is not None:
        profile.disable()
    cost.cpu_s = time.process_time() - cpu_before
    cost.wall_s = time.perf_counter() - wall_before
    statements = list(counters.statements)
    cost.pg_cpu_s = backend_cpu(env) - pg_before
    cost.statements = len(statements)
    cost.redis_commands = counters.redis_commands
    for shape, seconds, pg_seconds in statements:
        cost.by_statement[shape] += 1
        cost.time_by_statement[shape] += seconds
        cost.pg_by_statement[shape] += pg_seconds
        cost.sql_s += seconds
    return cost


def run_inprocess(env: BenchEnv, args: argparse.Namespace, answers: dict[str, object]) -> int:
    n = int(args.inprocess)
    settings = env.settings
    if args.limits == "on":
        # The limiter's Redis round trips count; the limits themselves must not refuse the run.
        settings = dataclasses.replace(
            settings, response_limit_per_ip="1000000/minute", response_limit_per_contact="1000000/minute"
        )
    else:
        settings = dataclasses.replace(settings, rate_limits_enabled=False)
        env.app.config["RATELIMIT_ENABLED"] = False
    env.app.extensions["northstar.settings"] = settings
    now = utcnow()
    with env.database.transaction() as session:
        secret = ensure_workspace(session, origins=[ORIGIN]).jwt_secret
    profiled = n if args.profile else 0
    total = WARMUP + n + profiled
    create_accounts(env.database, [1] * total, prefix="ip", now=now, plan_template=None)
    exp = int((now + dt.timedelta(hours=1)).timestamp())
    tokens = [
        jwt.encode(
            {"sub": f"c-{i}", "account": f"ip-{i:06d}", "email": f"c{i}@ip.bench.example", "exp": exp},
            secret,
            algorithm="HS256",
        )
        for i in range(total)
    ]
    client: FlaskClient = env.app.test_client()
    statuses: Counter[int] = Counter()

    def submit(i: int) -> None:
        body = {"client_response_id": str(uuid.uuid4()), "channel": "in_app", "answers": answers}
        response = client.post(
            "/api/v1/surveys/outcomes/responses",
            data=json.dumps(body),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {tokens[i]}",
                "Origin": ORIGIN,
                "X-Northstar-Workspace": "default",
            },
        )
        statuses[response.status_code] += 1
        plan = (response.get_json() or {}).get("plan") or {}
        if response.status_code != 201 or plan.get("status") != "pending":
            raise SystemExit(
                f"submission {i} failed: {response.status_code} {response.get_data(as_text=True)}"
            )

    def health(_i: int) -> None:
        response = client.get("/healthz")
        statuses[response.status_code] += 1

    counters = Counters(env.database.engine)
    # CPU time, not wall: waiting on PostgreSQL is not what a submission costs this process.
    profile = cProfile.Profile(time.process_time) if args.profile else None

    def apply_rules(i: int) -> None:  # one job run over all n queued responses, counted per response
        if i == 0 and apply_queued_rules_job() != n:
            raise SystemExit("the rules job did not apply every queued response")

    job_profile = cProfile.Profile(time.process_time) if args.profile else None
    with counters.installed():
        for i in range(WARMUP):
            submit(i)
            health(i)
        apply_queued_rules_job()
        submission = measure(env, counters, n, lambda i: submit(WARMUP + i))
        rules_job = measure(env, counters, n, apply_rules, job_profile)
        healthz = measure(env, counters, n, health)
        profiled_cost = None
        if profile is not None:  # a separate run: the profiler's own cost must not count above
            counters.backend_clock = True
            profiled_cost = measure(env, counters, profiled, lambda i: submit(WARMUP + n + i), profile)
    rows = [
        [
            name,
            c.n,
            f"{c.per(c.cpu_s, 1000):.2f}",
            f"{c.per(c.pg_cpu_s, 1000):.2f}",
            f"{c.per(c.cpu_s + c.pg_cpu_s, 1000):.2f}",
            f"{c.per(c.wall_s, 1000):.2f}",
            f"{c.per(c.sql_s, 1000):.2f}",
            f"{c.per(c.statements):.1f}",
            f"{c.per(c.redis_commands):.1f}",
        ]
        for name, c in (
            ("POST response (widget JWT)", submission),
            ("rules job, per response (→ plan)", rules_job),
            ("baseline: GET /healthz", healthz),
        )
    ]
    print_table(
        f"surveys in-process — Flask test client, {n} requests each, rate limits {args.limits}",
        [
            "path",
            "n",
            "app CPU ms",
            "PG CPU ms",
            "CPU ms",
            "wall ms",
            "SQL wall ms",
            "statements",
            "redis cmds",
        ],
        rows,
    )
    for label, c in (("submission", submission), ("response the rules job applied", rules_job)):
        print(f"statements per {label} (count, SQL wall ms per {label.split()[0]}):")
        for shape, count in sorted(c.by_statement.items(), key=lambda kv: -c.time_by_statement[kv[0]]):
            print(f"  {count / n:5.2f}  {1000 * c.time_by_statement[shape] / n:6.2f}  {shape}")
    if profiled_cost is not None:
        c = profiled_cost
        print(f"PostgreSQL CPU per submission by statement (profiled run, {c.n} submissions):")
        for shape, seconds in sorted(c.pg_by_statement.items(), key=lambda kv: -kv[1]):
            print(f"  {1000 * seconds / c.n:6.2f}  {shape}")
        outside = c.pg_cpu_s - sum(c.pg_by_statement.values())
        print(f"  {1000 * outside / c.n:6.2f}  (outside statements: COMMIT…)")
    if profile is not None and job_profile is not None:
        profile.dump_stats(args.profile)
        print(profile_report([Path(args.profile)], focus=r"northstar|engine|surveys|campaigns|web", top=25))
        job_profile.dump_stats(f"{args.profile}.job")
        print(f"rules job ({args.profile}.job):")
        print(profile_report([Path(f"{args.profile}.job")], focus=r"engine|surveys|campaigns", top=25))
    cost = submission.cpu_s + submission.pg_cpu_s
    base = healthz.cpu_s + healthz.pg_cpu_s
    result_line(
        "surveys_inprocess",
        {
            "n": n,
            "submit_cpu_ms": round(submission.per(submission.cpu_s, 1000), 2),
            "submit_pg_cpu_ms": round(submission.per(submission.pg_cpu_s, 1000), 2),
            "submit_statements": round(submission.per(submission.statements), 1),
            "submit_redis_cmds": round(submission.per(submission.redis_commands), 1),
            "rules_job_cpu_ms": round(rules_job.per(rules_job.cpu_s, 1000), 2),
            "rules_job_pg_cpu_ms": round(rules_job.per(rules_job.pg_cpu_s, 1000), 2),
            "rules_job_statements": round(rules_job.per(rules_job.statements), 1),
            "healthz_cpu_ms": round(healthz.per(healthz.cpu_s, 1000), 2),
            "healthz_pg_cpu_ms": round(healthz.per(healthz.pg_cpu_s, 1000), 2),
            "cpu_ratio_vs_healthz": round(cost / base, 1) if base else "inf",
            "statuses": dict(statuses),
        },
    )
    return 0
