"""Shared benchmark plumbing: a dedicated database, Redis DB 14, the SendGrid sink, the app, output.

`bench_env(args)` drops and recreates `northstar_bench`, runs the migrations, flushes Redis DB 14,
starts a `SendGridSink`, builds the app with `web.create_app` and imports the recruiting playbook.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import pstats
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from flask import Flask
from redis import Redis

from bench import pgadmin
from campaigns.sink import SendGridSink
from engine.config import Settings, normalise_database_url
from engine.db import Database
from engine.queue import JobRunner

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/northstar_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
BENCH_SECRET = "bench-secret-key-0123456789"
BENCH_PUBLIC_URL = "http://northstar.bench"


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL URL of a database this benchmark may DROP and CREATE "
        "(env BENCH_DATABASE_URL; default %(default)s)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis URL whose DB is flushed (env BENCH_REDIS_URL; default %(default)s)",
    )


def recreate_database(database_url: str) -> None:
    """DROP and CREATE the benchmark database (bench.pgadmin); a bad URL ends the run with its message."""
    try:
        pgadmin.recreate_database(database_url)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


@dataclass
class BenchEnv:
    settings: Settings
    app: Flask
    database: Database
    redis: Redis
    sink: SendGridSink

    @property
    def runner(self) -> JobRunner:
        found: JobRunner = self.app.extensions["northstar.jobs"]
        return found

    def worker_env(self) -> dict[str, str]:
        """The environment a `python -m bench.worker` subprocess builds the same app from."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NORTHSTAR_", "SENDGRID_"))}
        env.update(
            NORTHSTAR_DATABASE_URL=self.settings.database_url,
            NORTHSTAR_REDIS_URL=str(self.settings.redis_url),
            NORTHSTAR_SECRET_KEY=self.settings.secret_key,
            NORTHSTAR_MAIL_BACKEND="sendgrid",
            SENDGRID_API_KEY=str(self.settings.sendgrid_api_key),
            NORTHSTAR_SENDGRID_API_HOST=self.settings.sendgrid_api_host,
            NORTHSTAR_PUBLIC_URL=self.settings.public_url,
        )
        return env


@contextmanager
def bench_env(args: argparse.Namespace, *, playbook: str = "recruiting") -> Iterator[BenchEnv]:
    from engine.playbook import import_playbook, resolve_playbook
    from migrations.runner import upgrade
    from web import create_app

    database_url = normalise_database_url(args.database_url)
    recreate_database(database_url)
    upgrade(database_url)
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    with SendGridSink() as sink:
        settings = Settings(
            database_url=database_url,
            redis_url=args.redis_url,
            secret_key=BENCH_SECRET,
            mail_backend="sendgrid",
            sendgrid_api_key="SG.bench",
            sendgrid_api_host=sink.url,
            public_url=BENCH_PUBLIC_URL,
        )
        app = create_app({"SETTINGS": settings})
        logging.getLogger().setLevel(logging.WARNING)  # create_app sets INFO; keep the table readable
        database: Database = app.extensions["northstar.db"]
        with database.transaction() as session:
            import_playbook(session, resolve_playbook(playbook)[1])
        try:
            yield BenchEnv(settings, app, database, redis, sink)
        finally:
            database.engine.dispose()
            redis.flushdb()
            redis.close()


def machine() -> str:
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} cores, {system}, Python {platform.python_version()}"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first, *rest = row
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


def result_line(name: str, values: dict[str, object]) -> str:
    """The one machine-readable last line: `<name>: key=value key=value ...`."""
    parts = [f"{k}={_plain(v)}" for k, v in values.items()]
    line = f"{name}: " + " ".join(parts)
    print(line, flush=True)
    return line


def _plain(value: object) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return str(value).replace(" ", "_")


def profile_report(paths: list[Path], *, focus: str | None = None, top: int = 18) -> str:
    """Top functions by own time, then (if `focus`, a path regex) by cumulative time."""
    out = StringIO()
    stats = pstats.Stats(*[str(p) for p in paths], stream=out)
    stats.sort_stats("tottime").print_stats(top)
    if focus:
        stats.sort_stats("cumulative").print_stats(focus, 2 * top)
    return out.getvalue()
