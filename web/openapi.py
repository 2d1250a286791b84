"""The OpenAPI 3 document for API v1 (kept beside the routes it describes)."""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/responses/Problem"}


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
                        "201": {"description": "stored"},
                        "200": {"description": "replayed or updated"},
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
