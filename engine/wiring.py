"""Connects engine's own receivers and registrations; called once per process by the app factory."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from engine import reporting, signals
from engine.accounts import Account
from engine.automation import run_rules
from engine.plans.service import ObjectiveChoice
from engine.playbook import sections


def _on_response_completed(
    _sender: object,
    *,
    session: Session,
    account_id: int,
    answers: dict[str, Any],
    choices: list[ObjectiveChoice],
    channel: str,
    now: dt.datetime,
    **_: Any,
) -> None:
    account = session.get(Account, account_id)
    if account is not None:
        run_rules(session, account, answers=answers, choices=choices, now=now, channel=channel)


def connect() -> None:
    sections.register()
    reporting.register_engine_metrics()
    signals.response_completed.connect(_on_response_completed)
