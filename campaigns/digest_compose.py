"""Composing a weekly digest: each report's headline numbers for one segment and week, what changed
against the week before, and the email (HTML from `content/layouts/digest.html`, and text).

The summaries are cached in Redis per segment and week for a day, so a segment's second recipient
costs one email, not twelve report runs. Sending and the ledger are in `campaigns.digests`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlencode

from redis.exceptions import RedisError
from sqlalchemy.orm import Session

from engine import queue
from engine.config import Settings
from engine.errors import NorthstarError
from engine.reports import (
    Column,
    Filters,
    ReportResult,
    available_reports,
    headline_kind,
    headline_label,
    run_report,
)

log = logging.getLogger(__name__)

SUMMARY_CACHE_S = 86_400


@dataclass(frozen=True)
class HeadlineChange:
    label: str
    this_week: str
    previous: str
    change: str


@dataclass(frozen=True)
class ReportSummary:
    name: str
    title: str
    url: str
    lines: list[HeadlineChange]


@dataclass(frozen=True)
class ComposedDigest:
    subject: str
    html: str
    text: str


def summarise(session: Session, settings: Settings, segment: str, week: dt.date) -> list[ReportSummary]:
    """Each available report's headline for `week` next to the week before, for one segment."""
    current = Filters(week, week + dt.timedelta(days=6), segment=segment)
    previous = Filters(week - dt.timedelta(days=7), week - dt.timedelta(days=1), segment=segment)
    summaries = []
    for definition in available_reports():
        try:
            now_result = run_report(session, definition.name, current)
            before = run_report(session, definition.name, previous)
        except NorthstarError as exc:  # e.g. the segment no longer exists: say so, send the rest
            log.warning("digest %s/%s: %s", segment, definition.name, exc.detail)
            continue
        query = urlencode(current.as_params())
        url = f"{settings.public_url}/admin/reports/{definition.name}?{query}"
        summaries.append(ReportSummary(definition.name, now_result.title, url, _changes(now_result, before)))
    return summaries


def cached_summaries(
    session: Session, settings: Settings, segment: str, week: dt.date
) -> list[ReportSummary]:
    """summarise(), computed once per (week, segment) however many recipients it has: the first
    job stores it in Redis for a day, the others read it (each recipient costs one email, not twelve
    report runs)."""
    redis = queue.current().redis
    key = f"northstar:digest:{week.isoformat()}:{segment}"
    if redis is not None:
        try:
            raw = redis.get(key)
        except RedisError as exc:
            log.warning("digest cache unavailable: %s", exc)
            raw = None
        if raw:
            return [
                ReportSummary(s["name"], s["title"], s["url"], [HeadlineChange(*line) for line in s["lines"]])
                for s in json.loads(raw)
            ]
    summaries = summarise(session, settings, segment, week)
    if redis is not None:
        stored = [
            {
                "name": s.name,
                "title": s.title,
                "url": s.url,
                "lines": [[x.label, x.this_week, x.previous, x.change] for x in s.lines],
            }
            for s in summaries
        ]
        try:
            redis.set(key, json.dumps(stored), ex=SUMMARY_CACHE_S)
        except RedisError as exc:
            log.warning("digest cache unavailable: %s", exc)
    return summaries


def _changes(result: ReportResult, before: ReportResult) -> list[HeadlineChange]:
    columns = {c.key: c for c in result.columns}
    lines = []
    for key, value in result.headline.items():
        kind = _kind(columns.get(key), key, value)
        label = columns[key].label if key in columns else headline_label(key, kind)
        old = before.headline.get(key)
        if value is None and old is None:
            continue  # nothing to say (a rate with no denominator either week)
        lines.append(
            HeadlineChange(label, _format(value, kind), _format(old, kind), _delta(value, old, kind))
        )
    return lines


def _kind(column: Column | None, key: str, value: float | int | None) -> str:
    return column.kind if column is not None else headline_kind(key, value)


def _format(value: float | int | None, kind: str) -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "days":
        return f"{value:,.1f} days"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _delta(value: float | int | None, old: float | int | None, kind: str) -> str:
    if value is None or old is None:
        return "new" if old is None and value is not None else "–"
    change = value - old
    if abs(change) < 1e-9:
        return "no change"
    word = "up" if change > 0 else "down"
    if kind == "pct":
        amount = f"{abs(change) * 100:.1f} pts"
    elif kind == "int":
        amount = f"{abs(int(change)):,}"
    elif kind == "days":
        amount = f"{abs(change):,.1f} days"
    else:
        amount = f"{abs(change):,.2f}".rstrip("0").rstrip(".")
    return f"{'▲' if change > 0 else '▼'} {word} {amount}"


def compose_digest(
    settings: Settings, segment: str, week: dt.date, summaries: list[ReportSummary], *, personal: bool
) -> ComposedDigest:
    end = week + dt.timedelta(days=6)
    period = f"{week.strftime('%b %-d')} – {end.strftime('%b %-d, %Y')}"
    subject = f"Weekly digest · {segment} · {period}"
    blocks, text = [], [f"{segment}: the week of {period} against the week before.", ""]
    cell = "padding:6px 8px;border-bottom:1px solid #e3e7ec;"
    th = f'style="{cell}text-align:left;color:#5f6b7a;font-size:13px;"'
    thn = f'style="{cell}text-align:right;color:#5f6b7a;font-size:13px;"'
    td = f'style="{cell}font-size:14px;"'
    tdn = f'style="{cell}font-size:14px;text-align:right;"'
    for summary in summaries:
        rows = "".join(
            f"<tr><td {td}>{html.escape(line.label)}</td>"
            f"<td {tdn}><strong>{html.escape(line.this_week)}</strong></td>"
            f"<td {tdn}>{html.escape(line.previous)}</td><td {tdn}>{html.escape(line.change)}</td></tr>"
            for line in summary.lines
        )
        blocks.append(
            f'<h2 style="font-size:17px;margin:24px 0 6px;">{html.escape(summary.title)}</h2>'
            + (
                f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
                f'style="border-collapse:collapse;"><tr><th {th}>Measure</th><th {thn}>This week</th>'
                f"<th {thn}>Week before</th><th {thn}>Change</th></tr>{rows}</table>"
                if rows
                else '<p style="color:#5f6b7a;font-size:14px;">No numbers for this week.</p>'
            )
            + f'<p style="margin:8px 0 0;font-size:14px;"><a href="{html.escape(summary.url)}" '
            f'style="color:#2457d6;">Open the report</a></p>'
        )
        text.append(summary.title)
        text.extend(
            f"  {line.label}: {line.this_week} (week before {line.previous}; {line.change})"
            for line in summary.lines
        )
        text.extend([f"  Open the report: {summary.url}", ""])
    if not summaries:
        blocks.append("<p>No report could run for this segment this week.</p>")
        text.append("No report could run for this segment this week.")
    intro = (
        f'<h1 style="font-size:22px;margin:0 0 4px;">{html.escape(segment)}</h1>'
        f'<p style="margin:0;color:#5f6b7a;">Weekly digest for {html.escape(period)}, '
        "against the week before.</p>"
    )
    manage = f"{settings.public_url}/admin/reports#digest"
    why = (
        "You get this because you asked for the weekly digest in the Northstar console."
        if personal
        else "This goes to the CS ops address configured as NORTHSTAR_OPS_EMAIL."
    )
    page = _layout().format(
        subject=html.escape(subject),
        preheader=html.escape(f"{segment}: last week's reports and what changed"),
        body=intro + "".join(blocks),
        why=html.escape(why),
        manage=html.escape(manage),
        postal=html.escape(settings.postal_address),
    )
    text.extend(["--", why, f"Change your digest: {manage}", settings.postal_address])
    return ComposedDigest(subject, page, "\n".join(text) + "\n")


def _layout() -> str:
    return (resources.files("content") / "layouts" / "digest.html").read_text(encoding="utf-8")
