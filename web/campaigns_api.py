"""API v1 for campaigns: the list, a campaign's draft (read, and replace with an If-Match version
check), publish, pause/resume and live counts per step. Token auth."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, fields, validate

from campaigns import builder
from web.api import load, token_required
from web.context import db_session, json_body, now, unit_of_work
from web.problems import problem

bp = Blueprint("campaigns_api", __name__)


def _caller() -> str | None:
    caller: str | None = g.get("api_caller")
    return caller


def _draft_json(draft: builder.DraftView) -> dict[str, Any]:
    return {
        "key": draft.key,
        "etag": draft.etag,
        "based_on_version": draft.based_on_version,
        "has_draft": draft.has_draft,
        "updated_at": draft.updated_at.isoformat() if draft.updated_at else None,
        "updated_by": draft.updated_by,
        "document": draft.document,
    }


def _with_etag(body: dict[str, Any], tag: str, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["ETag"] = f'"{tag}"'
    return response


def _if_match(key: str) -> str | None:
    """The version the client based its change on (`If-Match: "<etag>"`), if it sent one; `*`
    (RFC 9110: whatever is current) means the client overwrites on purpose."""
    header = request.headers.get("If-Match", "").strip()
    if header == "*":
        return builder.get_draft(db_session(), key).etag
    return header.removeprefix("W/").strip('"') if header else None


def _if_match_missing() -> Response:
    return problem(
        428,
        "Precondition Required",
        "send If-Match with the draft's ETag (from GET .../draft), so a save based on an older "
        "draft is refused instead of overwriting someone else's",
    )


def _stale(exc: builder.StaleDraft) -> Response:
    return problem(412, "Precondition Failed", exc.detail, **exc.extra)


@bp.get("/api/v1/campaigns")
@token_required
def list_campaigns() -> Any:
    return jsonify(
        {
            "campaigns": [
                {
                    "key": c.key,
                    "name": c.name,
                    "status": c.status,
                    "version": c.version,
                    "paused": c.paused,
                    "has_draft": c.has_draft,
                    "enrolled": c.enrolled,
                    "by_state": c.counts,
                }
                for c in builder.campaign_summaries(db_session())
            ]
        }
    )


class NewCampaignSchema(Schema):
    key = fields.String(required=True, validate=validate.Length(1, 80))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))


@bp.post("/api/v1/campaigns")
@token_required
def create_campaign() -> Any:
    data = load(NewCampaignSchema(), json_body())
    with unit_of_work() as session:
        draft = builder.create_campaign(
            session, data["key"], data["name"], data["description"], user=_caller(), now=now()
        )
        body = _draft_json(draft)
    return _with_etag(body, draft.etag, 201)


@bp.get("/api/v1/campaigns/<key>/draft")
@token_required
def get_draft(key: str) -> Any:
    draft = builder.get_draft(db_session(), key)
    return _with_etag(_draft_json(draft), draft.etag)


@bp.put("/api/v1/campaigns/<key>/draft")
@token_required
def put_draft(key: str) -> Any:
    expected = _if_match(key)
    if expected is None:
        return _if_match_missing()
    document = json_body()
    try:
        with unit_of_work() as session:
            draft = builder.save_draft(session, key, document, expected=expected, user=_caller(), now=now())
            body = _draft_json(draft)
    except builder.StaleDraft as exc:
        return _stale(exc)
    return _with_etag(body, draft.etag)


@bp.delete("/api/v1/campaigns/<key>/draft")
@token_required
def delete_draft(key: str) -> Any:
    with unit_of_work() as session:
        builder.get_draft(session, key)  # 404 for an unknown campaign
        dropped = builder.discard_draft(session, key)
    return jsonify({"key": key, "discarded": dropped})


class PublishSchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=builder.MAX_NOTE))


@bp.post("/api/v1/campaigns/<key>/publish")
@token_required
def publish(key: str) -> Any:
    data = load(PublishSchema(), json_body() if request.get_data(cache=True) else {})
    expected = _if_match(key)
    try:
        with unit_of_work() as session:
            version = builder.publish_draft(
                session, key, expected=expected, note=data["note"], user=_caller(), now=now()
            )
            body = {
                "key": key,
                "version": version.version,
                "published_at": version.published_at.isoformat() if version.published_at else None,
                "note": version.note,
            }
    except builder.StaleDraft as exc:
        return _stale(exc)
    return jsonify(body)


@bp.post("/api/v1/campaigns/<key>/pause")
@token_required
def pause(key: str) -> Any:
    return _paused(key, True)


@bp.post("/api/v1/campaigns/<key>/resume")
@token_required
def resume(key: str) -> Any:
    return _paused(key, False)


def _paused(key: str, paused: bool) -> Any:
    with unit_of_work() as session:
        campaign = builder.set_paused(session, key, paused)
        body = {"key": campaign.key, "version": campaign.version, "paused": campaign.paused}
    return jsonify(body)


@bp.get("/api/v1/campaigns/<key>/stats")
@token_required
def stats(key: str) -> Any:
    session = db_session()
    return jsonify(builder.stats_document(session, builder.require_campaign(session, key)))
