"""Small statistics the reports need: Wilson intervals, Newcombe's difference, quantiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None without observations)."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_difference(
    s1: int, n1: int, s2: int, n2: int, z: float = Z95
) -> tuple[float, float, float] | None:
    """p1 - p2 with Newcombe's hybrid score interval (method 10, from two Wilson intervals)."""
    a, b = wilson(s1, n1, z), wilson(s2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = s1 / n1, s2 / n2
    (l1, u1), (l2, u2) = a, b
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, low, high


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what PostgreSQL's percentile_cont does)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return float(sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction)


def lift_verdict(metric: str, diff: tuple[float, float, float] | None, n_messaged: int, n_held: int) -> str:
    """One plain-English sentence a CS leader can act on."""
    if diff is None or n_messaged == 0 or n_held == 0:
        return (
            f"Not enough accounts to compare {metric}: "
            "the campaign needs both messaged and held-out accounts."
        )
    value, low, high = diff
    points = f"{value * 100:+.1f} points (95% CI {low * 100:+.1f} to {high * 100:+.1f})"
    if low > 0:
        return f"Messaging works: {metric} is {points} for messaged accounts against held-out ones."
    if high < 0:
        return f"Messaging hurts: {metric} is {points} for messaged accounts against held-out ones."
    return (
        f"No proven effect yet on {metric}: the difference is {points}, which includes zero; "
        "keep the holdout running or widen the date range."
    )
