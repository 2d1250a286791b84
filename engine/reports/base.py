"""The reports contract: filters, result shapes, the report registry and CSV export.

Engine owns the framework (and the plan/milestone reports); `surveys` and `campaigns` register the
reports that read their own tables (docs/adr/0002-registries-for-upward-contributions.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, select, text
from sqlalchemy.orm import Session

from engine.accounts import Account, TraitDefinition
from engine.db import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.plans.models import LIFECYCLE_STAGES

REPORT_NAMES = ("survey-funnel", "outcomes", "plan-adoption", "milestones", "campaign-funnel", "holdout-lift")
GROUP_BY_FIXED = ("segment", "stage", "channel")
MAX_RANGE_DAYS = 731  # two years, a leap day included
DEFAULT_RANGE_DAYS = 90
_TRAIT_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")


@dataclass(frozen=True)
class Filters:
    start: dt.date  # inclusive
    end: dt.date  # inclusive
    segment: str | None = None  # Account.segment
    stage: str | None = None  # lifecycle stage
    campaign: str | None = None  # campaign key
    traits: tuple[tuple[str, str], ...] = ()  # declared traits (trait.<name>=value in the query)
    group_by: str | None = None  # "segment" | "stage" | "channel" | "trait.<name>" | None

    @property
    def start_at(self) -> dt.datetime:
        """First instant of the range (UTC)."""
        return dt.datetime.combine(self.start, dt.time.min, tzinfo=dt.UTC)

    @property
    def end_before(self) -> dt.datetime:
        """First instant after the range (exclusive upper bound)."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)

    def as_params(self) -> dict[str, str]:
        """The query-string form parse_filters reads back (for links and CSV)."""
        params = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        for key in ("segment", "stage", "campaign", "group_by"):
            value = getattr(self, key)
            if value:
                params[key] = value
        for name, value in self.traits:
            params[f"trait.{name}"] = value
        return params


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str  # "text" | "int" | "pct" (0..1) | "days" | "number"


# Headline numbers with no column of their own (a report's `headline` dict): words and kinds for
# the console's cards and the weekly digest alike.
HEADLINE_WORDS = {"ttv": "time to value", "kr": "KR", "nps": "NPS", "csat": "CSAT", "pct": "%"}
HEADLINE_PCT_HINTS = ("rate", "share", "pct", "lift", "conversion", "attainment")


def headline_kind(key: str, value: float | int | None) -> str:
    """The kind of a headline number that no column describes, guessed from its key and value."""
    if isinstance(value, float) and any(hint in key for hint in HEADLINE_PCT_HINTS):
        return "pct"
    if "days" in key:
        return "days"
    if isinstance(value, int):
        return "int"
    return "number"


def headline_label(key: str, kind: str) -> str:
    """A headline key with no column of its own as words: ttv_median_days -> Time to value median."""
    words = [HEADLINE_WORDS.get(word, word) for word in key.split("_")]
    if kind == "days" and len(words) > 1 and words[-1] == "days":
        words = words[:-1]  # the value already says "days"
    text = " ".join(words)
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]
    low: list[float | None] | None = None  # interval bounds, same length as values
    high: list[float | None] | None = None


@dataclass(frozen=True)
class Chart:
    kind: str  # "bar" | "hbar" | "funnel" | "line" | "interval"
    title: str
    labels: list[str]
    series: list[Series]
    unit: str = ""


@dataclass(frozen=True)
class ReportResult:
    name: str
    title: str
    description: str
    filters: Filters
    columns: list[Column]
    rows: list[dict[str, Any]]
    charts: list[Chart]
    headline: dict[str, float | int | None]  # the few numbers a dashboard / digest shows
    notes: list[str]
    generated_at: dt.datetime = field(default_factory=utcnow)


ReportBuilder = Callable[[Session, Filters], ReportResult]


@dataclass(frozen=True)
class ReportDefinition:
    name: str
    title: str
    description: str
    build: ReportBuilder  # from the raw rows (the reference; the demo's SQLite)
    group_by: tuple[str, ...] = ("segment", "stage")  # besides trait.<name>
    # The same result from the summary rows (engine.reports.summaries), used on PostgreSQL.
    build_from_summaries: ReportBuilder | None = None


_reports: dict[str, ReportDefinition] = {}
# Campaigns live above engine: the campaigns package registers how to list their keys and which
# accounts were enrolled in one (engine.reports.scope applies it).
_campaign_options: Callable[[Session], list[str]] | None = None
_campaign_accounts: Callable[[str], Select[Any]] | None = None


def register_campaign_options(
    options: Callable[[Session], list[str]], accounts: Callable[[str], Select[Any]]
) -> None:
    """`accounts(key)` selects the ids of the accounts enrolled in the campaign."""
    global _campaign_options, _campaign_accounts
    _campaign_options, _campaign_accounts = options, accounts


def campaign_accounts(campaign_key: str) -> Select[Any]:
    """SELECT of the ids of the accounts enrolled in the campaign."""
    if _campaign_accounts is None:
        raise ValidationFailed({"campaign": "campaign filters need the campaigns package wired in"})
    return _campaign_accounts(campaign_key)


def campaign_scope(campaign_key: str) -> ColumnElement[bool]:
    """A condition on Account.id: the account was enrolled in the campaign."""
    return Account.id.in_(campaign_accounts(campaign_key))


def register_report(
    name: str,
    title: str,
    description: str,
    build: ReportBuilder,
    *,
    group_by: tuple[str, ...] = ("segment", "stage"),
    build_from_summaries: ReportBuilder | None = None,
) -> None:
    """Add (or replace, so wiring twice is harmless) one of REPORT_NAMES."""
    if name not in REPORT_NAMES:
        raise ValueError(f"unknown report {name!r}: add it to REPORT_NAMES")
    _reports[name] = ReportDefinition(name, title, description, build, group_by, build_from_summaries)


def report_definition(name: str) -> ReportDefinition:
    definition = _reports.get(name)
    if definition is None:
        if name in REPORT_NAMES:
            raise NotFound(f"report {name!r} is not available (its package is not wired in)")
        raise NotFound(f"no report named {name!r}; reports: {', '.join(REPORT_NAMES)}")
    return definition


def available_reports() -> list[ReportDefinition]:
    return [_reports[n] for n in REPORT_NAMES if n in _reports]


def parse_filters(params: Mapping[str, str], *, today: dt.date) -> Filters:
    """Query-string parameters -> Filters; every problem is reported against its field.

    Checks that need the database (does the segment exist, is the trait declared) happen in
    run_report, which raises ValidationFailed the same way.
    """
    errors: dict[str, str] = {}
    start = _date(params, "from", errors)
    end = _date(params, "to", errors)
    if end is None and "to" not in errors:
        end = today
    if start is None and "from" not in errors:
        start = (end or today) - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if start and end:
        if start > end:
            errors["from"] = f"must be on or before 'to' ({end.isoformat()})"
        elif (end - start).days + 1 > MAX_RANGE_DAYS:
            errors["to"] = "the date range may span at most 2 years"
    segment = _text(params, "segment", errors)
    stage = _text(params, "stage", errors)
    if stage and stage not in LIFECYCLE_STAGES:
        errors["stage"] = f"unknown lifecycle stage {stage!r}; one of {', '.join(LIFECYCLE_STAGES)}"
    campaign = _text(params, "campaign", errors)
    group_by = _text(params, "group_by", errors)
    if group_by and group_by not in GROUP_BY_FIXED:
        trait = group_by.removeprefix("trait.")
        if not group_by.startswith("trait.") or not _TRAIT_KEY.match(trait):
            errors["group_by"] = (
                f"unsupported grouping {group_by!r}; one of segment, stage, channel, trait.<name>"
            )
    traits: list[tuple[str, str]] = []
    for key in sorted(params):
        if not key.startswith("trait."):
            continue
        name = key.removeprefix("trait.")
        if not _TRAIT_KEY.match(name):
            errors[key] = "trait names are letters, digits, '_', '-' or '.' (at most 80)"
            continue
        value = _text(params, key, errors)
        if value is not None:
            traits.append((name, value))
    known = {"from", "to", "segment", "stage", "campaign", "group_by", "format"}
    for key in params:
        if key not in known and not key.startswith("trait."):
            errors[key] = "unknown filter; use from, to, segment, stage, campaign, trait.<name>, group_by"
    if errors or start is None or end is None:
        raise ValidationFailed(errors or {"from": "a date is required"})
    return Filters(start, end, segment, stage, campaign, tuple(traits), group_by)


def _date(params: Mapping[str, str], key: str, errors: dict[str, str]) -> dt.date | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        errors[key] = f"{raw[:40]!r} is not a date (YYYY-MM-DD)"
        return None


def _text(params: Mapping[str, str], key: str, errors: dict[str, str]) -> str | None:
    raw = (params.get(key) or "").strip()
    if not raw:
        return None
    if len(raw) > 200:
        errors[key] = "at most 200 characters"
        return None
    return raw


def validate_against_data(session: Session, definition: ReportDefinition, filters: Filters) -> None:
    """The checks parse_filters cannot make alone: segment and traits exist, grouping applies."""
    errors: dict[str, str] = {}
    segment_row = select(Account.id).where(Account.segment == filters.segment).limit(1)
    if filters.segment and session.scalar(segment_row) is None:
        errors["segment"] = f"unknown segment {filters.segment!r}"
    if filters.campaign:
        known = _campaign_options(session) if _campaign_options else []
        if filters.campaign not in known:
            errors["campaign"] = f"unknown campaign {filters.campaign!r}"
    declared = set(session.scalars(select(TraitDefinition.key)))
    for name, _value in filters.traits:
        if name not in declared:
            errors[f"trait.{name}"] = f"unknown trait {name!r}; declare it under Settings -> Traits first"
    if filters.group_by:
        if filters.group_by.startswith("trait."):
            if filters.group_by.removeprefix("trait.") not in declared:
                errors["group_by"] = f"unknown trait in grouping {filters.group_by!r}"
        elif filters.group_by not in definition.group_by:
            errors["group_by"] = (
                f"{definition.name} cannot be grouped by {filters.group_by!r}; "
                f"one of {', '.join(definition.group_by)}, trait.<name>"
            )
    if errors:
        raise ValidationFailed(errors)


def run_report(session: Session, name: str, filters: Filters, *, raw: bool = False) -> ReportResult:
    """Build one report; NotFound for an unknown name, ValidationFailed for filters that do not apply.

    On PostgreSQL a report reads the summary rows (engine.reports.summaries) when it has them;
    `raw=True` reads the source rows instead (the reference the summaries are tested against).
    """
    definition = report_definition(name)
    validate_against_data(session, definition, filters)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # The planner's cost estimates on a million accounts switch JIT on, and compiling costs more
        # (1.3 s measured on 2 busy cores) than these index-driven queries take to run.
        session.execute(text("SET LOCAL jit = off"))
        # Sorts for percentiles and grouping spilled to disk at the default 4 MB.
        session.execute(text("SET LOCAL work_mem = '64MB'"))
    if postgres and not raw and definition.build_from_summaries is not None:
        return definition.build_from_summaries(session, filters)
    return definition.build(session, filters)


def filter_options(session: Session) -> dict[str, list[str]]:
    """What the filter controls offer: segments, stages, campaigns, traits and groupings."""
    traits = list(session.scalars(select(TraitDefinition.key).order_by(TraitDefinition.key)))
    segments = list(session.scalars(select(Account.segment).distinct().order_by(Account.segment)))
    campaigns = _campaign_options(session) if _campaign_options else []
    return {
        "segments": segments,
        "stages": list(LIFECYCLE_STAGES),
        "campaigns": campaigns,
        "traits": traits,
        "group_by": [*GROUP_BY_FIXED, *(f"trait.{t}" for t in traits)],
    }


def report_to_dict(result: ReportResult) -> dict[str, Any]:
    """The JSON shape of a result (API, jobs): dates as ISO strings, filters as query parameters."""
    return {
        "name": result.name,
        "title": result.title,
        "description": result.description,
        "filters": result.filters.as_params(),
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in result.columns],
        "rows": [{c.key: _json_value(row.get(c.key)) for c in result.columns} for row in result.rows],
        "charts": [
            {
                "kind": chart.kind,
                "title": chart.title,
                "labels": list(chart.labels),
                "unit": chart.unit,
                "series": [
                    {"name": s.name, "values": s.values, "low": s.low, "high": s.high} for s in chart.series
                ],
            }
            for chart in result.charts
        ],
        "headline": dict(result.headline),
        "notes": list(result.notes),
        "generated_at": result.generated_at.isoformat(),
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def to_csv(result: ReportResult) -> str:
    """The report's table as CSV: a header of column labels, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label for c in result.columns])
    for row in result.rows:
        writer.writerow([_csv_cell(row.get(c.key), c.kind) for c in result.columns])
    return out.getvalue()


def _csv_cell(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "pct" and isinstance(value, int | float):
        return f"{value:.4f}"
    if kind in ("days", "number") and isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    text = str(value)
    # Spreadsheet formula injection: a cell must not start with = + - @ unless it is a number.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
