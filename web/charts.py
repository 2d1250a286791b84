"""Server-side SVG charts for the reports (bar, hbar, funnel, line, interval): no script, no network.

Each chart is one `<svg role="img">` with a `<title>` and a `<desc>` that reads the data out, so a
screen reader gets the numbers even before it reaches the table printed beside the chart. Colours
come from CSS classes (`ns-s0`…`ns-s5`, `ns-axis`, `ns-grid`) that `admin-reports.css` maps to
custom properties with light and dark values; the presentation attributes (`currentColor` and
opacities) are only the fallback where that stylesheet is absent (an email, a saved file). The
console's CSP forbids inline styles, so nothing here uses `style=`. Output is deterministic: the
same chart and id give the same bytes (the unit tests compare strings).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from web.chart_text import (
    PCT_UNITS,
    ChartLike,
    SeriesLike,
    counted_noun,
    describe,
    format_value,
    nice_ticks,
    truncate,
    value_at,
)

__all__ = [
    "KINDS",
    "PCT_UNITS",
    "ChartLike",
    "SeriesLike",
    "counted_noun",
    "describe",
    "format_value",
    "nice_ticks",
    "render_chart",
    "truncate",
]

KINDS = ("bar", "hbar", "funnel", "line", "interval")
WIDTH = 640
FONT = 12
CHAR_W = 6.6  # average glyph width at FONT px in the console's sans-serif: enough to size labels
MAX_SERIES_CLASSES = 6
LABEL_CHARS_HBAR = 26
BAR_BAND = 28  # px per category row in horizontal charts
PLOT_H = 220  # px of plot in vertical charts


# -- rendering -------------------------------------------------------------------------------------


@dataclass
class _Svg:
    """Collects elements; numbers are rounded to 0.1 px so output is stable across platforms."""

    parts: list[str]

    def add(self, text: str) -> None:
        self.parts.append(text)


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0") if text != "-0.0" else "0"


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    cls: str = "ns-label",
    full: str | None = None,
    baseline: str = "middle",
) -> str:
    tip = f"<title>{escape(full)}</title>" if full and full != text else ""
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" class="{cls}" text-anchor="{anchor}" '
        f'dominant-baseline="{baseline}" fill="currentColor">{tip}{escape(text)}</text>'
    )


def render_chart(chart: ChartLike, *, chart_id: str) -> Markup:
    """The chart as inline SVG markup; `chart_id` makes its title/desc ids unique on the page."""
    if chart.kind not in KINDS:
        raise ValueError(f"unknown chart kind {chart.kind!r}; one of {', '.join(KINDS)}")
    safe_id = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in chart_id) or "chart"
    noun = counted_noun(chart.unit)
    if noun:  # "enrolments" is said once (desc, axis caption), never after every number
        chart = _Plain(chart.kind, chart.title, chart.labels, chart.series, "")
    body = _Svg([])
    if not chart.labels or not chart.series or _all_missing(chart):
        height = 80.0
        body.add(_text(WIDTH / 2, height / 2, "No data for these filters", anchor="middle", cls="ns-empty"))
    elif chart.kind == "bar":
        height = _bars(body, chart)
    elif chart.kind == "line":
        height = _line(body, chart)
    elif chart.kind == "interval":
        height = _interval(body, chart)
    else:
        height = _horizontal(body, chart, funnel=chart.kind == "funnel")
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ns-chart ns-{chart.kind}" '
        f'viewBox="0 0 {WIDTH} {_n(height)}" width="{WIDTH}" height="{_n(height)}" role="img" '
        f'aria-labelledby="{safe_id}-title {safe_id}-desc" font-size="{FONT}">'
        f'<title id="{safe_id}-title">{escape(chart.title)}</title>'
        f'<desc id="{safe_id}-desc">{escape(describe(chart, noun=noun))}</desc>'
    )
    if noun and chart.kind in ("bar", "line", "interval") and not _all_missing(chart):
        head += _text(4, 8, noun, cls="ns-tick ns-unit")
    return Markup(head + "".join(body.parts) + "</svg>")


@dataclass(frozen=True)
class _Plain:
    kind: str
    title: str
    labels: Sequence[str]
    series: Sequence[SeriesLike]
    unit: str


def _all_missing(chart: ChartLike) -> bool:
    return all(value_at(s.values, i) is None for s in chart.series for i in range(len(chart.labels)))


def _all_whole(chart: ChartLike) -> bool:
    values = [value_at(s.values, i) for s in chart.series for i in range(len(chart.labels))]
    return all(v is None or v == int(v) for v in values)


def _series_class(index: int) -> str:
    return f"ns-s{index % MAX_SERIES_CLASSES}"


def _bar(x: str, y: str, width: str, height: str, series: int, tip: str) -> str:
    """One bar (vertical or horizontal), coloured by its series, with its hover text."""
    return (
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="2" '
        f'class="ns-bar {_series_class(series)}" fill="currentColor" '
        f'fill-opacity="{_fallback_opacity(series)}"><title>{escape(tip)}</title></rect>'
    )


def _fallback_opacity(index: int) -> str:
    return ("0.85", "0.5", "0.3", "0.65", "0.4", "0.2")[index % MAX_SERIES_CLASSES]


def _extent(chart: ChartLike) -> tuple[float, float]:
    values = [0.0]
    for series in chart.series:
        for i in range(len(chart.labels)):
            for candidate in (value_at(series.values, i), value_at(series.low, i), value_at(series.high, i)):
                if candidate is not None:
                    values.append(candidate)
    low, high = min(values), max(values)
    if chart.unit in PCT_UNITS and low >= 0 and high <= 1:
        high = max(high, 0.0001)
    return low, high


def _legend(body: _Svg, chart: ChartLike, y: float) -> float:
    """One row of swatches under the plot when there is more than one series; returns its height."""
    if len(chart.series) < 2:
        return 0.0
    x, start = 56.0, y
    for index, series in enumerate(chart.series):
        name = truncate(series.name, 28)
        body.add(
            f'<rect x="{_n(x)}" y="{_n(y - 5)}" width="10" height="10" rx="2" class="ns-swatch '
            f'{_series_class(index)}" fill="currentColor" fill-opacity="{_fallback_opacity(index)}"/>'
        )
        body.add(_text(x + 15, y, name, full=series.name))
        x += 15 + len(name) * CHAR_W + 18
        if x > WIDTH - 80 and index < len(chart.series) - 1:
            x = 56.0
            y += 18
    return y - start + 22.0


def _value_axis(
    body: _Svg, ticks: list[float], unit: str, scale: _Scale, *, left: float, right: float
) -> None:
    """Horizontal grid lines with their values at the left edge (vertical charts)."""
    for tick in ticks:
        y = scale(tick)
        cls = "ns-grid ns-zero" if tick == 0 else "ns-grid"
        opacity = "0.45" if tick == 0 else "0.15"
        body.add(
            f'<line x1="{_n(left)}" x2="{_n(right)}" y1="{_n(y)}" y2="{_n(y)}" class="{cls}" '
            f'stroke="currentColor" stroke-opacity="{opacity}"/>'
        )
        body.add(_text(left - 6, y, format_value(tick, unit), anchor="end", cls="ns-tick"))


class _Scale:
    def __init__(self, domain: tuple[float, float], span: tuple[float, float]) -> None:
        self.d0, self.d1 = domain
        self.r0, self.r1 = span

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return self.r0
        return self.r0 + (value - self.d0) * (self.r1 - self.r0) / (self.d1 - self.d0)


def _category_labels(body: _Svg, labels: Sequence[str], centres: list[float], band: float, y: float) -> None:
    limit = max(4, int(band / CHAR_W))
    rotate = limit < 8 and any(len(label) > limit for label in labels)
    for label, x in zip(labels, centres, strict=False):
        if rotate:
            short = truncate(label, 18)
            tip = f"<title>{escape(label)}</title>" if short != label else ""
            body.add(
                f'<text x="{_n(x)}" y="{_n(y)}" class="ns-label" text-anchor="end" '
                f'transform="rotate(-35 {_n(x)} {_n(y)})" fill="currentColor">{tip}{escape(short)}</text>'
            )
        else:
            body.add(_text(x, y + 4, truncate(label, limit), anchor="middle", full=label))


def _vertical_frame(chart: ChartLike) -> tuple[list[float], _Scale, float, float, float, float]:
    low, high = _extent(chart)
    ticks = nice_ticks(low, high, whole=chart.unit not in PCT_UNITS and _all_whole(chart))
    left = 12 + max(len(format_value(t, chart.unit)) for t in ticks) * CHAR_W
    right = WIDTH - 16
    top, bottom = 28.0, 28.0 + PLOT_H  # room above for the unit caption and the top value label
    scale = _Scale((ticks[0], ticks[-1]), (bottom, top))
    return ticks, scale, left, right, top, bottom


def _label_room(chart: ChartLike, band: float) -> float:
    limit = max(4, int(band / CHAR_W))
    rotate = limit < 8 and any(len(label) > limit for label in chart.labels)
    return 24.0 if not rotate else 14 + min(18, max(len(label) for label in chart.labels)) * CHAR_W * 0.6


def _bars(body: _Svg, chart: ChartLike) -> float:
    ticks, scale, left, right, _top, bottom = _vertical_frame(chart)
    _value_axis(body, ticks, chart.unit, scale, left=left, right=right)
    band = (right - left) / len(chart.labels)
    groups = len(chart.series)
    bar_w = min(48.0, band * 0.7 / groups)
    zero = scale(max(ticks[0], min(0.0, ticks[-1])))
    centres = []
    for i, label in enumerate(chart.labels):
        centre = left + band * (i + 0.5)
        centres.append(centre)
        x = centre - bar_w * groups / 2
        for s_index, series in enumerate(chart.series):
            value = value_at(series.values, i)
            if value is not None:
                y = scale(value)
                top_y, height = min(y, zero), abs(zero - y)
                tip = _tip(series.name, label, value, chart.unit)
                body.add(
                    _bar(_n(x + 1), _n(top_y), _n(max(1.0, bar_w - 2)), _n(max(height, 0.5)), s_index, tip)
                )
                if groups == 1 or bar_w >= 30:
                    label_y = top_y - 8 if value >= 0 else zero - 8
                    body.add(
                        _text(
                            x + bar_w / 2,
                            label_y,
                            format_value(value, chart.unit),
                            anchor="middle",
                            cls="ns-value",
                        )
                    )
            x += bar_w
    _category_labels(body, chart.labels, centres, band, bottom + 10)
    height = bottom + _label_room(chart, band)
    return height + _legend(body, chart, height + 10)


def _line(body: _Svg, chart: ChartLike) -> float:
    ticks, scale, left, right, _top, bottom = _vertical_frame(chart)
    _value_axis(body, ticks, chart.unit, scale, left=left, right=right)
    count = len(chart.labels)
    step = (right - left - 24) / max(1, count - 1)
    xs = [left + 12 + step * i for i in range(count)] if count > 1 else [(left + right) / 2]
    for s_index, series in enumerate(chart.series):
        runs: list[list[tuple[float, float]]] = [[]]
        for i in range(count):
            value = value_at(series.values, i)
            if value is None:
                runs.append([])  # a gap breaks the line instead of pretending the value was zero
                continue
            runs[-1].append((xs[i], scale(value)))
        cls = _series_class(s_index)
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
                body.add(
                    f'<polyline points="{points}" class="ns-line {cls}" fill="none" '
                    f'stroke="currentColor" stroke-opacity="{_fallback_opacity(s_index)}" stroke-width="2"/>'
                )
        for i in range(count):
            value = value_at(series.values, i)
            if value is None:
                continue
            tip = _tip(series.name, chart.labels[i], value, chart.unit)
            body.add(
                f'<circle cx="{_n(xs[i])}" cy="{_n(scale(value))}" r="3.5" class="ns-point {cls}" '
                f'fill="currentColor" fill-opacity="{_fallback_opacity(s_index)}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    band = (right - left) / max(1, count)
    _category_labels(body, _thin(chart.labels, band), xs, max(band, step), bottom + 10)
    height = bottom + _label_room(chart, max(band, step))
    return height + _legend(body, chart, height + 10)


def _thin(labels: Sequence[str], band: float) -> list[str]:
    """Every n-th label on a crowded time axis (the points keep their own titles)."""
    every = max(1, math.ceil(7 * CHAR_W / max(band, 1)))
    return [label if i % every == 0 or i == len(labels) - 1 else "" for i, label in enumerate(labels)]


def _interval(body: _Svg, chart: ChartLike) -> float:
    ticks, scale, left, right, _top, bottom = _vertical_frame(chart)
    _value_axis(body, ticks, chart.unit, scale, left=left, right=right)
    band = (right - left) / len(chart.labels)
    groups = len(chart.series)
    slot = min(64.0, band * 0.8 / groups)
    centres = []
    for i, label in enumerate(chart.labels):
        centre = left + band * (i + 0.5)
        centres.append(centre)
        for s_index, series in enumerate(chart.series):
            x = centre + (s_index - (groups - 1) / 2) * slot
            value, low, high = value_at(series.values, i), value_at(series.low, i), value_at(series.high, i)
            cls = _series_class(s_index)
            tip = _tip(series.name, label, value, chart.unit, low, high)
            if low is not None and high is not None:
                y_low, y_high = scale(low), scale(high)
                body.add(
                    f'<g class="ns-errorbar {cls}" stroke="currentColor" stroke-width="1.5">'
                    f"<title>{escape(tip)}</title>"
                    f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{_n(y_low)}" y2="{_n(y_high)}"/>'
                    f'<line x1="{_n(x - 6)}" x2="{_n(x + 6)}" y1="{_n(y_low)}" y2="{_n(y_low)}"/>'
                    f'<line x1="{_n(x - 6)}" x2="{_n(x + 6)}" y1="{_n(y_high)}" y2="{_n(y_high)}"/></g>'
                )
            if value is not None:
                body.add(
                    f'<circle cx="{_n(x)}" cy="{_n(scale(value))}" r="4.5" class="ns-point {cls}" '
                    f'fill="currentColor"><title>{escape(tip)}</title></circle>'
                )
                body.add(_text(x + 9, scale(value), format_value(value, chart.unit), cls="ns-value"))
    _category_labels(body, chart.labels, centres, band, bottom + 10)
    height = bottom + _label_room(chart, band)
    return height + _legend(body, chart, height + 10)


def _tip(
    name: str, label: str, value: float | None, unit: str, low: float | None = None, high: float | None = None
) -> str:
    text = f"{name + ' · ' if name else ''}{label}: {format_value(value, unit, precise=True)}"
    if low is not None and high is not None:
        text += f" ({format_value(low, unit, precise=True)} to {format_value(high, unit, precise=True)})"
    return text


def _horizontal(body: _Svg, chart: ChartLike, *, funnel: bool) -> float:
    """Rows of horizontal bars: one band per label, the series stacked inside it; a funnel adds
    each step's conversion from the step before (and the first step's share on the last)."""
    longest = max(len(truncate(label, LABEL_CHARS_HBAR)) for label in chart.labels)
    left = 12 + longest * CHAR_W
    value_room = 150.0 if funnel else 64.0
    right = WIDTH - value_room
    low, high = _extent(chart)
    scale = _Scale((min(0.0, low), high if high > 0 else 1.0), (left, right))
    groups = len(chart.series)
    band = BAR_BAND * groups + 10
    top = 8.0
    zero = scale(0.0)
    for i, label in enumerate(chart.labels):
        y0 = top + band * i
        body.add(_text(left - 8, y0 + band / 2, truncate(label, LABEL_CHARS_HBAR), anchor="end", full=label))
        for s_index, series in enumerate(chart.series):
            y = y0 + 5 + BAR_BAND * s_index
            value = value_at(series.values, i)
            if value is None:
                body.add(_text(zero + 4, y + BAR_BAND / 2 - 2, "–", cls="ns-value"))
                continue
            x = scale(value)
            bar_x, width = min(x, zero), abs(x - zero)
            tip = _tip(series.name, label, value, chart.unit)
            body.add(_bar(_n(bar_x), _n(y), _n(max(width, 0.5)), str(BAR_BAND - 6), s_index, tip))
            text = format_value(value, chart.unit)
            if funnel and i > 0:
                previous = value_at(series.values, i - 1)
                if previous:
                    text += f" · {format_value(value / previous, '%')} of previous"
            body.add(_text(max(x, zero) + 6, y + (BAR_BAND - 6) / 2, text, cls="ns-value"))
    height = top + band * len(chart.labels) + 4
    if funnel:
        height += _funnel_overall(body, chart, height)
    return height + _legend(body, chart, height + 10) + (8 if groups > 1 else 0)


def _funnel_overall(body: _Svg, chart: ChartLike, y: float) -> float:
    """'Overall: 12% of <first step> reach <last step>' per series, under the funnel."""
    if len(chart.labels) < 2:
        return 0.0
    lines = 0
    for series in chart.series:
        first, last = value_at(series.values, 0), value_at(series.values, len(chart.labels) - 1)
        if not first or last is None:
            continue
        name = f"{series.name}: " if len(chart.series) > 1 else ""
        text = (
            f"{name}{format_value(last / first, '%')} of {truncate(chart.labels[0], 24)} reach "
            f"{truncate(chart.labels[-1], 24)}"
        )
        body.add(_text(12, y + 10 + 18 * lines, text, cls="ns-note"))
        lines += 1
    return 18.0 * lines + 6 if lines else 0.0
