"""Connects every package's receivers and registrations, once per process (idempotent)."""

from __future__ import annotations

import campaigns.wiring
import content.playbook
import engine.wiring
import surveys.wiring


def connect_all() -> None:
    engine.wiring.connect()
    surveys.wiring.connect()
    content.playbook.connect()
    campaigns.wiring.connect()
