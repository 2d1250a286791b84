"""OpenAPI paths for the people API (merged into web.openapi.document)."""

from __future__ import annotations

from typing import Any

from web.openapi_common import PROBLEM

CONTACT_ID = {
    "name": "contact_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "The contact's Northstar id",
}
SECTIONS = {
    "format": {"type": "string", "example": "northstar.contact-export/1"},
    "exported_at": {"type": "string", "format": "date-time"},
    "contact": {"type": "object", "description": "email, name, role, locale, timezone, suppressions"},
    "account": {"type": "object", "description": "id, external_id, name, segment"},
    "events": {"type": "array", "items": {"type": "object"}},
    "surveys": {"type": "object", "description": "responses (with answers) and dismissals"},
    "plans": {"type": "object", "description": "plan revisions this contact made"},
    "campaigns": {
        "type": "object",
        "description": "messages (status, trace, provider events), in-app inbox, suppression",
    },
}


def paths() -> dict[str, Any]:
    return {
        "/api/v1/contacts/{contact_id}/export": {
            "get": {
                "summary": "Everything held about one contact, as JSON (admin token)",
                "security": [{"bearer": []}],
                "parameters": [CONTACT_ID],
                "responses": {
                    "200": {
                        "description": "the export",
                        "content": {
                            "application/json": {"schema": {"type": "object", "properties": SECTIONS}}
                        },
                    },
                    "401": PROBLEM,
                    "403": PROBLEM,
                    "404": PROBLEM,
                },
            }
        },
        "/api/v1/contacts/{contact_id}/erase": {
            "post": {
                "summary": "Erase one contact (admin token); idempotent: a repeat answers already_erased",
                "description": (
                    "Deletes the contact and everything personal about them in one transaction. "
                    "Messages become anonymous counts, survey answers stay with the account without "
                    "free text, the email is kept only as a salted hash so it is never mailed again."
                ),
                "security": [{"bearer": []}],
                "parameters": [CONTACT_ID],
                "responses": {
                    "200": {
                        "description": "erased now, or already erased earlier",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "contact_id": {"type": "integer"},
                                        "erased_at": {"type": "string", "format": "date-time"},
                                        "erased_by": {"type": "string"},
                                        "already_erased": {"type": "boolean"},
                                        "summary": {"type": "object"},
                                    },
                                }
                            }
                        },
                    },
                    "401": PROBLEM,
                    "403": PROBLEM,
                    "404": PROBLEM,
                },
            }
        },
    }
