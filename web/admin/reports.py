"""Segment reports in the console: the six reports as cards, one report with its filters, charts
(server-side SVG, web.charts) and the numbers as tables, CSV download, and long runs as RQ jobs
with a progress bar. Every role can read reports; nothing here changes data."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy import func, select
from werkzeug.exceptions import NotFound as HTTPNotFound

from campaigns.digests import digest_preference, set_digest_preference
from campaigns.reports import NO_HOLDOUT
from engine import queue
from engine.accounts import Account
from engine.errors import NorthstarError, NotFound, ValidationFailed
from engine.reports import (
    REPORT_NAMES,
    Chart,
    Column,
    Filters,
    ReportResult,
    Series,
    available_reports,
    filter_options,
    headline_kind,
    headline_label,
    parse_filters,
    report_definition,
    run_report,
    to_csv,
)
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.nav import breadcrumbs
from web.charts import counted_noun, format_value, render_chart
from web.context import db_session, now, settings, unit_of_work

# Above this many accounts a report runs as an RQ job on the `reports` queue (the page polls it)
# rather than inside the web request; NORTHSTAR settings `extra["reports_inline_max_accounts"]`
# overrides it (the tests set 0 to walk the job path).
INLINE_MAX_ACCOUNTS = 200_000
FILTER_KEYS = ("from", "to", "segment", "stage", "campaign", "group_by")
log = logging.getLogger(__name__)
FORM_ONLY_KEYS = ("trait", "trait_value", "job")
FIELD_LABELS = {
    "from": "From",
    "to": "To",
    "segment": "Segment",
    "stage": "Lifecycle stage",
    "campaign": "Campaign",
    "group_by": "Group by",
    "trait": "Trait",
}
HEADLINE_CACHE_S = 900  # the index's numbers for large data sets may be this old


@dataclass(frozen=True)
class ChartView:
    """One chart, its SVG and the same numbers as table rows (label, then one cell per series)."""

    chart: Chart
    svg: Markup
    anchor: str
    headers: list[str]
    rows: list[tuple[str, list[str]]]


@dataclass(frozen=True)
class Card:
    name: str
    title: str
    description: str
    headline: list[tuple[str, str]]
    problem: str | None = None


# -- the index ------------------------------------------------------------------------------------


@bp.get("/reports")
@role_required(*ANY_ROLE)
def reports() -> Any:
    session = db_session()
    today = now().date()
    defaults = parse_filters({}, today=today)
    available = {d.name: d for d in available_reports()}
    large = _too_big_for_a_request()
    cards = []
    for name in REPORT_NAMES:
        definition = available.get(name)
        if definition is None:
            cards.append(Card(name, _title(name), "", [], "Not available: its package is not wired in."))
            continue
        if large:
            # Six reports in one request would hold the web worker: show what the last run of each
            # (on its own page or as a job) left in the cache, else ask to open it.
            cached = _cached_headline(name, defaults)
            problem = None if cached else "Open the report to compute its numbers (a large data set)."
            cards.append(Card(name, definition.title, definition.description, cached or [], problem))
            continue
        try:
            result = run_report(session, name, defaults)
        except NorthstarError as exc:
            cards.append(Card(name, definition.title, definition.description, [], exc.detail))
            continue
        cards.append(Card(name, result.title, result.description, headline_items(result)))
    preference = digest_preference(session, current_user.user_id)
    return render_template(
        "admin/reports.html",
        section="reports",
        breadcrumbs=breadcrumbs(("Reports", None)),
        cards=cards,
        filters=defaults,
        today=today,
        digest=preference,
        digest_segments=set(preference.segments) if preference else set(),
        segments=filter_options(session)["segments"],
        ops_email=settings().ops_email,
    )


@bp.post("/reports/digest")
@role_required(*EDITORS)
def report_digest() -> Any:
    """Turn the signed-in user's weekly digest on (every segment, or the ones ticked) or off."""
    wanted = request.form.getlist("segment")
    stop = request.form.get("action") == "stop"
    with unit_of_work() as session:
        known = set(filter_options(session)["segments"])
        unknown = [s for s in wanted if s not in known]
        if unknown and not stop:
            flash(f"There is no segment {unknown[0][:80]!r} any more; nothing was changed.", "error")
            return redirect(url_for("admin.reports", _anchor="digest"), 303)
        set_digest_preference(session, current_user.user_id, None if stop else wanted)
    if stop:
        flash("You will not get the weekly digest any more.", "ok")
    else:
        which = ", ".join(sorted(wanted)) if wanted else "every segment"
        flash(f"You will get the weekly digest every Monday for {which}.", "ok")
    return redirect(url_for("admin.reports", _anchor="digest"), 303)


def _title(name: str) -> str:
    return name.replace("-", " ").capitalize()


# -- one report -----------------------------------------------------------------------------------


@bp.get("/reports/<name>")
@role_required(*ANY_ROLE)
def report(name: str) -> Any:
    definition = _definition(name)
    session = db_session()
    params, typed, errors = report_params(request.args)
    options = filter_options(session)
    filters: Filters | None = None
    result: ReportResult | None = None
    job: dict[str, Any] | None = None
    job_id = request.args.get("job", "").strip()
    try:
        filters = parse_filters(params, today=now().date())
        if errors:
            pass  # the trait pair is incomplete: show the form, run nothing
        elif job_id:
            job = _job_status(job_id)
            if job is None:
                errors["job"] = "That report run has expired or never existed; run the report again."
            elif job.get("state") == "finished" and isinstance(job.get("result"), dict):
                result = result_from_job(job["result"], filters)
        elif _too_big_for_a_request():
            from engine.reports.jobs import start_report_job

            started = start_report_job(name, filters)
            return redirect(report_url("admin.report", name, {**filters.as_params(), "job": started}), 303)
        else:
            result = run_report(session, name, filters)
    except ValidationFailed as exc:
        errors.update(_field_messages(exc.errors))
    except OverflowError:  # a date at the end of the calendar (9999-12-31): its next day does not exist
        errors["to"] = "that date is out of range; pick one before the year 9999"
        filters = None
    if result is not None and filters is not None:
        _cache_headline(name, filters, headline_items(result))
    status = 400 if errors else 200
    return (
        render_template(
            "admin/report.html",
            section="reports",
            breadcrumbs=breadcrumbs(("Reports", url_for("admin.reports")), (definition.title, None)),
            definition=definition,
            result=result,
            filters=filters,
            typed=typed,
            errors=errors,
            options=options,
            field_labels=FIELD_LABELS,
            charts=chart_views(result) if result else [],
            # Holdout lift with no campaign holding anyone out: say so and where to set it, rather
            # than charts that blame the filters ("No data for these filters").
            no_holdout=result is not None and NO_HOLDOUT in result.notes,
            headline=headline_items(result) if result else [],
            table=table_rows(result) if result else [],
            csv_url=report_url("admin.report_csv", name, {**filters.as_params(), "job": job_id})
            if filters
            else None,
            job=job,
            job_id=job_id,
            status_url=url_for("admin.report_job", name=name, job_id=job_id) if job_id else None,
        ),
        status,
    )


@bp.get("/reports/<name>.csv")
@role_required(*ANY_ROLE)
def report_csv(name: str) -> Any:
    _definition(name)
    params, _typed, errors = report_params(request.args)
    try:
        filters = parse_filters(params, today=now().date())
        if errors:
            raise ValidationFailed(errors)
        job = _job_status(request.args.get("job", "").strip())
        if job is not None and job.get("state") == "finished" and isinstance(job.get("result"), dict):
            result = result_from_job(job["result"], filters)  # what the page showed, not a second run
        else:
            result = run_report(db_session(), name, filters)
    except (ValidationFailed, OverflowError):
        # A hand-edited CSV link: show the form with the messages rather than a bare error.
        return redirect(report_url("admin.report", name, request.args), 303)
    filename = f"{name}_{filters.start.isoformat()}_{filters.end.isoformat()}.csv"
    return Response(
        to_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/reports/<name>/jobs/<job_id>")
@role_required(*ANY_ROLE)
def report_job(name: str, job_id: str) -> Any:
    """What the progress bar polls: the job's state and progress (never the result itself)."""
    _definition(name)
    job = _job_status(job_id)
    if job is None:
        return jsonify(state="missing", progress=0.0), 404
    return jsonify(state=str(job.get("state", "queued")), progress=float(job.get("progress") or 0.0))


def report_url(endpoint: str, name: str, params: Mapping[str, str]) -> str:
    query = urlencode([(key, value) for key, value in params.items() if value])
    return url_for(endpoint, name=name) + (f"?{query}" if query else "")


def _definition(name: str) -> Any:
    if name not in REPORT_NAMES:
        raise HTTPNotFound(f"There is no report called {name[:60]!r}. Pick one from the reports page.")
    try:
        return report_definition(name)
    except NotFound as exc:
        raise HTTPNotFound(exc.detail) from exc


def _job_status(job_id: str) -> dict[str, Any] | None:
    if not job_id or len(job_id) > 100 or not job_id.replace("-", "").isalnum():
        return None
    from engine.reports.jobs import report_job_status

    try:
        return dict(report_job_status(job_id))
    except NotFound:
        return None


def result_from_job(data: Mapping[str, Any], filters: Filters) -> ReportResult:
    """A job's result (engine.reports.report_to_dict's JSON shape) as the ReportResult it was."""
    generated = data.get("generated_at")
    return ReportResult(
        name=str(data["name"]),
        title=str(data["title"]),
        description=str(data.get("description", "")),
        filters=filters,
        columns=[Column(c["key"], c["label"], c["kind"]) for c in data.get("columns", [])],
        rows=list(data.get("rows", [])),
        charts=[
            Chart(
                c["kind"],
                c["title"],
                list(c["labels"]),
                [Series(s["name"], s["values"], s.get("low"), s.get("high")) for s in c["series"]],
                c.get("unit", ""),
            )
            for c in data.get("charts", [])
        ],
        headline=dict(data.get("headline", {})),
        notes=list(data.get("notes", [])),
        generated_at=dt.datetime.fromisoformat(generated) if isinstance(generated, str) else now(),
    )


def _too_big_for_a_request() -> bool:
    limit = settings().extra.get("reports_inline_max_accounts", INLINE_MAX_ACCOUNTS)
    if limit is None:
        return False
    # The highest account id (one index lookup) rather than count(*), which scans 1M rows: ids are
    # dense in practice, so it is a cheap upper bound on the number of accounts.
    highest = db_session().scalar(select(func.max(Account.id)))
    return int(highest or 0) > int(limit)


def _headline_key(name: str, filters: Filters) -> str:
    return f"northstar:reports:headline:{name}:{urlencode(sorted(filters.as_params().items()))}"


def _cache_headline(name: str, filters: Filters, items: list[tuple[str, str]]) -> None:
    redis = queue.current().redis
    if redis is None or filters != parse_filters({}, today=now().date()):
        return  # the index shows the default filters only
    try:
        redis.set(_headline_key(name, filters), json.dumps(items), ex=HEADLINE_CACHE_S)
    except RedisError as exc:  # a cache: the page works without it
        log.warning("could not cache the %s headline: %s", name, exc)


def _cached_headline(name: str, filters: Filters) -> list[tuple[str, str]] | None:
    redis = queue.current().redis
    if redis is None:
        return None
    try:
        raw = redis.get(_headline_key(name, filters))
    except RedisError as exc:
        log.warning("could not read the %s headline: %s", name, exc)
        return None
    return [(str(label), str(value)) for label, value in json.loads(raw)] if raw else None


def report_params(args: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The form's fields as parse_filters reads them (the trait pair becomes `trait.<name>`), what
    was typed (to show the form back as it was sent), and what is wrong with the trait pair."""
    params = {key: args[key] for key in FILTER_KEYS if args.get(key, "").strip()}
    typed = {key: args.get(key, "") for key in FILTER_KEYS}
    errors: dict[str, str] = {}
    name, value = args.get("trait", "").strip(), args.get("trait_value", "").strip()
    for key in args:
        if key.startswith("trait.") and not name:  # links (CSV, cards) carry trait.<name>=value
            name, value = key.removeprefix("trait."), args[key].strip()
    typed.update(trait=name, trait_value=value)
    if name and not value:
        errors["trait"] = f"Enter the value the trait {name[:80]!r} must have, or choose no trait."
    elif value and not name:
        errors["trait"] = "Choose which trait the value is for."
    elif name:
        params[f"trait.{name}"] = value
    for key in args:
        if (
            key not in FILTER_KEYS
            and key not in ("trait", "trait_value", "job")
            and not key.startswith("trait.")
        ):
            params[key] = args[key]  # parse_filters names unknown parameters
    return params, typed, errors


def _field_messages(errors: Mapping[str, Any]) -> dict[str, str]:
    """parse_filters' and run_report's errors keyed by the form field they belong to."""
    messages: dict[str, str] = {}
    for key, message in errors.items():
        text = str(message[0] if isinstance(message, list) and message else message)
        if key.startswith("trait."):
            messages.setdefault("trait", f"{key.removeprefix('trait.')}: {text}")
        elif key in FIELD_LABELS:
            messages.setdefault(key, text)
        else:
            messages.setdefault("form", f"{key[:60]}: {text}")
    return messages


# -- what the templates show -----------------------------------------------------------------------


def format_cell(value: Any, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "int" and isinstance(value, int | float):
        return f"{int(value):,}"
    if kind == "pct" and isinstance(value, int | float):
        return format_value(float(value), "pct", precise=True)
    if kind == "days" and isinstance(value, int | float):
        return format_value(float(value), "days", precise=True)
    if kind == "number" and isinstance(value, int | float):
        return format_value(float(value), "", precise=True)
    return str(value)


def is_numeric(column: Column) -> bool:
    return column.kind in ("int", "pct", "days", "number")


def table_rows(result: ReportResult) -> list[list[str]]:
    return [[format_cell(row.get(c.key), c.kind) for c in result.columns] for row in result.rows]


def headline_items(result: ReportResult) -> list[tuple[str, str]]:
    """The headline numbers labelled and formatted, the column's kind deciding when one matches."""
    kinds = {c.key: c.kind for c in result.columns}
    labels = {c.key: c.label for c in result.columns}
    items = []
    for key, value in result.headline.items():
        kind = kinds.get(key) or headline_kind(key, value)
        items.append((labels.get(key) or headline_label(key, kind), format_cell(value, kind)))
    return items


def chart_views(result: ReportResult) -> list[ChartView]:
    views = []
    for index, chart in enumerate(result.charts):
        anchor = f"chart-{index + 1}"
        interval = chart.kind == "interval"
        headers = []
        noun = counted_noun(chart.unit)
        unit = "" if noun else chart.unit
        for series in chart.series:
            name = series.name or noun.capitalize() or "Value"
            headers.append(name)
            if interval:
                headers.extend([f"{name}: low", f"{name}: high"])
        rows = []
        for i, label in enumerate(chart.labels):
            cells = []
            for series in chart.series:
                cells.append(_chart_cell(series.values, i, unit))
                if interval:
                    cells.append(_chart_cell(series.low, i, unit))
                    cells.append(_chart_cell(series.high, i, unit))
            rows.append((label, cells))
        views.append(ChartView(chart, render_chart(chart, chart_id=anchor), anchor, headers, rows))
    return views


def _chart_cell(values: list[float | None] | None, index: int, unit: str) -> str:
    if values is None or index >= len(values):
        return "–"
    value = values[index]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format_value(value, unit, precise=True)


def generated_label(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")
