"""Where one delivery batch spends its time, unprofiled: `deliver()` run in this process on one batch
with timers wrapped around its stages and SQL statements counted and timed at the cursor."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event

import campaigns.delivery as delivery
from bench.common import print_table
from campaigns.mail import BulkEmail, backend_for
from engine.db import Database, utcnow


@dataclass
class Breakdown:
    emails: int = 0
    total_s: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    sql_count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sql_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def stages(self) -> list[tuple[str, float]]:
        """(stage, seconds) in the order deliver() runs them."""
        m = self.marks
        return [
            ("claim (UPDATE … RETURNING, commit)", m["claim_end"] - m["start"]),
            ("load messages + contacts/steps/accounts", m["compose_start"] - m["claim_end"]),
            ("compose once + personalise per recipient", m["compose_end"] - m["compose_start"]),
            ("SendGrid request (JSON + HTTP + sink)", m["send_end"] - m["send_start"]),
            ("record outcomes (UPDATE per message)", m["end"] - m["send_end"]),
        ]


@contextmanager
def _patched(obj: Any, name: str, wrapper: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(obj, name)
    setattr(obj, name, wrapper(original))
    try:
        yield
    finally:
        setattr(obj, name, original)


def measure(database: Database, message_ids: list[int]) -> Breakdown:
    result = Breakdown(emails=len(message_ids))
    marks = result.marks
    backend = backend_for(database.settings)
    real_send = backend.send

    def timed_send(email: BulkEmail) -> str:
        marks["send_start"] = time.perf_counter()
        try:
            return real_send(email)
        finally:
            marks["send_end"] = time.perf_counter()

    backend.send = timed_send  # type: ignore[method-assign]

    def wrap_claim(fn: Callable[..., list[int]]) -> Callable[..., list[int]]:
        def claim(*args: Any, **kwargs: Any) -> list[int]:
            found = fn(*args, **kwargs)
            marks["claim_end"] = time.perf_counter()  # the claim commits right after; ≈ the same
            return found

        return claim

    def wrap_compose(fn: Callable[..., BulkEmail]) -> Callable[..., BulkEmail]:
        def bulk_email(*args: Any, **kwargs: Any) -> BulkEmail:
            marks["compose_start"] = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                marks["compose_end"] = time.perf_counter()

        return bulk_email

    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        kind = statement.lstrip().split(None, 1)[0].upper()
        result.sql_count[kind] += 1
        result.sql_s[kind] += time.perf_counter() - started.pop(id(cursor), time.perf_counter())

    event.listen(database.engine, "before_cursor_execute", before)
    event.listen(database.engine, "after_cursor_execute", after)
    try:
        with _patched(delivery, "claim", wrap_claim), _patched(delivery, "_bulk_email", wrap_compose):
            marks["start"] = time.perf_counter()
            outcome = delivery.deliver(database, backend, message_ids, now=utcnow())
            marks["end"] = time.perf_counter()
    finally:
        event.remove(database.engine, "before_cursor_execute", before)
        event.remove(database.engine, "after_cursor_execute", after)
    if outcome.sent != len(message_ids):
        raise RuntimeError(f"breakdown batch sent {outcome.sent} of {len(message_ids)}")
    result.total_s = marks["end"] - marks["start"]
    return result


def print_breakdown(found: Breakdown) -> None:
    rows: list[list[object]] = [
        [stage, f"{1000 * sec:.0f}", f"{100 * sec / found.total_s:.0f}%"] for stage, sec in found.stages()
    ]
    rows.append(["total deliver()", f"{1000 * found.total_s:.0f}", "100%"])
    print_table(f"one batch of {found.emails} in-process, unprofiled", ["stage", "ms", "share"], rows)
    sql = ", ".join(
        f"{k} ×{n} ({1000 * found.sql_s[k]:.0f} ms at the cursor)" for k, n in found.sql_count.items()
    )
    print(f"SQL statements: {sql}")
