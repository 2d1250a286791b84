"""The `northstar` command: one click group, also registered on the Flask app (`flask northstar`)."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from engine.config import Settings, masked, settings_from_env
from engine.errors import ConfigurationError, NorthstarError
from web import cli_content, cli_reports
from web.process import freeze_startup_heap

log = logging.getLogger("northstar")

WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²"


def _settings() -> Settings:
    try:
        return settings_from_env()
    except ConfigurationError as exc:
        raise click.ClickException(exc.detail) from None


def _app(settings: Settings | None = None) -> Flask:
    """The app for a command that reads or writes the database: refused, with what to do, while the
    database's schema is not the one this code expects or the Redis it is given does not answer
    (a command's commit may queue jobs; better to stop before the work than fail after it)."""
    from web import create_app

    try:
        app = create_app({"SETTINGS": settings or _settings()})
    except ConfigurationError as exc:
        raise click.ClickException(exc.detail) from None
    engine = app.extensions["northstar.db"].engine
    context = click.get_current_context(silent=True)
    if context is not None:  # the pool's connections close with the command, not with the collector
        context.call_on_close(engine.dispose)
    try:
        _require_services(app)
    except BaseException:
        engine.dispose()
        raise
    return app


def _require_services(app: Flask) -> None:
    from engine.queue import redis_reachable
    from migrations.runner import current_revision, head_revision

    redis = app.extensions["northstar.jobs"].redis
    if redis is not None and not redis_reachable(redis):
        raise click.ClickException(
            "NORTHSTAR_REDIS_URL is set but Redis does not answer: start it (`northstar doctor` "
            "checks it), or unset the variable"
        )
    database = app.extensions["northstar.db"]
    with database.engine.connect() as connection:
        current = current_revision(connection)
    head = head_revision()
    if current != head:
        raise click.ClickException(
            f"the database {masked(database.settings.database_url)} has schema "
            f"{current or '(none)'}, this code expects {head}: run `northstar db upgrade`"
        )


class NorthstarGroup(click.Group):
    """Ends a command whose database or Redis fails (unreachable, or refusing a value) with one line
    naming the service, never a traceback. Bad input the commands know about is refused before."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            raise click.ClickException(_database_failure(exc)) from None
        except RedisError as exc:
            raise click.ClickException(
                f"Redis: {exc}. Check NORTHSTAR_REDIS_URL and that Redis is running (`northstar doctor`)."
            ) from None


def _database_failure(exc: SQLAlchemyError) -> str:
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if isinstance(exc, OperationalError):
        return f"the database failed: {first}. Check NORTHSTAR_DATABASE_URL (`northstar doctor`)."
    return f"the database refused the command: {first}"


@click.group(
    cls=NorthstarGroup,
    help="Northstar: self-selected outcomes → one-page success plans → milestone nudges.",
)
def cli() -> None:
    pass


@cli.group(help="Database schema (Alembic).")
def db() -> None:
    pass


@db.command("upgrade", help="Upgrade the schema to the latest revision.")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    from alembic.util import CommandError

    from migrations.runner import revision_of, upgrade

    if not revision.strip():
        raise click.BadParameter("a revision id, or 'head'", param_hint="--revision")
    settings = _settings()
    try:
        upgrade(settings.database_url, revision)
    except CommandError as exc:
        raise click.ClickException(f"cannot upgrade to {revision!r}: {exc}") from None
    reached = revision_of(settings.database_url)
    click.echo(f"database at {reached or '(none)'}: {masked(settings.database_url)}")
    if revision != "head" and reached != revision:
        click.echo(f"(asked for {revision}: upgrade never goes back to an earlier revision)", err=True)


@cli.group(help="Playbooks: outcomes, objectives, rules, plan templates, surveys, content, campaigns.")
def playbook() -> None:
    pass


@playbook.command("import", help="Import a playbook: a bundled name (recruiting) or a YAML file.")
@click.argument("name_or_file")
def playbook_import(name_or_file: str) -> None:
    from engine.playbook import PlaybookInvalid, import_playbook, resolve_playbook

    app = _app()
    database = app.extensions["northstar.db"]
    try:
        label, text = resolve_playbook(name_or_file)
        with database.transaction() as session:
            counts = import_playbook(session, text)
    except PlaybookInvalid as exc:
        click.echo(f"{name_or_file}: invalid playbook, nothing was imported", err=True)
        for path, why in exc.errors.items():
            click.echo(f"  {path}: {why}", err=True)
        sys.exit(2)
    summary = ", ".join(f"{k}={v}" for k, v in counts.items())
    click.echo(f"imported {label}: {summary}")


@playbook.command(
    "export",
    help="Export this workspace's playbook as YAML (to stdout, or to FILE with -o); importing it "
    "into another workspace recreates the same library, plans, rules, surveys, content and campaigns.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write to this file")
@click.option("--name", default="exported", show_default=True, help="the playbook's name")
def playbook_export(output: str | None, name: str) -> None:
    from engine.playbook import export_playbook

    database = _app().extensions["northstar.db"]
    with database.session() as session:
        text = export_playbook(session, name=name)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        click.echo(f"cannot write {output}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"exported to {output}")


@cli.group(help="Rule sets: validate a version, simulate it against the published rules.")
def rules() -> None:
    pass


def _ruleset(session: Any, version: str) -> Any:
    from engine.rules import service
    from engine.rules.models import published_ruleset

    found = (
        service.current_draft(session)
        if version == "draft"
        else published_ruleset(session)
        if version == "published"
        else service.get_version(session, int(version))
        if WHOLE_NUMBER.fullmatch(version)
        else None
    )
    if found is None:
        named = version if version in ("draft", "published") else repr(version)
        raise click.ClickException(f"no {named} rule set (use a version number, 'draft' or 'published')")
    return found


@rules.command("validate", help="Errors (which block publishing) and findings of a rule set version.")
@click.argument("version", default="draft")
def rules_validate(version: str) -> None:
    from engine.rules import service

    with _app().extensions["northstar.db"].session() as session:
        try:
            report = service.validate_ruleset(session, _ruleset(session, version))
        except NorthstarError as exc:
            raise click.ClickException(exc.detail) from None
    for pointer, message in report.errors.items():
        click.echo(f"error   {pointer}: {message}")
    for finding in report.findings:
        click.echo(f"{finding.severity:<7} {finding.kind} [{', '.join(finding.rules)}]: {finding.message}")
    click.echo(f"{version}: {len(report.errors)} errors, {len(report.findings)} findings")
    sys.exit(1 if report.errors else 0)


@rules.command(
    "simulate", help="Run VERSION (default: the draft) and the published rules over real accounts."
)
@click.argument("version", default="draft")
@click.option("--sample", default="1000", show_default=True, help="number of accounts, or 'all'")
def rules_simulate(version: str, sample: str) -> None:
    from engine.db import utcnow
    from engine.rules import service

    if sample != "all" and not (WHOLE_NUMBER.fullmatch(sample) and int(sample) > 0):
        raise click.BadParameter("a positive number of accounts, or 'all'", param_hint="--sample")
    with _app().extensions["northstar.db"].session() as session:
        try:
            result = service.simulate(
                session,
                _ruleset(session, version),
                now=utcnow(),
                sample=None if sample == "all" else int(sample),
            )
        except NorthstarError as exc:
            raise click.ClickException(exc.detail) from None
    against = f"version {result.against_version}" if result.against_version else "no published rules"
    click.echo(
        f"version {result.version} vs {against}: {result.accounts_evaluated} of {result.accounts_total} "
        f"accounts evaluated, {result.accounts_changed} would change ({result.elapsed_ms:,.0f} ms)"
    )
    click.echo(f"{'effect':<44} {'before':>8} {'after':>8} {'gained':>8} {'lost':>8}")
    for e in result.effects:
        click.echo(f"{e.effect:<44} {e.before:>8} {e.after:>8} {e.gained:>8} {e.lost:>8}")
    for change in result.changes[:20]:
        moves = [f"+{g}" for g in change.gained] + [f"-{lost}" for lost in change.lost]
        click.echo(f"  {change.external_id}: {' '.join(moves)}")
    for finding in result.conflicts_seen:
        click.echo(f"conflict [{', '.join(finding.rules)}]: {finding.message}")


@cli.command(help="Print per-segment counts: accounts, surveyed, plans, messages, milestones.")
def report() -> None:
    from engine.reporting import segment_report
    from web.demo import format_report

    app = _app()
    with app.extensions["northstar.db"].session() as session:
        click.echo(format_report(segment_report(session)))


@cli.group("api-token", help="Bearer tokens for API v1.")
def api_token() -> None:
    pass


@api_token.command("create", help="Create a token and print it (shown only once).")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "editor", "viewer"]), default="editor", show_default=True)
def api_token_create(name: str, role: str) -> None:
    from engine.apitokens import create_token

    app = _app()
    try:
        with app.extensions["northstar.db"].transaction() as session:
            token = create_token(session, name, role)
    except NorthstarError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(token)


@cli.group(help="Workspaces: the widget's JWT secret and allowed origins.")
def workspace() -> None:
    pass


@workspace.command("set", help="Create or update a workspace; prints its JWT secret.")
@click.argument("key")
@click.option("--name", default=None)
@click.option("--origin", "origins", multiple=True, help="An origin allowed to embed the widget (repeat).")
@click.option("--rotate-secret", is_flag=True, help="New secret; the old one works for 7 more days.")
def workspace_set(key: str, name: str | None, origins: tuple[str, ...], rotate_secret: bool) -> None:
    from engine.db import utcnow
    from engine.workspaces import ensure_workspace
    from engine.workspaces import rotate_secret as rotate

    app = _app()
    try:
        with app.extensions["northstar.db"].transaction() as session:
            found = ensure_workspace(session, key, name=name, origins=list(origins))
            if rotate_secret:
                rotate(session, found, now=utcnow())
            click.echo(f"workspace {found.key}: origins {', '.join(found.allowed_origins) or '(none)'}")
            click.echo(f"jwt secret (HS256): {found.jwt_secret}")
    except NorthstarError as exc:
        raise click.ClickException(exc.detail) from None


@cli.group(help="Console users (roles: admin, editor, viewer).")
def user() -> None:
    pass


@user.command("create", help="Create a console user; the password is prompted (or read from stdin).")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor", "viewer"]), default="viewer", show_default=True)
@click.option("--name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    from engine.users import Role, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")  # a Windows line end is not part of it
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    app = _app()
    try:
        with app.extensions["northstar.db"].transaction() as session:
            create_user(session, email, password, role=Role(role), name=name)
    except NorthstarError as exc:
        raise click.ClickException(exc.detail) from None
    click.echo(f"created {role} {email.strip().lower()}")


@cli.command(help="Check the database, Redis and the mail backend; print what is wrong.")
def doctor() -> None:
    from web.doctor import run_checks

    problems = 0
    for name, ok, detail in run_checks(_settings()):
        click.echo(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        problems += 0 if ok else 1
    if problems:
        sys.exit(1)


@cli.command(help="Serve the web app (gunicorn when available, else Flask's server).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def web(host: str, port: int, workers: int) -> None:
    _settings()  # fail fast with one line
    if shutil.which("gunicorn") and sys.platform != "win32":
        click.echo(f"serving with gunicorn on http://{host}:{port} ({workers} workers)")
        cmd = ["gunicorn", "-w", str(workers), "-b", f"{host}:{port}", "web.wsgi:app"]
        sys.stdout.flush()
        # gunicorn takes this process's place, so a process manager's SIGTERM reaches its arbiter
        # (a child would be left running when `northstar web` is stopped).
        os.execvp(cmd[0], cmd)
    click.echo(f"gunicorn not found: serving with Flask's development server on http://{host}:{port}")
    _app().run(host=host, port=port)


@cli.command(help="Run an RQ worker on the default, delivery and reports queues.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option(
    "--fork",
    is_flag=True,
    help="Run each job in a forked child (RQ's Worker) instead of in this process (SimpleWorker).",
)
def worker(burst: bool, fork: bool) -> None:
    from rq import SimpleWorker, Worker

    from engine.queue import QUEUE_NAMES

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("NORTHSTAR_REDIS_URL is not set: the worker needs Redis")
    app = _app(settings)
    prepare_worker_process(app)
    runner = app.extensions["northstar.jobs"]
    # Jobs run in this process by default, as a gunicorn worker serves request after request: its
    # connection pool, compiled statements and caches stay warm. A forked child per job began
    # cold each time: ~60 ms of CPU before its first row (ADR 0012). `--fork` keeps RQ's
    # per-job isolation for whoever wants it at that price.
    worker_class = Worker if fork else SimpleWorker
    # with_scheduler: delivery retries (campaigns.scheduler.DELIVERY_RETRY) and RQ's retries of
    # abandoned jobs are *scheduled* jobs; without a scheduler they would never run again.
    worker_class(list(QUEUE_NAMES), connection=runner.redis).work(burst=burst, with_scheduler=True)


def prepare_worker_process(app: Flask) -> None:
    """Do once, before the first job, what every job (or every forked child, with `--fork`) would
    otherwise repeat: import the job modules and configure the ORM mappers. Then drop pooled
    connections so no child (the scheduler's, a forked job) inherits a socket, and put what
    start-up made out of the garbage collector's way (web.process.freeze_startup_heap)."""
    from sqlalchemy.orm import configure_mappers

    import campaigns.jobs  # noqa: F401

    configure_mappers()
    app.extensions["northstar.db"].engine.dispose()
    freeze_startup_heap()


@cli.command(help="Run the scheduler tick loop (a Redis lock keeps it to one at a time).")
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=float,
    callback=lambda _ctx, _param, value: _seconds(value, "--interval"),
    help="Seconds between ticks (0.5 to 3600).",
)
@click.option("--once", is_flag=True, help="Run one tick and exit.")
def scheduler(interval: float, once: bool) -> None:
    from web.scheduling import scheduler_loop

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("NORTHSTAR_REDIS_URL is not set: the scheduler needs Redis")
    scheduler_loop(_app(settings), interval=interval, once=once)


@cli.command(help="Run the whole flow on ~200 generated accounts and print the report.")
@click.option("--dir", "directory", default=None, help="Where the SQLite file and outbox go.")
@click.option("--accounts", default=200, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--serve", is_flag=True, help="Then serve the web app on 127.0.0.1:5000.")
@click.option("--seed", default=7, show_default=True, type=int)
def demo(directory: str | None, accounts: int, serve: bool, seed: int) -> None:
    from web.demo import run_demo

    try:
        run_demo(directory=directory, n_accounts=accounts, serve=serve, seed=seed)
    except ConfigurationError as exc:
        raise click.ClickException(exc.detail) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise click.ClickException(f"{where}{exc.strerror or exc}") from None


def _seconds(value: float, name: str) -> float:
    if not (math.isfinite(value) and 0.5 <= value <= 3600):
        raise click.BadParameter("seconds from 0.5 to 3600", param_hint=name)
    return value


cli_content.register(cli)
cli_reports.register(cli)


def register_commands(app: Flask) -> None:
    app.cli.add_command(cli, "northstar")


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="northstar")


if __name__ == "__main__":
    main()
