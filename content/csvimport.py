"""Bulk import of content items from CSV: a dry-run report of what would change, then all or nothing.

One row per item and locale; the header names the columns (docs/content.md): key, kind, title, url,
summary, body, minutes, locale, and the tag columns outcomes, objectives, milestones, stages, roles,
whose values are separated by ';'. Every problem is reported with its line and column, and if
there is any, nothing is written.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.orm import Session

from content.library import find_row, item_changes, known_tags, save_item
from content.schemas import TAG_GROUPS, ContentItemSchema
from engine.errors import ValidationFailed

COLUMNS = ("key", "kind", "title", "url", "summary", "body", "minutes", "locale", *TAG_GROUPS)
REQUIRED = ("key", "kind", "title")
MAX_ROWS = 5000
MAX_BYTES = 5_000_000
TAG_SEPARATOR = ";"


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class RowPlan:
    line: int
    key: str
    locale: str
    action: str  # "create", "update" or "unchanged"
    changed: list[str]


@dataclass
class ImportReport:
    rows: list[RowPlan] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    applied: bool = False

    def count(self, action: str) -> int:
        return sum(1 for r in self.rows if r.action == action)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        verb = "" if self.applied else "would be "
        return (
            f"{self.count('create')} {verb}created, {self.count('update')} {verb}updated, "
            f"{self.count('unchanged')} unchanged"
        )


def _parse(text: str, report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        report.errors.append(
            RowError(0, "", f"the file is larger than {MAX_BYTES // 1_000_000} MB; split it")
        )
        return []
    if "\x00" in text:
        report.errors.append(RowError(0, "", "the file contains NUL characters (is it a CSV file?)"))
        return []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        report.errors.append(RowError(1, "", f"not readable as CSV: {exc}"))
        return []
    if not header:
        report.errors.append(RowError(1, "", "the file is empty; the first line names the columns"))
        return []
    names = [h.strip().lower() for h in header]
    for name in names:
        if name not in COLUMNS:
            report.errors.append(RowError(1, name, f"unknown column (the columns are: {', '.join(COLUMNS)})"))
    for name in REQUIRED:
        if name not in names:
            report.errors.append(RowError(1, name, "required column is missing"))
    if len(set(names)) != len(names):
        report.errors.append(RowError(1, "", "a column is named twice"))
    if report.errors:
        return []
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    try:
        for cells in reader:
            if len(rows) >= MAX_ROWS:
                report.errors.append(
                    RowError(line, "", f"at most {MAX_ROWS} rows per import; split the file")
                )
                return []
            if any(c.strip() for c in cells):
                if len(cells) != len(names):
                    report.errors.append(
                        RowError(
                            line,
                            "",
                            f"has {len(cells)} cells, the header has {len(names)} (a stray comma or quote?)",
                        )
                    )
                else:
                    rows.append((line, dict(zip(names, cells, strict=True))))
            line = reader.line_num + 1
    except csv.Error as exc:
        report.errors.append(RowError(line, "", f"not readable as CSV: {exc} (an unclosed quote?)"))
    return rows


def _row_data(cells: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in ("key", "kind", "title", "summary", "body"):
        if name in cells:
            data[name] = cells[name].strip() if name != "body" else cells[name]
    if cells.get("url", "").strip():
        data["url"] = cells["url"].strip()
    if cells.get("minutes", "").strip():
        data["minutes"] = cells["minutes"].strip()
    if cells.get("locale", "").strip():
        data["locale"] = cells["locale"].strip()
    data["tags"] = {
        group: [v.strip() for v in cells.get(group, "").split(TAG_SEPARATOR) if v.strip()]
        for group in TAG_GROUPS
    }
    return data


def _flat(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(messages, dict):
        out: list[tuple[str, str]] = []
        for key, inner in messages.items():
            out += _flat(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(prefix, " ".join(messages))]
    return [(prefix, str(messages))]


def _column(path: str) -> str:
    """'tags.stages.1' → 'stages' (the CSV column); 'minutes' stays."""
    parts = path.split(".")
    return parts[1] if parts[0] == "tags" and len(parts) > 1 else parts[0]


def plan_import(session: Session, text: str) -> tuple[ImportReport, list[dict[str, Any]]]:
    """What importing `text` would do (nothing is written), and the loaded rows."""
    report = ImportReport()
    rows = _parse(text, report)
    known = known_tags(session)
    loaded: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells in rows:
        raw = _row_data(cells)
        try:
            data = ContentItemSchema().load(raw)
        except ValidationError as exc:
            failed = {_column(path) for path, _ in _flat(exc.messages)}
            for path, message in _flat(exc.messages):
                report.errors.append(RowError(line, _column(path), message))
            # The library tags too, so one dry run lists every problem on the row.
            for path, message in known.unknown(raw["tags"]).items():
                if _column(path) not in failed:
                    report.errors.append(RowError(line, _column(path), message))
            continue
        for path, message in known.unknown(data["tags"]).items():
            report.errors.append(RowError(line, _column(path), message))
        ident = (data["key"], data["locale"])
        if ident in seen:
            report.errors.append(
                RowError(line, "key", f"{data['key']!r} ({data['locale']}) is also on line {seen[ident]}")
            )
            continue
        seen[ident] = line
        changes = item_changes(find_row(session, data["key"], data["locale"]), data)
        existing = find_row(session, data["key"], data["locale"]) is not None
        action = "create" if not existing else ("update" if changes else "unchanged")
        report.rows.append(
            RowPlan(line, data["key"], data["locale"], action, sorted(changes) if existing else [])
        )
        loaded.append(data)
    return report, loaded


def apply_import(session: Session, text: str) -> ImportReport:
    """Import every row, or none: any error raises ValidationFailed (errors by 'line N.column') and
    nothing is written; the caller commits on success."""
    report, loaded = plan_import(session, text)
    if report.errors:
        raise ValidationFailed({f"line {e.line}.{e.field or 'row'}": e.message for e in report.errors})
    known = known_tags(session)
    for data in loaded:
        save_item(session, data, known=known)
    report.applied = True
    return report
