"""Connects engine's own receivers and registrations; called once per process by the app factory."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from engine import audit, privacy, reporting, signals
from engine.accounts import Account
from engine.apitokens import ApiToken
from engine.automation import run_rules
from engine.plans import privacy as plan_privacy
from engine.plans.models import KeyResult, Milestone, PlanTemplate, SuccessPlan
from engine.plans.service import ObjectiveChoice
from engine.playbook import sections
from engine.reports.plans import register_engine_reports
from engine.rules.models import Rule, RuleSet
from engine.users import Invitation, User
from engine.workspaces import Workspace


def _on_response_completed(
    _sender: object,
    *,
    session: Session,
    account_id: int,
    answers: dict[str, Any],
    choices: list[ObjectiveChoice],
    channel: str,
    now: dt.datetime,
    as_of: tuple[dt.datetime, int] | None = None,
    stored_facts: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    account = session.get(Account, account_id)
    if account is not None:
        run_rules(
            session,
            account,
            answers=answers,
            choices=choices,
            now=now,
            channel=channel,
            answers_as_of=as_of,
            stored_facts=stored_facts,
        )


def connect() -> None:
    sections.register()
    reporting.register_engine_metrics()
    register_engine_reports()
    signals.response_completed.connect(_on_response_completed)
    for model in (RuleSet, Rule, PlanTemplate, SuccessPlan, Milestone, KeyResult):
        audit.register(model)
    login_state = ["failed_logins", "locked_until", "last_login_at", "session_epoch"]
    audit.register(User, redact=["password_hash"], ignore=login_state)
    audit.register(Invitation, redact=["nonce"])
    audit.register(ApiToken, redact=["digest"], title="API token")
    audit.register(Workspace, redact=["jwt_secret", "previous_jwt_secret"])
    privacy.register_provider(plan_privacy.PROVIDER)
