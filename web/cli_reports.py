"""`northstar` commands for reports (registered by web.cli): the benchmark data set, summary rebuilds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from engine.db import Database


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
        help="Rebuild the reports' summary tables from the source rows, in one transaction: the "
        "outcomes/objectives picks (survey_choices), then the per-plan, per-key-result, per-enrolment, "
        "per-response and per-reach summary rows (after a restore or a bulk load; the reports queue "
        "keeps them current otherwise).",
    )
    def reports_rebuild() -> None:
        import time

        from engine.reports.summaries import rebuild_summaries
        from surveys.reports import rebuild_choices

        started = time.perf_counter()
        with _postgres() as database, database.transaction() as session:
            choices = rebuild_choices(session)
            counts = rebuild_summaries(session)  # also clears the keys the choices just marked
        click.echo(f"survey_choices rebuilt: {choices:,} rows")
        for name, rows in counts.items():
            click.echo(f"{name} summary rebuilt: {rows:,} rows")
        click.echo(f"in {time.perf_counter() - started:.1f} s")

    @reports.command(
        "refresh",
        help="Refresh the summary rows marked stale now, in this process (what the reports-queue "
        "job does after each change); prints how many stale keys it handled.",
    )
    def reports_refresh() -> None:
        from engine.reports.summaries import refresh_stale

        total = 0
        with _postgres() as database:
            while True:
                with database.transaction() as session:
                    done = refresh_stale(session)
                total += done
                if not done:
                    break
        click.echo(f"refreshed {total:,} stale keys")

    @contextlib.contextmanager
    def _postgres() -> Iterator[Database]:
        from web.cli import _app

        app = _app()
        with app.app_context():
            database: Database = app.extensions["northstar.db"]
            if database.engine.dialect.name != "postgresql":
                raise click.ClickException("summaries need PostgreSQL (the demo's SQLite reads the raw rows)")
            yield database
