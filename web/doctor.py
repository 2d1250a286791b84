"""`northstar doctor`: check each service the settings point at and say plainly what is wrong."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request

from redis import Redis
from rq import Worker
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine.config import Settings
from engine.db import make_engine, utcnow
from engine.queue import QUEUE_NAMES, connect_redis, redis_reachable
from surveys.rules_queue import waiting


def run_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    results = [_database(settings)]
    if results[0][1]:
        results.append(_rules_queue(settings))
    if settings.redis_url:
        redis = connect_redis(settings.redis_url, timeout=1.0)
        ok = redis_reachable(redis)
        results.append(("redis", ok, settings.redis_url if ok else f"cannot reach {settings.redis_url}"))
        if ok:
            results.append(_workers(redis))
    else:
        results.append(("redis", False, "NORTHSTAR_REDIS_URL is not set: workers and the scheduler need it"))
    results.append(_mail(settings))
    return results


def _database(settings: Settings) -> tuple[str, bool, str]:
    from migrations.runner import current_revision, head_revision

    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = current_revision(conn)
    except SQLAlchemyError as exc:
        return ("database", False, f"cannot connect: {str(exc).splitlines()[0]}")
    finally:
        engine.dispose()
    head = head_revision()
    if current != head:
        return (
            "database",
            False,
            f"schema at {current or 'nothing'}, code expects {head}: run 'northstar db upgrade'",
        )
    return ("database", True, f"connected, schema at {head}")


STALE_RULES = dt.timedelta(minutes=5)


def _rules_queue(settings: Settings) -> tuple[str, bool, str]:
    """Widget/API responses waiting for the `rules` job (ADR 0009): a long wait means no worker."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            count, oldest = waiting(session)
    finally:
        engine.dispose()
    if not count or oldest is None:
        return ("rules queue", True, "no response waits for its plan")
    age = utcnow() - oldest
    said = f"{count} responses wait for their plan, the oldest for {int(age.total_seconds())} s"
    if age > STALE_RULES:
        return ("rules queue", False, f"{said}: is `northstar worker` running?")
    return ("rules queue", True, said)


def _workers(redis: Redis) -> tuple[str, bool, str]:
    """The RQ workers registered in Redis (on any machine), and which queues each listens on: with
    none on a queue, its jobs (plans from answers, nudges, report refreshes) wait for ever."""
    workers = Worker.all(connection=redis)
    listening = {name: sum(name in w.queue_names() for w in workers) for name in QUEUE_NAMES}
    counts = ", ".join(f"{name} {n}" for name, n in listening.items())
    if not workers:
        return ("workers", False, "none running: start `northstar worker` (jobs wait until one does)")
    idle = [name for name, n in listening.items() if not n]
    if idle:
        return ("workers", False, f"{len(workers)} running, none on {', '.join(idle)} ({counts})")
    return ("workers", True, f"{len(workers)} running (per queue: {counts})")


def _mail(settings: Settings) -> tuple[str, bool, str]:
    if settings.mail_backend == "outbox":
        directory = settings.outbox_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / ".doctor"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return ("mail", False, f"outbox {directory} is not writable: {exc.strerror}")
        return ("mail", True, f"outbox backend writes .eml files to {directory}")
    try:
        urllib.request.urlopen(settings.sendgrid_api_host, timeout=3)
    except urllib.error.HTTPError:
        pass  # any HTTP answer means the host is there
    except (urllib.error.URLError, TimeoutError) as exc:
        return ("mail", False, f"SendGrid host {settings.sendgrid_api_host} unreachable: {exc}")
    return ("mail", True, f"sendgrid backend at {settings.sendgrid_api_host}")
