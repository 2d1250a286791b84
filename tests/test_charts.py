"""The offline SVG charts: accessible, themable, deterministic, with readable numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from engine.reports import Chart, Series
from web.charts import describe, format_value, nice_ticks, render_chart, truncate

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


FUNNEL = Chart("funnel", "Campaign funnel", ["Enrolled", "Sent", "Opened"], [Series("", [200, 150, 60])])


def test_chart_is_an_accessible_image_with_title_and_a_desc_that_reads_the_data() -> None:
    root = parse(render_chart(FUNNEL, chart_id="funnel"))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "funnel-title funnel-desc"
    assert root.find(f"{SVG}title").text == "Campaign funnel"
    desc = root.find(f"{SVG}desc").text
    assert desc == "Funnel: Campaign funnel. Enrolled 200, Sent 150, Opened 60."


def test_colours_come_from_classes_and_currentColor_never_inline_styles() -> None:
    markup = str(render_chart(FUNNEL, chart_id="f"))
    assert "style=" not in markup  # the console's CSP refuses inline styles
    assert not re.search(r'fill="#[0-9a-f]', markup)  # no fixed colours: light and dark come from CSS
    root = parse(markup)
    bars = [r for r in root.iter(f"{SVG}rect") if "ns-bar" in (r.get("class") or "")]
    assert len(bars) == 3
    assert all("ns-s0" in r.get("class", "") and r.get("fill") == "currentColor" for r in bars)


def test_funnel_shows_each_steps_conversion_from_the_previous_and_overall() -> None:
    labels = texts(parse(render_chart(FUNNEL, chart_id="f")))
    assert "150 · 75% of previous" in labels
    assert "60 · 40% of previous" in labels
    assert "30% of Enrolled reach Opened" in labels


def test_rendering_is_deterministic() -> None:
    assert render_chart(FUNNEL, chart_id="x") == render_chart(FUNNEL, chart_id="x")


def test_long_labels_are_truncated_with_the_full_text_in_a_title() -> None:
    long = "Reduce time to hire for engineering roles in the EMEA region"
    shares = Series("share", [0.42, 0.083])
    chart = Chart("hbar", "Outcomes chosen", [long, "Cut agency spend"], [shares], "pct")
    root = parse(render_chart(chart, chart_id="o"))
    label = next(t for t in root.iter(f"{SVG}text") if t.find(f"{SVG}title") is not None)
    assert label.find(f"{SVG}title").text == long
    shown = "".join(label.itertext()).removeprefix(long)
    assert shown.endswith("…") and len(shown) <= 26
    assert "42%" in texts(root) and "8.3%" in texts(root)


def test_interval_chart_draws_error_bars_from_low_to_high() -> None:
    chart = Chart(
        "interval",
        "Milestone attainment",
        ["Milestone"],
        [Series("Messaged", [0.42], [0.38], [0.46]), Series("Held out", [0.31], [0.25], [0.37])],
        "pct",
    )
    root = parse(render_chart(chart, chart_id="lift"))
    bars = [g for g in root.iter(f"{SVG}g") if "ns-errorbar" in (g.get("class") or "")]
    assert len(bars) == 2
    assert bars[0].find(f"{SVG}title").text == "Messaged · Milestone: 42.0% (38.0% to 46.0%)"
    whisker = bars[0].findall(f"{SVG}line")
    assert len(whisker) == 3  # the bar and its two caps
    assert float(whisker[0].get("y1")) > float(whisker[0].get("y2"))  # low is drawn below high
    assert "interval 25.0% to 37.0%" in root.find(f"{SVG}desc").text
    assert [t for t in texts(root) if t in ("Messaged", "Held out")] == ["Messaged", "Held out"]  # legend


def test_line_chart_breaks_at_missing_values_instead_of_drawing_zero() -> None:
    chart = Chart("line", "Per week", ["W1", "W2", "W3", "W4", "W5"], [Series("n", [1, 2, None, 4, 5])])
    root = parse(render_chart(chart, chart_id="l"))
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert len([c for c in root.iter(f"{SVG}circle")]) == 4
    assert "W3 –" in root.find(f"{SVG}desc").text


def test_bar_axis_uses_round_ticks_and_handles_negative_values() -> None:
    chart = Chart("bar", "Lift", ["A", "B"], [Series("", [0.05, -0.02])], "pct")
    labels = texts(parse(render_chart(chart, chart_id="b")))
    assert {"−2%", "0%", "2%", "4%", "6%"} <= set(labels)


def test_a_chart_without_data_says_so() -> None:
    chart = Chart("bar", "Nothing yet", ["A"], [Series("", [None])])
    assert "No data for these filters" in texts(parse(render_chart(chart, chart_id="e")))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown chart kind 'pie'"):
        render_chart(Chart("pie", "x", ["a"], [Series("", [1])]), chart_id="p")


def test_text_is_escaped() -> None:
    chart = Chart("bar", "<script>", ["a & b"], [Series("<s>", [1])])
    markup = str(render_chart(chart, chart_id="<id>"))
    assert "<script>" not in markup and "a &amp; b" in markup
    assert 'id="-id--title"' in markup


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (1234, "", "1,234"),
        (12_500, "", "12.5k"),
        (2_000_000, "", "2M"),
        (0.425, "pct", "42%"),
        (0.083, "pct", "8.3%"),
        (12.5, "days", "12.5 days"),
        (1, "days", "1 day"),
        (None, "", "–"),
        (-3, "", "−3"),
    ],
)
def test_format_value(value: float | None, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


def test_nice_ticks() -> None:
    assert nice_ticks(0, 97) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 0.42) == [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-0.02, 0.05)[0] < 0


def test_truncate_and_describe() -> None:
    assert truncate("abcdefghij", 5) == "abcd…"
    assert describe(Chart("bar", "T", ["a"], [Series("x", [1]), Series("y", [2])])) == (
        "Bar chart: T. x: a 1. y: a 2."
    )


def test_a_counted_noun_is_said_once_not_after_every_number() -> None:
    chart = Chart("bar", "Messages skipped", ["Suppression", "Cap"], [Series("", [0, 0])], "messages")
    root = parse(render_chart(chart, chart_id="m"))
    labels = texts(root)
    assert "messages" in labels and "0" in labels
    assert not [t for t in labels if t.endswith(" messages")]
    assert {"0", "1"} <= set(labels) and "0.2" not in labels  # counts tick in whole numbers
    assert root.find(f"{SVG}desc").text.startswith("Bar chart: Messages skipped (messages).")
