"""Product events: idempotent ingest and the milestone criteria they satisfy."""
