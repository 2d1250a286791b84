"""Provider webhooks: SendGrid's signed event webhook (delivery, engagement, bounces, opt-outs)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, jsonify, request

from campaigns.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_events, record_events, verify_request
from web.context import now, settings, unit_of_work

bp = Blueprint("webhooks", __name__)
# SendGrid posts a batch every 30 s or at about 768 KB; leave room above the app-wide 1 MB limit.
MAX_BATCH_BYTES = 8 * 1024 * 1024


@bp.post("/webhooks/sendgrid/events")
def sendgrid_events() -> Response:
    """Verify, store and apply one batch; 200 as soon as it is committed (SendGrid retries anything
    else for 24 h, and the batch is idempotent on each event's sg_event_id)."""
    request.max_content_length = MAX_BATCH_BYTES
    raw = request.get_data(cache=False)
    received_at = now()
    verify_request(
        settings().sendgrid_webhook_public_key,
        raw,
        request.headers.get(SIGNATURE_HEADER),
        request.headers.get(TIMESTAMP_HEADER),
        now=received_at,
    )
    events = parse_events(raw)
    with unit_of_work() as session:
        receipt = record_events(session, events, now=received_at)
    return jsonify(asdict(receipt))
