"""API v1 reports: /api/v1/reports/<name> (JSON) and /api/v1/reports/<name>.csv, plus report jobs."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engine.errors import NorthstarError, NotFound
from engine.reports import (
    REPORT_NAMES,
    Filters,
    ReportResult,
    filter_options,
    parse_filters,
    report_definition,
    report_to_dict,
    run_report,
    to_csv,
)
from engine.reports.jobs import report_job_status, start_report_job
from web.api import token_required
from web.context import db_session, now

bp = Blueprint("reports_api", __name__)
log = logging.getLogger(__name__)

# A web worker never waits longer than this for a report; past it, the caller is told to run the
# report as a job (POST /api/v1/reports/<name>/jobs), which has no such limit.
STATEMENT_TIMEOUT_MS = 20_000


class ReportTooSlow(NorthstarError):
    status = 503
    title = "Report took too long"


def _filters() -> Filters:
    params = {key: value for key, value in request.args.items()}
    return parse_filters(params, today=now().date())


def _run(name: str) -> ReportResult:
    if name not in REPORT_NAMES:
        raise NotFound(f"no report named {name[:80]!r}; reports: {', '.join(REPORT_NAMES)}")
    report_definition(name)
    filters = _filters()
    session = db_session()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
    try:
        return run_report(session, name, filters)
    except OperationalError as exc:
        session.rollback()
        if "statement timeout" not in str(exc.orig):
            raise
        log.warning("report %s timed out after %d ms: %s", name, STATEMENT_TIMEOUT_MS, filters)
        raise ReportTooSlow(
            f"the {name} report took longer than {STATEMENT_TIMEOUT_MS // 1000} s; "
            f"run it as a job: POST /api/v1/reports/{name}/jobs with the same query string",
        ) from None
    finally:
        session.rollback()  # read-only: end the transaction (and its statement timeout)


@bp.get("/api/v1/reports")
@token_required
def list_reports() -> Any:
    return jsonify(
        {
            "reports": [
                {"name": name, "json": f"/api/v1/reports/{name}", "csv": f"/api/v1/reports/{name}.csv"}
                for name in REPORT_NAMES
            ],
            "filters": filter_options(db_session()),
        }
    )


@bp.get("/api/v1/reports/<name>.csv")
@token_required
def report_csv(name: str) -> Any:
    result = _run(name)
    filename = f"{name}_{result.filters.start.isoformat()}_{result.filters.end.isoformat()}.csv"
    return Response(
        to_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/api/v1/reports/<name>")
@token_required
def report_json(name: str) -> Any:
    return jsonify(report_to_dict(_run(name)))


@bp.post("/api/v1/reports/<name>/jobs")
@token_required
def start_job(name: str) -> Any:
    if name not in REPORT_NAMES:
        raise NotFound(f"no report named {name[:80]!r}; reports: {', '.join(REPORT_NAMES)}")
    job_id = start_report_job(name, _filters())
    response = jsonify({"id": job_id, "status_url": f"/api/v1/reports/jobs/{job_id}"})
    response.status_code = 202
    response.headers["Location"] = f"/api/v1/reports/jobs/{job_id}"
    return response


@bp.get("/api/v1/reports/jobs/<job_id>")
@token_required
def job_status(job_id: str) -> Any:
    return jsonify({"id": job_id, **report_job_status(job_id)})
