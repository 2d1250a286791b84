"""What a chart says in numbers and words: the data it reads, value formatting, tick values, label
truncation, and the sentence its `<desc>` reads out (the drawing itself: web.charts)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

PCT_UNITS = ("pct", "%")  # values are fractions 0..1, shown as percentages


class SeriesLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def values(self) -> Sequence[float | None]: ...
    @property
    def low(self) -> Sequence[float | None] | None: ...
    @property
    def high(self) -> Sequence[float | None] | None: ...


class ChartLike(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def series(self) -> Sequence[SeriesLike]: ...
    @property
    def unit(self) -> str: ...


# -- numbers ---------------------------------------------------------------------------------------


def format_value(value: float | None, unit: str = "", *, precise: bool = False) -> str:
    """How a number reads on a chart: 1,234 · 12.5k · 1.2M · 42% · 3.5 days; "–" when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit in PCT_UNITS:
        pct = value * 100
        digits = 1 if precise or (abs(pct) < 10 and pct != round(pct)) else 0
        return f"{pct:.{digits}f}%".replace("-", "−")
    text = _compact(value, precise=precise)
    if unit == "days":
        return f"{text} day{'' if value == 1 else 's'}"
    return f"{text} {unit}".strip() if unit else text


def _compact(value: float, *, precise: bool) -> str:
    sign = "−" if value < 0 else ""
    magnitude = abs(value)
    if not precise and magnitude >= 1_000_000:
        text = f"{magnitude / 1_000_000:.1f}".removesuffix(".0") + "M"
    elif not precise and magnitude >= 10_000:
        text = f"{magnitude / 1000:.1f}".removesuffix(".0") + "k"
    elif magnitude == int(magnitude):
        text = f"{int(magnitude):,}"
    elif magnitude >= 100:
        text = f"{magnitude:,.0f}"
    else:
        text = f"{magnitude:,.1f}" if magnitude >= 10 else f"{magnitude:,.2f}".rstrip("0").rstrip(".")
    return sign + text


def nice_ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10ⁿ) covering [low, high], zero included when in range;
    `whole` (counts) never steps by less than 1 or by a fraction."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0, 1.0]
    if high < low:
        low, high = high, low
    if high == low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw - 1e-12)
    if whole:
        step = float(max(1, math.ceil(step)))
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    n = int(round((stop - start) / step))
    return [_clean(start + i * step) for i in range(n + 1)]


def _clean(value: float) -> float:
    rounded = round(value, 10)
    return 0.0 if rounded == 0 else rounded


def truncate(label: str, limit: int) -> str:
    label = " ".join(label.split())
    return label if len(label) <= limit else label[: max(1, limit - 1)].rstrip() + "…"


def counted_noun(unit: str) -> str:
    """The unit when it names what is counted ("enrolments"), which the numbers then go without;
    "" for the units formatted into each number (percentages, days) and for no unit."""
    return "" if unit in PCT_UNITS or unit == "days" else unit


def describe(chart: ChartLike, *, noun: str = "") -> str:
    """The chart's data in one sentence per series, for `<desc>` (and anyone without the picture)."""
    kind_names = {
        "bar": "Bar chart",
        "hbar": "Bar chart",
        "funnel": "Funnel",
        "line": "Line chart",
        "interval": "Estimates with confidence intervals",
    }
    parts = [f"{kind_names.get(chart.kind, 'Chart')}: {chart.title}{f' ({noun})' if noun else ''}."]
    for series in chart.series:
        items = []
        for i, label in enumerate(chart.labels):
            value = value_at(series.values, i)
            item = f"{label} {format_value(value, chart.unit, precise=True)}"
            low, high = value_at(series.low, i), value_at(series.high, i)
            if chart.kind == "interval" and low is not None and high is not None:
                item += (
                    f" (interval {format_value(low, chart.unit, precise=True)} to "
                    f"{format_value(high, chart.unit, precise=True)})"
                )
            items.append(item)
        prefix = f"{series.name}: " if len(chart.series) > 1 or series.name else ""
        parts.append(prefix + ", ".join(items) + ".")
    return " ".join(parts)


def value_at(values: Sequence[float | None] | None, index: int) -> float | None:
    if values is None or index >= len(values):
        return None
    value = values[index]
    if value is None or not math.isfinite(value):
        return None
    return float(value)
