"""Survey operations: publish versions, accept responses (idempotent), hand completed ones to rules."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import Insert, Select, UnaryExpression, and_, bindparam, insert, inspect, select
from sqlalchemy.orm import InstanceState, Session, make_transient_to_detached, selectinload
from sqlalchemy.orm.util import identity_key

from engine import signals
from engine.accounts import Account, Contact, ContactRole, get_account, upsert_contact
from engine.errors import Conflict, NorthstarError, NotFound, ValidationFailed
from engine.reports.summaries import wake_refresh
from surveys.answers import objective_choices, validate_answers
from surveys.cache import VersionSpec, spec_of, version_spec
from surveys.identity import Identity, adopt, contact_match, identity_params, unsaved_contact
from surveys.models import Channel, Response, ResponseStatus, Survey, SurveyVersion
from surveys.rules_queue import queue_rules, wake_rules


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
    version: int  # the survey version answered


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


# What a submission reads of its identity's contact (surveys.identity.adopt reads and updates these).
_CONTACT_READ = ("id", "account_id", "external_id", "email", "name")


@dataclass(frozen=True)
class Target:
    """What a submission needs of its survey, read in one statement (see `submission_target`)."""

    survey_id: int
    key: str
    anonymous: bool
    version: VersionSpec | None
    existing_id: int | None
    # With an identity: its account and contact as far as they exist, read in the same statement.
    account: Account | None = None
    contact: Contact | None = None


def _target_statement(pinned: bool, identity: bool | None) -> Select[Any]:
    """The target's statement: the latest published version or (`pinned`) the one named; with
    `identity` not None also the identity's account and contact (`identity` = match it by email
    too), outer-joined so that one round trip reads all a widget submission needs."""
    version_match = [SurveyVersion.survey_id == Survey.id, SurveyVersion.published_at.is_not(None)]
    if pinned:
        version_match.append(SurveyVersion.version == bindparam("version"))
    existing = select(Response.id).where(Response.client_response_id == bindparam("client_response_id"))
    statement = (
        select(
            Survey.id,
            Survey.anonymous,
            SurveyVersion.id,
            SurveyVersion.published_at,
            existing.scalar_subquery(),
        )
        .select_from(Survey)
        .outerjoin(SurveyVersion, and_(*version_match))
        .where(Survey.key == bindparam("key"))
    )
    order: list[UnaryExpression[Any]] = [SurveyVersion.version.desc().nulls_last()]
    if identity is not None:
        on_contact, by_external_id = contact_match(identity)
        statement = (
            statement.add_columns(Account.id, *(getattr(Contact, name) for name in _CONTACT_READ))
            .outerjoin(Account, Account.external_id == bindparam("account"))
            .outerjoin(Contact, on_contact)
        )
        order.append(by_external_id.desc().nulls_last())
    return statement.order_by(*order).limit(1)


# Built once per shape (latest or pinned version; no identity, or one with or without an email
# claim): constructing a statement costs more than running it.
_TARGET = {
    (pinned, identity): _target_statement(pinned, identity)
    for pinned in (False, True)
    for identity in (None, False, True)
}


def submission_target(
    session: Session,
    survey_key: str,
    version: int | None,
    client_response_id: str,
    identity: Identity | None = None,
) -> Target:
    """The survey, the published version to answer (the latest, or `version`) and the id of a
    response already stored under `client_response_id`, in one query; the version's definition
    comes from the per-process cache (surveys.cache), keyed by what this query read. With an
    `identity`, the same query also finds its account and contact (surveys.identity)."""
    params: dict[str, Any] = {"key": survey_key, "client_response_id": client_response_id}
    if version is not None:
        params["version"] = version
    if identity is not None:
        params.update(identity_params(identity))
    shape = (version is not None, bool(identity.email) if identity is not None else None)
    # Plain rows through the connection (no ORM statement handling, no autoflush: nothing pending
    # in the session, such as a respondent's new contact, changes these rows).
    row = session.connection().execute(_TARGET[shape], params).first()
    if row is None:
        raise NotFound(f"no survey {survey_key!r}")
    survey_id, anonymous, version_id, published_at, existing_id = row[:5]
    spec = None
    if version_id is not None and published_at is not None:
        with session.no_autoflush:
            spec = version_spec(session, version_id, published_at)
    account = contact = None
    if identity is not None and row[5] is not None:
        account = _loaded(session, Account, {"id": row[5]})
        if row[6] is not None:
            contact = _loaded(session, Contact, dict(zip(_CONTACT_READ, row[6:], strict=True)))
    return Target(survey_id, survey_key, bool(anonymous), spec, existing_id, account, contact)


_T = TypeVar("_T", Account, Contact)


def _loaded(session: Session, cls: type[_T], columns: dict[str, Any]) -> _T:
    """The session's object for a row read as plain columns: the one it holds already, or one made
    from `columns` and added as if loaded (its other attributes load if something reads them)."""
    found = session.identity_map.get(identity_key(cls, columns["id"]))
    if isinstance(found, cls):
        return found
    row = cls(**columns)
    _persistent(session, row)
    return row


def submit_response(
    session: Session,
    survey_key: str,
    payload: ResponseIn,
    *,
    now: dt.datetime,
    respondent: Respondent | None = None,
    identity: Identity | None = None,
    defer_rules: bool = False,
) -> SubmitResult:
    """Store a response. Same `client_response_id` again: a partial one is updated, a completed
    one is returned unchanged (a replay). Completing it hands the answers to the rules.

    `respondent` comes from how the caller was identified (a signed link, a hosted page's visit);
    a verified widget `identity` (surveys.identity) is resolved here, its account and contact read
    in the same statement as the survey and created on first sight. Without either,
    `payload.account`/`payload.contact` name the respondent (API-token callers only).

    `defer_rules` (the widget and API path) leaves the rules, the plan and the enrolments of a
    completed response to the `rules` job (surveys.rules_queue, ADR 0009) instead of running them
    in this transaction."""
    target = submission_target(session, survey_key, payload.version, payload.client_response_id, identity)
    new_contact: Contact | None = None  # a contact new to us, stored with the response (below)
    if identity is not None:
        if target.account is not None and target.contact is None and target.existing_id is None:
            new_contact = unsaved_contact(identity, target.account)
            respondent = Respondent(target.account, new_contact, new_contact.email)
        else:
            account, contact = adopt(session, identity, target.account, target.contact)
            respondent = Respondent(account, contact, contact.email)
    existing = session.get(Response, target.existing_id) if target.existing_id is not None else None
    if existing is not None:
        if existing.version.survey_id != target.survey_id:
            raise Conflict("client_response_id is already used by another survey's response")
        if existing.status == ResponseStatus.COMPLETED:
            return SubmitResult(existing, created=False, replayed=True, version=existing.version.version)
    if existing is not None:
        version = spec_of(session, existing.version)
    elif target.version is not None:
        version = target.version
    elif payload.version is None:
        raise NotFound(f"survey {survey_key!r} has no published version")
    else:
        raise NotFound(f"survey {survey_key!r} has no published version {payload.version}")
    if respondent is None:
        if payload.account is None:
            raise ValidationFailed({"account": "name the account this response belongs to"})
        respondent = respondent_for_account(session, payload.account, payload.contact)
    if respondent.account is None and not (target.anonymous and respondent.email):
        raise RespondentRequired(f"survey {survey_key!r} needs an identified respondent")
    if existing is not None and (existing.account_id, existing.contact_id) != (
        respondent.account.id if respondent.account else None,
        respondent.contact.id if respondent.contact else existing.contact_id,
    ):
        raise Conflict("client_response_id belongs to another respondent's response")
    answers = validate_answers(
        session, version.questions, payload.answers, complete=payload.complete, today=now.date()
    )
    complete = payload.complete
    queued = complete and respondent.account is not None and defer_rules
    if existing is None and _storable_directly(respondent, new_contact):
        response = _insert_response(
            session,
            new_contact,
            survey_version_id=version.id,
            account_id=respondent.account.id if respondent.account else None,
            contact_id=respondent.contact.id if respondent.contact else None,
            respondent_email=respondent.email,
            client_response_id=payload.client_response_id,
            channel=Channel(payload.channel),
            status=ResponseStatus.COMPLETED if complete else ResponseStatus.PARTIAL,
            answers=answers,
            created_at=now,
            completed_at=now if complete else None,
            rules_queued_at=now if queued else None,
        )
        if queued:
            wake_rules(session)
    else:
        response = existing or Response(client_response_id=payload.client_response_id, created_at=now)
        response.survey_version_id = version.id
        response.account = respondent.account
        response.contact = respondent.contact or response.contact
        response.respondent_email = respondent.email
        response.channel = Channel(payload.channel)
        response.answers = answers
        response.status = ResponseStatus.COMPLETED if complete else ResponseStatus.PARTIAL
        if complete:
            response.completed_at = now
        session.add(response)
        if queued:
            queue_rules(session, response, now=now)
        session.flush()
    if payload.complete and respondent.account is not None and not defer_rules:
        signals.response_completed.send(
            "surveys",
            session=session,
            response_id=response.id,
            account_id=respondent.account.id,
            answers={survey_key: answers},
            choices=objective_choices(version.questions, answers),
            channel=payload.channel,
            now=now,
        )
    return SubmitResult(response, created=existing is None, replayed=False, version=version.version)


def _storable_directly(respondent: Respondent, new_contact: Contact | None) -> bool:
    """Whether a new response can skip the unit of work: its account and contact (if any) are
    rows already, or the contact is one `_insert_response` stores in the same statement."""
    rows: list[Account | Contact | None] = [respondent.account, respondent.contact]
    return all(row is None or row is new_contact or _state(row).persistent for row in rows)


def _state(row: Account | Contact) -> InstanceState[Any]:
    return inspect(row)


_RESPONSE_COLUMNS = (
    "survey_version_id",
    "account_id",
    "contact_id",
    "respondent_email",
    "client_response_id",
    "channel",
    "status",
    "answers",
    "created_at",
    "completed_at",
    "rules_queued_at",
)
_CONTACT_COLUMNS = ("account_id", "external_id", "email", "name", "role", "locale", "unsubscribed_categories")


def _bound(table: Any, names: tuple[str, ...], prefix: str = "") -> dict[str, Any]:
    return {name: bindparam(prefix + name, type_=table.c[name].type) for name in names}


def _insert_statements() -> tuple[Insert, Insert, Insert]:
    """The response INSERT; the contact INSERT (SQLite); both in one (PostgreSQL, a CTE). Built once,
    with bound parameters: building them per request cost as much CPU as the unit of work did."""
    responses, contacts = Response.__table__, Contact.__table__
    returning = (Response.id, Response.contact_id)
    contact_values = {**_bound(contacts, _CONTACT_COLUMNS, "c_"), "created_at": bindparam("created_at")}
    contact = insert(Contact).values(contact_values).returning(Contact.id)
    cte = contact.cte("new_contact")
    with_contact = {**_bound(responses, _RESPONSE_COLUMNS), "contact_id": select(cte.c.id).scalar_subquery()}
    return (
        insert(Response).values(_bound(responses, _RESPONSE_COLUMNS)).returning(*returning),
        contact,
        insert(Response).values(with_contact).add_cte(cte).returning(*returning),
    )


_INSERT_RESPONSE, _INSERT_CONTACT, _INSERT_BOTH = _insert_statements()


def _insert_response(session: Session, new_contact: Contact | None, **values: Any) -> Response:
    """INSERT a new response (and `new_contact` with it, through a data-modifying CTE) in one
    statement, and give the session the rows as persistent objects.

    The hot path of every channel: the ORM's unit of work spent more CPU on these one or two rows
    than the rest of a widget submission's storage (bench/RESULTS.md, 2026-11-29 late). Reports
    watch `responses`, so their refresh is woken here as the ORM listeners would."""
    connection = session.connection()
    statement, params = _INSERT_RESPONSE, values
    if new_contact is not None:
        new_contact.created_at = values["created_at"]
        new_contact.unsubscribed_categories = []
        params = {**values, **{f"c_{name}": getattr(new_contact, name) for name in _CONTACT_COLUMNS}}
        if connection.dialect.name == "postgresql":
            statement = _INSERT_BOTH
        else:  # SQLite (the demo) has no data-modifying CTEs: a statement each
            params["contact_id"] = connection.execute(_INSERT_CONTACT, params).scalar_one()
    response_id, contact_id = connection.execute(statement, params).one()
    if new_contact is not None:
        new_contact.id = cast(int, contact_id)
        _persistent(session, new_contact)
    response = Response(id=response_id, **{**values, "contact_id": contact_id})
    _persistent(session, response)
    wake_refresh(session)
    return response


def _persistent(session: Session, row: Any) -> None:
    """Put a row this transaction INSERTed itself into `session` as if the session had loaded it."""
    make_transient_to_detached(row)
    session.add(row)


def _known_contact(account: Account, email: str) -> Contact | None:
    email = email.strip().lower()
    return next((c for c in account.contacts if c.email == email), None)
