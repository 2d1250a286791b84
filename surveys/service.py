"""Survey operations: publish versions, accept responses (idempotent), hand completed ones to rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine import signals
from engine.accounts import Account, Contact, ContactRole, get_account, upsert_contact
from engine.errors import Conflict, NorthstarError, NotFound, ValidationFailed
from surveys.answers import objective_choices, validate_answers
from surveys.models import Channel, Response, ResponseStatus, Survey, SurveyVersion


@dataclass(frozen=True)
class ContactRef:
    email: str
    name: str = ""


@dataclass(frozen=True)
class ResponseIn:
    client_response_id: str
    account: str | None
    answers: dict[str, Any]
    channel: str = "api"
    contact: ContactRef | None = None
    version: int | None = None
    complete: bool = True


@dataclass(frozen=True)
class SubmitResult:
    response: Response
    created: bool
    replayed: bool


def get_survey(session: Session, key: str) -> Survey:
    survey = session.scalar(select(Survey).where(Survey.key == key).options(selectinload(Survey.versions)))
    if survey is None:
        raise NotFound(f"no survey {key!r}")
    return survey


def published_version(survey: Survey, version: int | None) -> SurveyVersion:
    if version is None:
        latest = survey.latest_published
        if latest is None:
            raise NotFound(f"survey {survey.key!r} has no published version")
        return latest
    for candidate in survey.versions:
        if candidate.version == version and candidate.published_at is not None:
            return candidate
    raise NotFound(f"survey {survey.key!r} has no published version {version}")


def publish_definition(session: Session, definition: dict[str, Any], *, now: dt.datetime) -> SurveyVersion:
    """Publish `definition` as the survey's next version, unless it equals the latest one."""
    survey = session.scalar(select(Survey).where(Survey.key == definition["key"]))
    if survey is None:
        survey = Survey(key=definition["key"], title=definition["title"])
        session.add(survey)
    survey.title = definition["title"]
    survey.anonymous = bool(definition.get("anonymous", False))
    survey.redisplay_days = int(definition.get("redisplay_days", 30))
    latest = survey.latest_published
    if latest is not None and latest.definition == definition:
        return latest
    number = max((v.version for v in survey.versions), default=0) + 1
    version = SurveyVersion(version=number, definition=definition, published_at=now)
    survey.versions.append(version)
    session.flush()
    return version


@dataclass(frozen=True)
class Respondent:
    """Who answers: a known contact of an account, or (anonymous surveys only) just an email."""

    account: Account | None
    contact: Contact | None
    email: str | None = None


class RespondentRequired(NorthstarError):
    status = 401
    title = "Respondent not identified"


def respondent_for_account(
    session: Session, account_external_id: str, contact: ContactRef | None
) -> Respondent:
    """The trusted server-side path (API token): the caller names the account and the contact."""
    account = get_account(session, account_external_id)
    found = None
    if contact is not None:
        found = _known_contact(account, contact.email) or upsert_contact(
            session, account, contact.email, name=contact.name, role=ContactRole.OTHER
        )
    return Respondent(account, found, found.email if found else None)


def submit_response(
    session: Session,
    survey_key: str,
    payload: ResponseIn,
    *,
    now: dt.datetime,
    respondent: Respondent | None = None,
) -> SubmitResult:
    """Store a response. Same `client_response_id` again: a partial one is updated, a completed
    one is returned unchanged (a replay). Completing it hands the answers to the rules.

    `respondent` comes from how the caller was identified (widget JWT, signed link); without one,
    `payload.account`/`payload.contact` name the respondent (API-token callers only)."""
    survey = get_survey(session, survey_key)
    existing = session.scalar(
        select(Response).where(Response.client_response_id == payload.client_response_id)
    )
    if existing is not None:
        if existing.version.survey_id != survey.id:
            raise Conflict("client_response_id is already used by another survey's response")
        if existing.status == ResponseStatus.COMPLETED:
            return SubmitResult(existing, created=False, replayed=True)
    version = existing.version if existing else published_version(survey, payload.version)
    if respondent is None:
        if payload.account is None:
            raise ValidationFailed({"account": "name the account this response belongs to"})
        respondent = respondent_for_account(session, payload.account, payload.contact)
    if respondent.account is None and not (survey.anonymous and respondent.email):
        raise RespondentRequired(f"survey {survey.key!r} needs an identified respondent")
    if existing is not None and (existing.account_id, existing.contact_id) != (
        respondent.account.id if respondent.account else None,
        respondent.contact.id if respondent.contact else existing.contact_id,
    ):
        raise Conflict("client_response_id belongs to another respondent's response")
    answers = validate_answers(
        session, version.questions, payload.answers, complete=payload.complete, today=now.date()
    )
    response = existing or Response(
        survey_version_id=version.id, client_response_id=payload.client_response_id, created_at=now
    )
    response.version = version
    response.account = respondent.account
    response.contact = respondent.contact or response.contact
    response.respondent_email = respondent.email
    response.channel = Channel(payload.channel)
    response.answers = answers
    response.status = ResponseStatus.COMPLETED if payload.complete else ResponseStatus.PARTIAL
    if payload.complete:
        response.completed_at = now
    session.add(response)
    session.flush()
    if payload.complete and respondent.account is not None:
        signals.response_completed.send(
            "surveys",
            session=session,
            response_id=response.id,
            account_id=respondent.account.id,
            answers={survey.key: answers},
            choices=objective_choices(version.questions, answers),
            channel=payload.channel,
            now=now,
        )
    return SubmitResult(response, created=existing is None, replayed=False)


def _known_contact(account: Account, email: str) -> Contact | None:
    email = email.strip().lower()
    return next((c for c in account.contacts if c.email == email), None)
