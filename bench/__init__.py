"""Benchmarks (DESIGN.md section 9): `python -m bench` lists them, `python -m bench <name>` runs one.

Each benchmark module exposes `add_arguments(parser)` and `run(args) -> int`, prints a table and
ends with one machine-readable line `<name>: key=value ...`. Modules are imported only when run,
so listing stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "delivery",
            "bench.delivery",
            "emails/s through scheduler tick + RQ batch jobs + SendGrid sink, vs one RQ job per email",
        ),
        Benchmark(
            "rules",
            "bench.rules",
            "µs per decide() over N JSON Logic rules (compiled once) vs datalogic_py.apply per call",
        ),
        Benchmark(
            "surveys",
            "bench.surveys",
            "widget.js size; survey responses/s and p50/p99 through plan creation with gunicorn on Postgres",
        ),
        Benchmark(
            "preview",
            "bench.preview",
            "ms to count a condition's matching accounts in SQL (1M accounts) vs batched evaluation",
        ),
        Benchmark(
            "events",
            "bench.events",
            "events/s through ingest_events with milestone evaluation (1,000 per batch) vs without it",
        ),
        Benchmark(
            "campaigns",
            "bench.campaigns",
            "scheduler tick over 100k due enrolments on Postgres; worker RSS and emails/s over 100k sends",
        ),
        Benchmark(
            "content",
            "bench.content",
            "template render (sandboxed Jinja + CSS inlining + text part) and recommend() per call",
        ),
        Benchmark(
            "reports",
            "bench.reports",
            "seconds per segment report over the `northstar bench seed` data set (1M accounts, 10M events)",
        ),
        Benchmark(
            "demo",
            "bench.demo",
            "wall time of `northstar demo` in a clean environment (SQLite, outbox, sync jobs)",
        ),
    )
}

__all__ = ["BENCHMARKS", "Benchmark"]
