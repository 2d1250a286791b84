"""Reports as background jobs on the `reports` queue, so a long one never holds a web worker.

`start_report_job` returns an RQ job id; `report_job_status` tells the page how far it got and
hands back the result (the JSON shape of engine.reports.report_to_dict) once it is done.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from rq import get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from engine import db, queue
from engine.errors import ConfigurationError, NorthstarError, NotFound
from engine.reports.base import Filters, parse_filters, report_definition, report_to_dict, run_report

RESULT_TTL_S = 3600
JOB_TIMEOUT_S = 900
# Demo mode (no Redis): the job ran in this process; its outcome waits here for the status call.
_finished_inline: dict[str, dict[str, Any]] = {}
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def start_report_job(name: str, filters: Filters) -> str:
    """Queue one report; NotFound for an unknown name (checked now, not in the worker)."""
    report_definition(name)
    runner = queue.current()
    params = filters.as_params()
    if runner.redis is None:
        if runner.refuse_reason:
            raise ConfigurationError(runner.refuse_reason)
        job_id = f"inline-{uuid.uuid4().hex}"
        try:
            _finished_inline[job_id] = {
                "state": "finished",
                "progress": 1.0,
                "result": run_report_job(name, params),
            }
        except NorthstarError as exc:
            _finished_inline[job_id] = {"state": "failed", "progress": 1.0, "error": exc.detail}
        return job_id
    job = runner.queues["reports"].enqueue(
        run_report_job,
        name,
        params,
        result_ttl=RESULT_TTL_S,
        failure_ttl=RESULT_TTL_S,
        job_timeout=JOB_TIMEOUT_S,
        meta={"progress": 0.0, "report": name},
    )
    return str(job.id)


def run_report_job(name: str, params: dict[str, str]) -> dict[str, Any]:
    """RQ entry point: plain values in (the report name and its query parameters), JSON out."""
    _progress(0.1)
    end = params.get("to")
    filters = parse_filters(params, today=dt.date.fromisoformat(end) if end else dt.date.today())
    with db.current().transaction() as session:
        result = report_to_dict(run_report(session, name, filters))
    _progress(1.0)
    return result


def _progress(value: float) -> None:
    job = get_current_job()
    if job is not None:
        job.meta["progress"] = value
        job.save_meta()  # type: ignore[no-untyped-call]


def report_job_status(job_id: str) -> dict[str, Any]:
    """{state: queued|running|finished|failed, progress: 0..1, result?: …, error?: …}."""
    if job_id in _finished_inline:
        return dict(_finished_inline[job_id])
    runner = queue.current()
    # RQ's ids are letters, digits, '_' and '-' (Job.fetch raises ValueError on anything else)
    if runner.redis is None or not _JOB_ID.fullmatch(job_id):
        raise NotFound(f"no report job {job_id[:100]!r}")
    try:
        job = Job.fetch(job_id, connection=runner.redis)
    except NoSuchJobError:
        raise NotFound(f"no report job {job_id!r} (results are kept for an hour)") from None
    if job.func_name != f"{__name__}.run_report_job":
        raise NotFound(f"no report job {job_id!r}")
    status = job.get_status(refresh=True)
    progress = float((job.meta or {}).get("progress") or 0.0)
    if status == JobStatus.FINISHED:
        return {"state": "finished", "progress": 1.0, "result": job.return_value()}
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return {"state": "failed", "progress": progress, "error": _failure(job)}
    state = "running" if status == JobStatus.STARTED else "queued"
    return {"state": state, "progress": progress}


def _failure(job: Job) -> str:
    info = job.latest_result()
    text = (info.exc_string if info is not None else None) or "the report job failed"
    return text.strip().splitlines()[-1][:500]
