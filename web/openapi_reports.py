"""OpenAPI paths for the reports API (merged into web.openapi.document)."""

from __future__ import annotations

from typing import Any

from engine.reports import REPORT_NAMES

PROBLEM = {
    "description": "problem (RFC 7807)",
    "content": {"application/problem+json": {"schema": {"type": "object"}}},
}

FILTER_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": list(REPORT_NAMES)},
    },
    {
        "name": "from",
        "in": "query",
        "schema": {"type": "string", "format": "date"},
        "description": "first day (inclusive); default: 89 days before `to`",
    },
    {
        "name": "to",
        "in": "query",
        "schema": {"type": "string", "format": "date"},
        "description": "last day (inclusive); default: today. At most 2 years after `from`",
    },
    {"name": "segment", "in": "query", "schema": {"type": "string"}, "description": "an account segment"},
    {
        "name": "stage",
        "in": "query",
        "schema": {
            "type": "string",
            "enum": ["onboarding", "enablement", "adoption", "optimisation", "renewal"],
        },
    },
    {"name": "campaign", "in": "query", "schema": {"type": "string"}, "description": "a campaign key"},
    {
        "name": "trait.<name>",
        "in": "query",
        "schema": {"type": "string"},
        "description": "a declared account trait equal to this value (repeat for several traits)",
    },
    {
        "name": "group_by",
        "in": "query",
        "schema": {"type": "string"},
        "description": "segment, stage, channel (survey-funnel, campaign-funnel) or trait.<name>",
    },
]

REPORT_RESULT = {
    "type": "object",
    "required": [
        "name",
        "title",
        "filters",
        "columns",
        "rows",
        "charts",
        "headline",
        "notes",
        "generated_at",
    ],
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "filters": {"type": "object", "additionalProperties": {"type": "string"}},
        "columns": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "label": {"type": "string"},
                    "kind": {"type": "string", "enum": ["text", "int", "pct", "days", "number"]},
                },
            },
        },
        "rows": {"type": "array", "items": {"type": "object"}},
        "charts": {"type": "array", "items": {"type": "object"}},
        "headline": {"type": "object"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "generated_at": {"type": "string", "format": "date-time"},
    },
}


def paths() -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "/api/v1/reports": {
            "get": {
                "summary": "The reports and the values their filters accept",
                "security": security,
                "responses": {"200": {"description": "report names and filter options"}, "4XX": PROBLEM},
            }
        },
        "/api/v1/reports/{name}": {
            "get": {
                "summary": "One segment report as JSON (columns, rows, charts, headline numbers)",
                "security": security,
                "parameters": FILTER_PARAMETERS,
                "responses": {
                    "200": {
                        "description": "the report",
                        "content": {"application/json": {"schema": REPORT_RESULT}},
                    },
                    "4XX": PROBLEM,
                    "503": {**PROBLEM, "description": "took longer than 20 s: run it as a job"},
                },
            }
        },
        "/api/v1/reports/{name}.csv": {
            "get": {
                "summary": "One segment report's table as CSV",
                "security": security,
                "parameters": FILTER_PARAMETERS,
                "responses": {
                    "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                    "4XX": PROBLEM,
                },
            }
        },
        "/api/v1/reports/{name}/jobs": {
            "post": {
                "summary": "Run a report in the background (queue `reports`); poll the status URL",
                "security": security,
                "parameters": FILTER_PARAMETERS,
                "responses": {"202": {"description": "job id and status URL"}, "4XX": PROBLEM},
            }
        },
        "/api/v1/reports/jobs/{id}": {
            "get": {
                "summary": "A report job: state (queued, running, finished, failed), progress, result",
                "security": security,
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "job status"}, "4XX": PROBLEM},
            }
        },
    }
