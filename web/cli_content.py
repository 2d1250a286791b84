"""`northstar content` commands: bulk import of library items from CSV (dry run, then all or nothing)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from content.csvimport import ImportReport


def register(cli: click.Group) -> None:
    """Attach this area's commands to the `northstar` group."""

    @cli.group(help="Content library: bulk import items from CSV (see docs/content.md for the columns).")
    def content() -> None:
        pass

    @content.command(
        "import",
        help="Import content items from a CSV FILE. With --dry-run, report what would be created or "
        "updated and write nothing. Any broken row stops the whole import (nothing is written).",
    )
    @click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="only report what would change")
    def content_import(file: Path, dry_run: bool) -> None:
        from content.csvimport import MAX_BYTES, apply_import, plan_import
        from engine.errors import ValidationFailed
        from web.cli import _app

        try:
            with file.open("rb") as stream:
                raw = stream.read(MAX_BYTES + 1)  # never more: /dev/zero or a 600 MB file
            if len(raw) > MAX_BYTES:
                click.echo(f"{file}: larger than {MAX_BYTES // 1_000_000} MB; split it", err=True)
                sys.exit(2)
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            click.echo(f"{file}: not UTF-8 text; save the CSV as UTF-8 and try again", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"{file}: cannot read: {exc.strerror}", err=True)
            sys.exit(2)
        database = _app().extensions["northstar.db"]
        if dry_run:
            with database.session() as session:
                report, _ = plan_import(session, text)
        else:
            try:
                with database.transaction() as session:  # one transaction: every row or none
                    report = apply_import(session, text)
            except ValidationFailed:
                with database.session() as session:
                    report, _ = plan_import(session, text)  # the same problems, as lines to print
        print_report(report, file, dry_run)
        if report.errors:
            sys.exit(2)


def print_report(report: ImportReport, file: Path, dry_run: bool) -> None:
    for row in report.rows:
        detail = f" ({', '.join(row.changed)})" if row.changed else ""
        click.echo(f"  line {row.line}: {row.action} {row.key} [{row.locale}]{detail}")
    if report.errors:
        click.echo(f"{file}: {len(report.errors)} problem(s), nothing was imported", err=True)
        for error in report.errors:
            click.echo(f"  {error}", err=True)
        return
    prefix = "dry run, nothing written: " if dry_run else "imported: "
    click.echo(f"{file}: {prefix}{report.summary()}")
