"""`northstar demo`: the whole flow on generated accounts, on a laptop with no services at all.

Defaults: SQLite in DIR, an outbox folder of .eml files, jobs run synchronously (no Redis).
Settings given in the environment win: Postgres, Redis (then an in-process burst worker drains
the queues after each tick) and SendGrid at NORTHSTAR_SENDGRID_API_HOST.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import func, select

from campaigns.models import Message, MessageStatus
from campaigns.scheduler import run_tick
from campaigns.ticker import caps_of
from engine.accounts import ContactRole, get_account, upsert_account, upsert_contact
from engine.config import settings_from_env
from engine.db import Database, utcnow
from engine.events.models import EventType
from engine.events.service import EventIn, ingest_events
from engine.library import Objective
from engine.plans.service import active_plan
from engine.playbook import import_playbook, resolve_playbook
from engine.queue import QUEUE_NAMES, JobRunner
from engine.reporting import SegmentRow, metrics, segment_report
from engine.workspaces import ensure_workspace
from migrations.runner import upgrade
from surveys.service import ContactRef, ResponseIn, get_survey, submit_response

log = logging.getLogger("northstar.demo")

COMPANIES = (
    "Acme Staffing",
    "Birch & Co",
    "Cobalt Retail",
    "Delta Logistics",
    "Evergreen Health",
    "Fjord Foods",
    "Granite Build",
    "Harbor Hotels",
    "Iris Care",
    "Juniper Labs",
    "Kestrel Air",
    "Lumen Energy",
    "Maple Dental",
    "Nimbus Cloud",
    "Orchard Farms",
    "Pioneer Parcel",
)
FIRST = (
    "Sofia",
    "Alan",
    "Linda",
    "Eli",
    "Jennifer",
    "Johnny",
    "Priya",
    "Marcus",
    "Aiko",
    "Omar",
    "Grace",
    "Tomas",
)
LAST = (
    "Varga",
    "Alda",
    "Hale",
    "Whitney",
    "Cartwright",
    "Denver",
    "Shah",
    "Okafor",
    "Tanaka",
    "Haddad",
    "Lee",
    "Novak",
)
SEGMENTS = (("starter", 0.55), ("growth", 0.35), ("scale", 0.10))
INDUSTRIES = ("retail", "healthcare", "logistics", "hospitality", "manufacturing")
SIM_DAYS = 28


@dataclass
class DemoCounts:
    accounts: int = 0
    responses: int = 0
    plans: int = 0
    messages: int = 0
    milestones_achieved: int = 0


def run_demo(*, directory: str | None, n_accounts: int, serve: bool, seed: int) -> DemoCounts:
    started = time.monotonic()
    rng = random.Random(seed)
    workdir = Path(directory or "northstar-demo").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env_settings = settings_from_env()
    overrides: dict[str, object] = {"allow_sync_jobs": True}
    if "NORTHSTAR_DATABASE_URL" not in os.environ:
        db_file = workdir / "northstar.sqlite3"
        for stale in (
            db_file,
            db_file.with_name(db_file.name + "-wal"),
            db_file.with_name(db_file.name + "-shm"),
        ):
            stale.unlink(missing_ok=True)
        overrides["database_url"] = f"sqlite:///{db_file}"
    if "NORTHSTAR_MAIL_BACKEND" not in os.environ:
        overrides["mail_backend"] = "outbox"
        overrides["outbox_dir"] = workdir / "outbox"
        for old in (workdir / "outbox").glob("*.eml"):
            old.unlink()
    settings = env_settings.with_overrides(**overrides)

    from web import create_app

    app = create_app({"SETTINGS": settings})
    database: Database = app.extensions["northstar.db"]
    runner: JobRunner = app.extensions["northstar.jobs"]
    log.info("database: %s", settings.database_url.split("@")[-1])
    log.info(
        "jobs: %s",
        "RQ on " + str(settings.redis_url) + " with an in-process burst worker"
        if runner.redis is not None
        else "synchronous mode (no Redis configured): jobs run in this process after each commit",
    )
    log.info(
        "mail: %s",
        f"SendGrid at {settings.sendgrid_api_host}"
        if settings.mail_backend == "sendgrid"
        else f"outbox folder {settings.outbox_dir}",
    )
    upgrade(settings.database_url)
    with database.transaction() as session:
        label, text = resolve_playbook("recruiting")
        import_playbook(session, text)
        ensure_workspace(
            session, name="Demo workspace", origins=["http://127.0.0.1:5000", "http://localhost:5000"]
        )
    log.info("imported playbook %s", label)

    run_id = uuid.uuid4().hex[:6]
    counts = DemoCounts()
    # The simulated month ends now: the surveys were answered SIM_DAYS ago and a tick ran each morning
    # since (09:00 UTC), then one at this moment, so the console shows a past, not a future.
    finish = utcnow().replace(microsecond=0)
    clock = finish - dt.timedelta(days=SIM_DAYS)
    external_ids = _create_accounts(database, rng, n_accounts, run_id)
    counts.accounts = len(external_ids)
    counts.responses, counts.plans = _answer_surveys(database, rng, external_ids, clock)
    log.info(
        "%d of %d accounts answered the outcomes survey; %d plans created",
        counts.responses,
        counts.accounts,
        counts.plans,
    )
    event_names = _event_names(database)
    mornings = [
        clock.replace(hour=9, minute=0, second=0) + dt.timedelta(days=day) for day in range(SIM_DAYS + 1)
    ]
    for day, now in enumerate([m for m in mornings if clock <= m < finish] + [finish]):
        if day:
            counts.milestones_achieved += _product_events(database, rng, external_ids, now, event_names, day)
        _tick(database, runner, now)
    with database.session() as session:
        counts.messages = int(
            session.scalar(select(func.count(Message.id)).where(Message.status == MessageStatus.SENT)) or 0
        )
        report = format_report(segment_report(session))
    click.echo(report)
    if settings.mail_backend == "outbox":
        written = len(list(settings.outbox_dir.glob("*.eml")))
        click.echo(f"emails written to {settings.outbox_dir} ({written} .eml files)")
    click.echo(f"finished in {time.monotonic() - started:.1f}s")
    click.echo(
        f"demo: accounts={counts.accounts} responses={counts.responses} plans={counts.plans} "
        f"messages={counts.messages} milestones_achieved={counts.milestones_achieved}"
    )
    if serve:
        click.echo("serving on http://127.0.0.1:5000 (Ctrl-C to stop)")
        app.run(host="127.0.0.1", port=5000)
    return counts


def _create_accounts(database: Database, rng: random.Random, n: int, run_id: str) -> list[str]:
    external_ids = []
    with database.transaction() as session:
        for i in range(n):
            segment = rng.choices([s for s, _ in SEGMENTS], [w for _, w in SEGMENTS])[0]
            name = f"{rng.choice(COMPANIES)} {i + 1:03d}"
            external_id = f"demo-{run_id}-{i + 1:04d}"
            account = upsert_account(
                session,
                external_id,
                name=name,
                segment=segment,
                plan_tier=segment,
                traits={"industry": rng.choice(INDUSTRIES), "seats": rng.randint(3, 120)},
                timezone=rng.choice(["America/New_York", "Europe/Berlin", "America/Chicago", "UTC"]),
            )
            roles = [ContactRole.EXEC_SPONSOR, ContactRole.CHAMPION, ContactRole.CHAMPION]
            roles += [ContactRole.POWER_USER] * rng.randint(0, 3)
            if rng.random() < 0.15:
                roles.remove(ContactRole.EXEC_SPONSOR)  # the triangle has gaps in real life
            domain = name.split()[0].lower().replace("&", "and") + f"{i + 1:03d}.example"
            for j, role in enumerate(roles):
                first, last = rng.choice(FIRST), rng.choice(LAST)
                upsert_contact(
                    session,
                    account,
                    f"{first.lower()}.{last.lower()}{j}@{domain}",
                    name=f"{first} {last}",
                    role=role,
                )
            external_ids.append(external_id)
    return external_ids


def _answer_surveys(
    database: Database, rng: random.Random, external_ids: list[str], now: dt.datetime
) -> tuple[int, int]:
    responses = plans = 0
    with database.session() as session:
        survey = get_survey(session, "outcomes")
        questions = survey.latest_published.questions if survey.latest_published else []
        objectives = list(session.scalars(select(Objective)))
        outcomes = sorted({o.outcome_key for o in objectives})
    for external_id in external_ids:
        if rng.random() > 0.85:
            continue  # some customers never answer
        picked_outcomes = rng.sample(outcomes, k=rng.choice([1, 1, 2]))
        candidates = [o for o in objectives if o.outcome_key in picked_outcomes]
        picked = rng.sample(candidates, k=min(len(candidates), rng.choice([1, 2, 3])))
        answers: dict[str, object] = {}
        for question in questions:
            kind, key = question["kind"], question["key"]
            if kind == "outcome_pick":
                answers[key] = picked_outcomes
            elif kind == "objective_pick":
                answers[key] = [o.key for o in picked]
            elif kind == "key_result":
                answers[key] = {
                    o.key: {
                        "baseline": o.default_baseline,
                        "target": round(o.default_target * rng.uniform(0.9, 1.2), 1),
                        "due_date": (
                            now.date() + dt.timedelta(days=o.default_days + rng.randint(-10, 30))
                        ).isoformat(),
                    }
                    for o in picked
                    if round(o.default_target * 1.0, 1) != o.default_baseline
                }
            elif kind == "nps":
                answers[key] = rng.choice([4, 6, 7, 8, 9, 9, 10, 10])
            elif kind == "single_choice" and question.get("options"):
                answers[key] = rng.choice(question["options"])["value"]
        with database.transaction() as session:
            account = get_account(session, external_id)
            respondent = next((c for c in account.contacts if c.role == ContactRole.CHAMPION), None)
            result = submit_response(
                session,
                "outcomes",
                ResponseIn(
                    client_response_id=f"{external_id}-outcomes",
                    account=external_id,
                    answers=answers,
                    channel=rng.choice(["in_app", "in_app", "email", "hosted"]),
                    contact=ContactRef(email=respondent.email) if respondent else None,
                ),
                now=now,
            )
            responses += 1
            account_id = result.response.account_id
            plans += 1 if account_id and active_plan(session, account_id) else 0
    return responses, plans


def _event_names(database: Database) -> list[str]:
    with database.session() as session:
        return sorted(session.scalars(select(EventType.name)))


def _product_events(
    database: Database,
    rng: random.Random,
    external_ids: list[str],
    now: dt.datetime,
    names: list[str],
    day: int,
) -> int:
    """A simulated day of product usage: engaged accounts act more, and act earlier in the funnel."""
    events: list[EventIn] = []
    for index, external_id in enumerate(external_ids):
        engagement = (index * 7919 % 100) / 100  # stable per account
        if rng.random() > engagement * 0.8:
            continue
        reach = min(len(names), 1 + day // 4 + int(engagement * 3))
        for n in range(rng.randint(1, 3)):
            name = rng.choice(names[:reach]) if day > 3 else names[0]
            events.append(
                EventIn(
                    account=external_id,
                    name=name,
                    idempotency_key=f"{external_id}-{day}-{n}",
                    occurred_at=now - dt.timedelta(minutes=rng.randint(5, 600)),
                )
            )
    achieved = 0
    for start in range(0, len(events), 1000):
        with database.transaction() as session:
            achieved += len(ingest_events(session, events[start : start + 1000], now=now).milestones_achieved)
    return achieved


def _tick(database: Database, runner: JobRunner, now: dt.datetime) -> None:
    with database.transaction() as session:
        result = run_tick(session, now=now, caps=caps_of(database.settings))
    if result.messages_queued:
        log.info(
            "%s: tick ran %d steps, queued %d emails in %d batch job(s)",
            now.date(),
            result.steps_run,
            result.messages_queued,
            len(result.batches),
        )
    if runner.redis is not None:
        from rq import SimpleWorker

        SimpleWorker(list(QUEUE_NAMES), connection=runner.redis).work(burst=True, logging_level="WARNING")


def format_report(rows: list[SegmentRow]) -> str:
    columns = [m for m in metrics()]
    header = ["segment", *[m.label for m in columns]]
    table = [header] + [[row.segment, *[str(row.values.get(m.key, 0)) for m in columns]] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for n, row in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0 or n == len(table) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
