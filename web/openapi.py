"""The OpenAPI 3 document for API v1 (kept beside the routes it describes)."""

from __future__ import annotations

from typing import Any

from web import openapi_campaigns, openapi_content, openapi_people, openapi_reports
from web.openapi_common import PROBLEM, _op

# A completed widget/API response answers at once; its rules run in the `rules` job (ADR 0009), so
# `plan` is first `pending` with a link that opens the plan once it exists, then `ready`.
RESPONSE_OUT = {
    "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "client_response_id": {"type": "string"},
            "survey": {"type": "string"},
            "version": {"type": "integer"},
            "status": {"type": "string", "enum": ["partial", "completed"]},
            "replayed": {"type": "boolean"},
            "plan": {
                "type": "object",
                "nullable": True,
                "properties": {
                    "status": {"type": "string", "enum": ["pending", "ready"]},
                    "share_url": {"type": "string", "format": "uri"},
                    "id": {"type": "integer", "description": "ready only"},
                    "goal": {"type": "string", "description": "ready only"},
                },
                "required": ["status", "share_url"],
            },
        },
    }
}


def document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Northstar API", "version": "1"},
        "servers": [{"url": server_url}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "RFC 7807 problem",
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                }
            },
        },
        "paths": {
            "/api/v1/surveys/{survey_key}/responses": {
                "post": {
                    "summary": "Submit (or resume) a survey response; idempotent on client_response_id",
                    "parameters": [
                        {
                            "name": "survey_key",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["client_response_id", "account", "answers"],
                                    "properties": {
                                        "client_response_id": {"type": "string", "minLength": 8},
                                        "account": {"type": "string"},
                                        "contact": {
                                            "type": "object",
                                            "properties": {
                                                "email": {"type": "string"},
                                                "name": {"type": "string"},
                                            },
                                        },
                                        "channel": {
                                            "type": "string",
                                            "enum": ["in_app", "email", "hosted", "api"],
                                        },
                                        "version": {"type": "integer"},
                                        "complete": {"type": "boolean", "default": True},
                                        "answers": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "stored", "content": {"application/json": RESPONSE_OUT}},
                        "200": {
                            "description": "replayed or updated",
                            "content": {"application/json": RESPONSE_OUT},
                        },
                        "4XX": PROBLEM,
                    },
                }
            },
            "/api/v1/accounts/{external_id}": {
                "put": {
                    "summary": "Create or update an account and its contacts",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {
                            "name": "external_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "201": {"description": "created"},
                        "200": {"description": "updated"},
                        "4XX": PROBLEM,
                    },
                }
            },
            "/api/v1/events": {
                "post": {
                    "summary": "Ingest up to 1,000 product events (idempotent per idempotency_key)",
                    "security": [{"bearer": []}],
                    "responses": {"202": {"description": "accepted"}, "4XX": PROBLEM},
                }
            },
            **rules_paths(),
            **plans_paths(),
            **contacts_paths(),
            **openapi_content.paths(),
            **openapi_reports.paths(),
            **openapi_people.paths(),
            **openapi_campaigns.paths(),
            "/healthz": {
                "get": {
                    "summary": "Database and Redis health",
                    "responses": {
                        "200": {"description": "healthy"},
                        "503": {"description": "degraded"},
                    },
                }
            },
        },
    }


RULE = {
    "type": "object",
    "required": ["name", "condition", "actions"],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "description": {"type": "string"},
        "priority": {"type": "integer", "default": 100, "description": "higher runs first"},
        "condition": {"description": "JSON Logic over the field catalogue (GET /api/v1/rules/fields)"},
        "actions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [
                            "create_plan",
                            "add_objective",
                            "add_milestone",
                            "enroll",
                            "exit",
                            "assign_content",
                            "tag_account",
                        ],
                    }
                },
            },
        },
        "stop": {"type": "boolean", "default": False},
    },
}
VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "a rule set version number, or `published` / `draft`",
    "schema": {"type": "string"},
}
RULE_ID = {"name": "rule_id", "in": "path", "required": True, "schema": {"type": "integer"}}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": (
        "the rule's ETag from GET (its revision); a stale one is refused with 412, `*` overwrites; "
        "without it, a `revision` in the body (as GET returned it) is checked the same way"
    ),
    "schema": {"type": "string"},
}


def rules_paths() -> dict[str, Any]:
    note = {"type": "object", "properties": {"note": {"type": "string"}}}
    return {
        "/api/v1/rulesets": {
            "get": _op("Every rule set version, newest first", "200"),
            "post": _op(
                "Start the draft (a copy of the published rules) or return it", "200", "201", body=note
            ),
        },
        "/api/v1/rulesets/{version}": {
            "get": _op("A version with its rules, errors and findings", "200", params=(VERSION,)),
        },
        "/api/v1/rulesets/{version}/rules": {
            "post": _op("Add a rule to the draft", "201", body=RULE, params=(VERSION,)),
            "put": _op(
                "Replace every rule of the draft (all or nothing)",
                "200",
                body={"type": "object", "properties": {"rules": {"type": "array", "items": RULE}}},
                params=(VERSION,),
            ),
        },
        "/api/v1/rulesets/{version}/rules/{rule_id}": {
            "get": _op("One rule", "200", params=(VERSION, RULE_ID)),
            "put": _op(
                "Replace a rule of the draft (If-Match: its revision)",
                "200",
                body=RULE,
                params=(VERSION, RULE_ID, IF_MATCH),
            ),
            "delete": _op("Delete a rule from the draft", "204", params=(VERSION, RULE_ID)),
        },
        "/api/v1/rulesets/{version}/validate": {
            "post": _op(
                "Errors (block publishing) and findings (conflicts, never-matching rules)",
                "200",
                params=(VERSION,),
            ),
        },
        "/api/v1/rulesets/{version}/simulate": {
            "post": _op(
                "Run this version and the published one over real accounts and diff them (writes nothing)",
                "200",
                body={
                    "type": "object",
                    "properties": {
                        "sample": {"description": 'number of accounts (default 1000) or "all"'},
                        "against": {"type": "integer", "description": "version to compare with"},
                    },
                },
                params=(VERSION,),
            ),
        },
        "/api/v1/rulesets/{version}/publish": {
            "post": _op(
                "Publish the draft atomically (refused while it has errors)",
                "200",
                body=note,
                params=(VERSION,),
            ),
        },
        "/api/v1/rulesets/{version}/rollback": {
            "post": _op("Publish a copy of this earlier version as a new version", "201", params=(VERSION,)),
        },
        "/api/v1/rules": {"get": _op("The published rules in evaluation order", "200")},
        "/api/v1/rules/fields": {"get": _op("The field catalogue: every fact a rule may read", "200")},
        "/api/v1/rules/evaluate": {
            "post": _op(
                "Evaluate a condition against facts or a real account's facts: value, match and why",
                "200",
                body={
                    "type": "object",
                    "required": ["condition"],
                    "properties": {
                        "condition": {},
                        "facts": {"type": "object"},
                        "account": {"type": "string"},
                        "check_fields": {"type": "boolean", "default": False},
                    },
                },
            ),
        },
    }


def plans_paths() -> dict[str, Any]:
    account = {"name": "external_id", "in": "path", "required": True, "schema": {"type": "string"}}
    patch = {
        "type": "object",
        "properties": {
            "key_results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "properties": {
                        "id": {"type": "integer"},
                        "current": {"type": "number"},
                        "target": {"type": "number"},
                        "due_date": {"type": "string", "format": "date"},
                    },
                },
            },
            "milestones": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["key"],
                    "properties": {
                        "key": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["pending", "on_track", "behind", "achieved", "missed"],
                        },
                        "due_date": {"type": "string", "format": "date"},
                    },
                },
            },
            "comment": {"type": "string", "maxLength": 2000},
            "review_confirmed": {"type": "boolean"},
        },
    }
    query = [
        {
            "name": "status",
            "in": "query",
            "schema": {
                "type": "string",
                "enum": [
                    "active",
                    "completed",
                    "cancelled",
                    "on_track",
                    "behind",
                    "missed",
                    "review_overdue",
                ],
                "default": "active",
            },
        },
        {"name": "segment", "in": "query", "schema": {"type": "string"}},
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {"name": "per_page", "in": "query", "schema": {"type": "integer", "maximum": 200, "default": 50}},
    ]
    return {
        "/api/v1/accounts/{external_id}/plan": {
            "get": _op(
                "The account's plan: goal, key_results, milestones, dependencies, risks, contacts (the "
                "1-2-3 triangle with gaps), review_date, share_url, recent revisions",
                "200",
                params=(account,),
            ),
            "patch": _op(
                "Update KR values, milestone status/due dates, add a comment, confirm the review "
                "(one transaction: all or nothing; every change a revision)",
                "200",
                body=patch,
                params=(account,),
            ),
        },
        "/api/v1/plans": {"get": _op("Plans by state, paginated (total, next)", "200", params=tuple(query))},
    }


def contacts_paths() -> dict[str, Any]:
    def param(name: str, where: str, description: str, *, required: bool = False) -> dict[str, Any]:
        return {
            "name": name,
            "in": where,
            "required": required,
            "description": description,
            "schema": {"type": "string"},
        }

    limit = {
        "name": "limit",
        "in": "query",
        "description": "the latest N messages (total and truncated say if there are more)",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200},
    }
    account = param("account", "query", "the account's external id (picks one of several matches)")
    summary = (
        "Why was this sent? Every enrolment of the contact's account (campaign, version, entry, "
        "enrolled_by, transitions), every message to the contact (step, status, reason, each guard's "
        "result) and not_sent: message steps that wrote nothing for them, with the reason"
    )
    return {
        "/api/v1/contacts/{external_id}/messages": {
            "get": _op(
                summary,
                "200",
                params=(
                    param("external_id", "path", "the contact's external id", required=True),
                    account,
                    limit,
                ),
            ),
        },
        "/api/v1/contacts/messages": {
            "get": _op(
                "The same, for a contact without an external id: by email within an account",
                "200",
                params=(
                    param("email", "query", "the contact's email", required=True),
                    {**account, "required": True},
                    limit,
                ),
            ),
        },
    }
