"""The bulk tick's writes: each chunk's ledger rows and enrolment changes, as a few columns of plain
values, sent in two statements through psycopg's pipeline (campaigns.bulk runs the chunks).

What makes it cheap, on both sides of the connection (100,000 enrolments, 200,000 ledger rows):

- A ledger row's status, reason, `not_before` and trace follow from its *kind*: the enrolment's
  run (what enrolled it, version, entry), the step and the guards' verdict
  (campaigns.steps.ledger_fields). Thousands of rows share a handful of kinds, so each kind's
  trace is built and encoded once, sent once per chunk, and parsed once by PostgreSQL; a row
  carries only its enrolment, contact, dedupe key and the number of its kind. Likewise an
  enrolment's new history entries are encoded once per distinct list (campaigns.steps.entry_text).
- The per-row columns (ids, dedupe keys, timestamps) travel as array literals built with
  `str.join` (C speed). Binary array parameters were dumped element by element in Python, and
  the text format's escaping, also in Python, cost more than the insert itself. Every element
  written that way is an integer, a dedupe key (digits, `.` and `:`), a state name or an ISO
  timestamp: nothing an array literal would have to quote.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection

from campaigns.models import MessageStatus, StepKind
from campaigns.steps import AnyContact, EnrollmentRow, StepSpec, TickResult, Verdict, ledger_fields

log = logging.getLogger(__name__)

_dumps = json.JSONEncoder(separators=(",", ":")).encode

# A row's kind: its run (enrolled, campaign version, entry), its step and its guards' verdict.
KindKey = tuple[str | None, int, int, int, Verdict]

# One statement per chunk: write the rows in the tick's order (their ids too); answer with the new
# queued email ids per step (what the caller enqueues) and the rows whose dedupe key was already in
# the ledger (normally none). `k` holds the chunk's kinds, `v` its rows.
_INSERT_MESSAGES = (
    "WITH k AS (SELECT k.*, s.kind AS channel, s.config ->> 'template' AS template_key "
    "FROM unnest(%s::int[], %s::varchar[], %s::varchar[], %s::timestamptz[], %s::jsonb[]) WITH ORDINALITY "
    "AS k(step_id, status, reason, not_before, trace, n) JOIN campaign_steps AS s ON s.id = k.step_id), "
    "v AS MATERIALIZED (SELECT v.enrollment_id, k.step_id, v.contact_id, k.channel, k.status, k.reason, "
    "v.dedupe_key, k.template_key, k.not_before, k.trace, v.n "
    "FROM unnest(%s::int[], %s::int[], %s::varchar[], %s::int[]) WITH ORDINALITY "
    "AS v(enrollment_id, contact_id, dedupe_key, kind, n) JOIN k ON k.n = v.kind), "
    "ins AS (INSERT INTO messages (enrollment_id, step_id, contact_id, channel, status, reason, dedupe_key, "
    "template_key, created_at, updated_at, not_before, trace) SELECT enrollment_id, step_id, contact_id, "
    "channel, status, reason, dedupe_key, template_key, %s::timestamptz, %s::timestamptz, not_before, trace "
    "FROM v ORDER BY n ON CONFLICT (dedupe_key) DO NOTHING "
    "RETURNING id, step_id, dedupe_key, status, channel) "
    "SELECT step_id, array_agg(id ORDER BY id), NULL::varchar[], NULL::varchar[], NULL::varchar[] FROM ins "
    "WHERE status = 'queued' AND channel = 'email' GROUP BY step_id "
    "UNION ALL SELECT NULL, NULL, array_agg(v.dedupe_key), array_agg(v.status), array_agg(v.channel) FROM v "
    "WHERE v.dedupe_key NOT IN (SELECT dedupe_key FROM ins) HAVING count(*) > 0"
)
# The enrolments' new state, this tick's history entries appended (`history || new`: the stored
# history is never read back); a row's exited reason and new entries are numbers into the chunk's
# distinct values.
_UPDATE_ENROLLMENTS = (
    "UPDATE enrollments AS e SET state = v.state, current_step = v.current_step, "
    "step_started_at = v.step_started_at, next_run_at = v.next_run_at, finished_at = v.finished_at, "
    "exited_reason = r.reason, history = e.history || h.history "
    "FROM unnest(%s::int[], %s::varchar[], %s::int[], %s::timestamptz[], %s::timestamptz[], "
    "%s::timestamptz[], %s::int[], %s::int[]) "
    "AS v(id, state, current_step, step_started_at, next_run_at, finished_at, reason_n, history_n) "
    "JOIN unnest(%s::jsonb[]) WITH ORDINALITY AS h(history, n) ON h.n = v.history_n "
    "LEFT JOIN unnest(%s::varchar[]) WITH ORDINALITY AS r(reason, n) ON r.n = v.reason_n "
    "WHERE e.id = v.id"
)


def array_literal(values: Iterable[object]) -> str:
    """`{1,2,3}`: for integers and strings that need no quoting in an array literal."""
    return "{" + ",".join(map(str, values)) + "}"


class ChunkLedger:
    """The ledger rows of the chunk being computed, as columns (campaigns.bulk.BulkTick.add_message)."""

    def __init__(self) -> None:
        self.kind_of: dict[KindKey, int] = {}  # this chunk's kinds, numbered from 1
        self.kinds: list[tuple[int, str, str | None, dt.datetime | None, str]] = []
        self.queued_email: list[bool] = []  # per kind: a queued email (the caller enqueues it)
        self.built: dict[KindKey, tuple[tuple[int, str, str | None, dt.datetime | None, str], bool]] = {}
        self.enrollment_ids: list[int] = []
        self.contact_ids: list[int] = []
        self.keys: list[str] = []
        self.kind_numbers: list[int] = []

    def add(self, enrollment: EnrollmentRow, step: StepSpec, contact: AnyContact, verdict: Verdict) -> None:
        key = (enrollment.enrolled, enrollment.campaign_version, enrollment.entry, step.id, verdict)
        number = self.kind_of.get(key)
        if number is None:
            number = self._new_kind(key, enrollment, step, verdict)
        self.enrollment_ids.append(enrollment.id)
        self.contact_ids.append(contact.id)
        if enrollment.entry <= 1:
            self.keys.append(f"{enrollment.id}:{step.id}:{contact.id}")
        else:  # the same key as campaigns.steps.dedupe_key
            self.keys.append(f"{enrollment.id}.{enrollment.entry}:{step.id}:{contact.id}")
        self.kind_numbers.append(number)

    def _new_kind(self, key: KindKey, enrollment: EnrollmentRow, step: StepSpec, verdict: Verdict) -> int:
        found = self.built.get(key)
        if found is None:
            enrolled = None if enrollment.enrolled is None else json.loads(enrollment.enrolled)
            status, reason, opens, trace = ledger_fields(enrollment, step, verdict, enrolled)
            queued = status is MessageStatus.QUEUED and step.kind is StepKind.EMAIL
            found = self.built[key] = ((step.id, status.value, reason, opens, _dumps(trace)), queued)
        self.kinds.append(found[0])
        self.queued_email.append(found[1])
        self.kind_of[key] = number = len(self.kinds)
        return number

    def queued_steps(self) -> list[int]:
        """The steps with queued emails in this chunk, in the order their first one was queued."""
        return list(
            dict.fromkeys(
                kind[0] for kind, queued in zip(self.kinds, self.queued_email, strict=True) if queued
            )
        )

    def clear(self) -> None:
        self.kind_of.clear()
        self.kinds.clear()
        self.queued_email.clear()
        self.enrollment_ids.clear()
        self.contact_ids.clear()
        self.keys.clear()
        self.kind_numbers.clear()


class LedgerWriter:
    """Sends each chunk's INSERT and UPDATE in psycopg's pipeline mode and reads the answers at the
    end: PostgreSQL writes chunk k while Python computes chunk k+1 (two cores, not one)."""

    def __init__(self, connection: Connection, result: TickResult, now: dt.datetime) -> None:
        self.driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
        self.result = result
        self.now = now
        self.pending: list[psycopg.Cursor[Any]] = []
        self.queued: dict[int, list[int]] = {}
        self.stamps: dict[dt.datetime, str] = {}

    def __enter__(self) -> LedgerWriter:
        self.pipeline = self.driver.pipeline()
        self.pipeline.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.__exit__(*exc)  # type: ignore[arg-type]  # syncs: every statement has run
        if exc[0] is None:
            for cursor in self.pending:
                self._collect(cursor.fetchall())

    def write(self, ledger: ChunkLedger, rows: Sequence[EnrollmentRow]) -> None:
        """Send a chunk's writes, then clear `ledger` for the next chunk."""
        for step_id in ledger.queued_steps():  # the order of the delivery batches, as per enrolment
            self.queued.setdefault(step_id, [])
        if ledger.keys:
            step_ids, statuses, reasons, not_befores, traces = zip(*ledger.kinds, strict=True)
            cursor = self.driver.cursor()
            cursor.execute(
                _INSERT_MESSAGES,
                (
                    list(step_ids),
                    list(statuses),
                    list(reasons),
                    list(not_befores),
                    list(traces),
                    array_literal(ledger.enrollment_ids),
                    array_literal(ledger.contact_ids),
                    array_literal(ledger.keys),
                    array_literal(ledger.kind_numbers),
                    self.now,
                    self.now,
                ),
            )
            self.pending.append(cursor)
        ledger.clear()
        if rows:
            self._update(rows)

    def _update(self, rows: Sequence[EnrollmentRow]) -> None:
        reasons: dict[str, int] = {}
        histories: dict[str, int] = {}
        reason_numbers = [
            "NULL" if row.exited_reason is None else reasons.setdefault(row.exited_reason, len(reasons) + 1)
            for row in rows
        ]
        history_numbers = [
            histories.setdefault("[" + ",".join(row.history) + "]", len(histories) + 1) for row in rows
        ]
        self.driver.cursor().execute(
            _UPDATE_ENROLLMENTS,
            (
                array_literal([row.id for row in rows]),
                array_literal([row.state.value for row in rows]),
                array_literal([row.current_step for row in rows]),
                self._timestamps([row.step_started_at for row in rows]),
                self._timestamps([row.next_run_at for row in rows]),
                self._timestamps([row.finished_at for row in rows]),
                array_literal(reason_numbers),
                array_literal(history_numbers),
                list(histories),
                list(reasons),
            ),
        )

    def _timestamps(self, values: list[dt.datetime | None]) -> str:
        """An array literal of ISO timestamps (a tick writes the same few moments many times)."""
        stamps = self.stamps
        out: list[str] = []
        for value in values:
            if value is None:
                out.append("NULL")
                continue
            text = stamps.get(value)
            if text is None:
                text = stamps[value] = value.isoformat()
            out.append(text)
        return "{" + ",".join(out) + "}"

    def _collect(self, answer: list[tuple[Any, ...]]) -> None:
        for step_id, ids, existing, statuses, channels in answer:
            if step_id is not None:
                self.queued.setdefault(step_id, []).extend(ids)
            elif existing:
                self._existing(existing, statuses, channels)

    def _existing(self, keys: list[str], statuses: list[str], channels: list[str]) -> None:
        result = self.result
        for status, channel in zip(statuses, channels, strict=True):
            result.messages_existing += 1
            if status == "suppressed":
                result.messages_suppressed -= 1
            elif status == "deferred":
                result.messages_deferred -= 1
            elif channel == StepKind.EMAIL.value:
                result.messages_queued -= 1
        log.warning(
            "%d ledger rows were already written (dedupe keys %s…): left as they are, not sent again",
            len(keys),
            ", ".join(keys[:5]),
        )
