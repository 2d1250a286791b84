"""`northstar` commands for reports (registered by web.cli): the benchmark data set, summary rebuilds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click
from sqlalchemy.orm import Session


def register(cli: click.Group) -> None:
    """Attach this area's commands to the `northstar` group."""

    @cli.group(help="Benchmark data sets (a separate database; never the app's own).")
    def bench() -> None:
        pass

    @bench.command(
        "seed",
        help="DROP and CREATE the benchmark database, migrate it and fill it with the reports data set "
        "(accounts, contacts, survey responses, plans, milestones, key results, revisions, enrolments, "
        "messages, ~10 events per account), in SQL. Then: python -m bench reports.",
    )
    @click.option("--accounts", default=1_000_000, show_default=True, type=click.IntRange(1, 20_000_000))
    @click.option("--events-per-account", default=10, show_default=True, type=click.IntRange(0, 100))
    @click.option(
        "--database-url",
        envvar="BENCH_REPORTS_DATABASE_URL",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_reports",
        show_default=True,
        help="a PostgreSQL database this command may DROP (env BENCH_REPORTS_DATABASE_URL)",
    )
    def bench_seed(accounts: int, events_per_account: int, database_url: str) -> None:
        from sqlalchemy.exc import OperationalError

        from bench.seed_reports import seed

        click.echo(f"seeding {accounts:,} accounts into {database_url.rsplit('/', 1)[-1]}")
        try:
            result = seed(database_url, accounts, events_per_account=events_per_account, say=click.echo)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            raise click.ClickException(f"cannot reach PostgreSQL: {exc.orig}") from None
        click.echo(f"seeded {result.accounts:,} accounts in {result.seconds:.0f} s")

    @cli.group(help="Segment reports: rebuild the summary tables they read.")
    def reports() -> None:
        pass

    @reports.command(
        "rebuild",
        help="Rebuild the reports' summary tables from the source rows: the outcomes/objectives picks "
        "(survey_choices), then the per-plan, per-key-result, per-enrolment and per-response summary "
        "rows (after a restore or a bulk load; the reports queue keeps them current otherwise).",
    )
    def reports_rebuild() -> None:
        import time

        from engine.reports.summaries import rebuild_summaries
        from surveys.reports import rebuild_choices

        with _postgres_session() as session:
            started = time.perf_counter()
            count = rebuild_choices(session)
            click.echo(f"survey_choices rebuilt: {count:,} rows ({time.perf_counter() - started:.1f} s)")
        for name, rows in _rebuild_each(rebuild_summaries):
            click.echo(f"{name} summary rebuilt: {rows:,} rows")

    @reports.command(
        "refresh",
        help="Refresh the summary rows marked stale now, in this process (what the reports-queue "
        "job does after each change); prints how many stale keys it handled.",
    )
    def reports_refresh() -> None:
        from engine.reports.summaries import refresh_stale

        total = 0
        while True:
            with _postgres_session() as session:
                done = refresh_stale(session)
            total += done
            if not done:
                break
        click.echo(f"refreshed {total:,} stale keys")

    def _rebuild_each(rebuild: Any) -> Iterator[tuple[str, int]]:
        # One transaction for every summary: readers never see one rebuilt and another empty.
        with _postgres_session() as session:
            yield from rebuild(session).items()

    @contextlib.contextmanager
    def _postgres_session() -> Iterator[Session]:
        from web.cli import _app

        app = _app()
        with app.app_context():
            database = app.extensions["northstar.db"]
            with database.transaction() as session:
                if session.get_bind().dialect.name != "postgresql":
                    raise click.ClickException(
                        "summaries need PostgreSQL (the demo's SQLite reads the raw rows)"
                    )
                yield session
