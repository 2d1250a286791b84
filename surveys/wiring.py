"""Registers the surveys playbook section and the 'accounts surveyed' report metric."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from engine import audit, privacy, reporting
from engine.accounts import Account
from engine.db import utcnow
from engine.playbook import Section, register_section
from engine.rules.catalogue import register_field_provider
from engine.rules.facts import register_answers_provider
from surveys import privacy as survey_privacy
from surveys import reports as survey_reports
from surveys.catalogue import answer_fields
from surveys.facts import survey_facts
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion
from surveys.schemas import SurveyDefinitionSchema
from surveys.service import publish_definition


def _load_surveys(session: Session, items: list[dict[str, Any]]) -> int:
    now = utcnow()
    for item in items:
        publish_definition(session, SurveyDefinitionSchema().dump(item), now=now)
    return len(items)


def _dump_surveys(session: Session) -> list[dict[str, Any]]:
    """Each survey's latest published definition (what the playbook loaded or the admin published)."""
    items = []
    for survey in session.scalars(select(Survey).order_by(Survey.id)):
        published = [v for v in survey.versions if v.published_at is not None]
        if published:
            items.append(dict(max(published, key=lambda v: v.version).definition))
    return items


def _accounts_surveyed(session: Session) -> reporting.SegmentCounts:
    rows = session.execute(
        select(Account.segment, func.count(distinct(Response.account_id)))
        .join(Response, Response.account_id == Account.id)
        .where(Response.status == ResponseStatus.COMPLETED)
        .group_by(Account.segment)
    )
    return {segment: int(n) for segment, n in rows}


def connect() -> None:
    register_section(Section("surveys", 30, SurveyDefinitionSchema, _load_surveys, _dump_surveys))
    register_answers_provider(survey_facts)
    register_field_provider(answer_fields)
    reporting.register_metric("accounts_surveyed", "accounts surveyed", 10, _accounts_surveyed)
    survey_reports.connect()
    audit.register(Survey)
    audit.register(SurveyVersion)
    privacy.register_provider(survey_privacy.PROVIDER)
