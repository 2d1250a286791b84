"""Signed survey links: one-click answers in emails, the hosted page's respondent link, its form token.

Every token is an itsdangerous `URLSafeTimedSerializer` over the *list* of secret keys
(`NORTHSTAR_OLD_SECRET_KEYS` then `NORTHSTAR_SECRET_KEY`): new tokens are signed with the current
key and tokens signed with an old key still verify while it stays in the list (the grace period of
a key rotation). Each purpose has its own salt, so one kind of token never opens another door.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.config import Settings
from engine.errors import NorthstarError, NotFound, ValidationFailed
from engine.library import Outcome
from surveys.models import SurveyVersion
from surveys.service import Respondent, get_survey, published_version

ANSWER_SALT = "northstar.survey-answer"
RESPONDENT_SALT = "northstar.survey-respondent"
FORM_SALT = "northstar.survey-form"
LINK_MAX_AGE = dt.timedelta(days=30)
# A form is signed when the page is shown; a day covers a tab left open overnight.
FORM_MAX_AGE = dt.timedelta(days=1)
ONE_CLICK_KINDS = ("outcome_pick", "single_choice", "multi_choice", "nps", "csat")
# Option values travel inside email substitution tokens (%ns:survey.option.<value>%).
ONE_CLICK_VALUE = re.compile(r"^[A-Za-z0-9_\-]{1,80}$")


class LinkExpired(NorthstarError):
    status = 410
    title = "This link has expired"


class LinkInvalid(NotFound):
    title = "This link is not valid"


class FormExpired(NorthstarError):
    """The page was open longer than FORM_MAX_AGE: show it again with a fresh form token."""

    status = 422
    title = "This page was open for a long time"


class FormRejected(NorthstarError):
    status = 400
    title = "This form could not be verified"


def signing_keys(settings: Settings) -> tuple[str, ...]:
    """Oldest first: itsdangerous signs with the last key and accepts any of them."""
    return (*reversed(settings.old_secret_keys), settings.secret_key)


@lru_cache(maxsize=32)
def _serializer(keys: tuple[str, ...], salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(list(keys), salt=salt)


def _dumps(settings: Settings, salt: str, payload: Any) -> str:
    return str(_serializer(signing_keys(settings), salt).dumps(payload))


def _loads(settings: Settings, salt: str, token: str, max_age: dt.timedelta, what: str) -> Any:
    try:
        return _serializer(signing_keys(settings), salt).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired:
        raise LinkExpired(
            f"this {what} is more than {max_age.days} days old; reply to the email you received "
            "and we will send you a new one"
        ) from None
    except BadData:
        raise LinkInvalid(f"this {what} is not valid") from None


# --- one-click answers in emails ---------------------------------------------------------------


@dataclass(frozen=True)
class OneClickOption:
    value: str
    label: str


@dataclass(frozen=True)
class OneClickQuestion:
    """A survey's first question as an email offers it: one signed link per option."""

    version: SurveyVersion
    survey_title: str
    question_key: str
    question_title: str
    options: tuple[OneClickOption, ...]


def one_click_options(session: Session, question: dict[str, Any]) -> tuple[OneClickOption, ...]:
    kind = question["kind"]
    if kind == "outcome_pick":
        outcomes = session.scalars(select(Outcome).order_by(Outcome.title))
        return tuple(OneClickOption(o.key, o.title) for o in outcomes)
    if kind in ("single_choice", "multi_choice"):
        return tuple(OneClickOption(str(o["value"]), str(o["label"])) for o in question["options"])
    if kind in ("nps", "csat"):
        low, high = (0, 10) if kind == "nps" else (1, 5)
        return tuple(OneClickOption(str(n), str(n)) for n in range(low, high + 1))
    return ()


def one_click_question(session: Session, survey_key: str) -> OneClickQuestion:
    """The published survey's first question, if an email can offer it as one link per option."""
    survey = get_survey(session, survey_key)
    version = published_version(survey, None)
    questions = version.questions
    first = questions[0] if questions else None
    if first is None or first["kind"] not in ONE_CLICK_KINDS:
        kinds = ", ".join(ONE_CLICK_KINDS)
        raise ValidationFailed(
            {
                "survey": f"survey {survey_key!r} cannot be answered from an email: its first question "
                f"must be one of {kinds}"
            }
        )
    options = one_click_options(session, first)
    bad = [o.value for o in options if not ONE_CLICK_VALUE.match(o.value)]
    if bad or not options:
        raise ValidationFailed(
            {
                "survey": f"survey {survey_key!r}: option value {bad[0] if bad else ''!r} cannot be an email "
                "link (use letters, digits, '_' or '-')"
            }
        )
    return OneClickQuestion(
        version=version,
        survey_title=str(version.definition.get("title", survey.title)),
        question_key=str(first["key"]),
        question_title=str(first["title"]),
        options=options,
    )


@dataclass(frozen=True)
class AnswerClick:
    """A verified click on an answer link: who answered which question of which version, and how."""

    contact: Contact
    version: SurveyVersion
    question: dict[str, Any]
    option_value: str

    @property
    def survey_key(self) -> str:
        return self.version.survey.key

    @property
    def question_key(self) -> str:
        return str(self.question["key"])

    def answer(self) -> Any:
        """The clicked option as the question's answer value (validation is the service's job)."""
        kind = self.question["kind"]
        if kind in ("outcome_pick", "multi_choice"):
            return [self.option_value]
        if kind in ("nps", "csat"):
            return int(self.option_value)
        return self.option_value


def answer_token(
    settings: Settings, contact: Contact, version: SurveyVersion, question_key: str, option_value: str
) -> str:
    return _dumps(settings, ANSWER_SALT, [contact.id, version.id, question_key, option_value])


def answer_link(
    settings: Settings, contact: Contact, version: SurveyVersion, question_key: str, option_value: str
) -> str:
    token = answer_token(settings, contact, version, question_key, option_value)
    return f"{settings.public_url}/s/{version.survey.key}/a/{token}"


def read_answer_token(
    session: Session, settings: Settings, token: str, *, max_age: dt.timedelta = LINK_MAX_AGE
) -> AnswerClick:
    """Verify an answer link; expired → LinkExpired (410), forged or stale → LinkInvalid (404)."""
    payload = _loads(settings, ANSWER_SALT, token, max_age, "answer link")
    if not (
        isinstance(payload, list)
        and len(payload) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in payload[:2])
        and all(isinstance(v, str) for v in payload[2:])
    ):
        raise LinkInvalid("this answer link is not valid")
    contact_id, version_id, question_key, option_value = payload
    contact = session.get(Contact, contact_id)
    version = session.get(SurveyVersion, version_id)
    question = next((q for q in version.questions if q["key"] == question_key), None) if version else None
    if contact is None or version is None or question is None:
        raise LinkInvalid("this answer link is not valid any more")
    if option_value not in {o.value for o in one_click_options(session, question)}:
        raise LinkInvalid("this answer is no longer offered")
    return AnswerClick(contact, version, question, option_value)


# --- the hosted page's respondent link ---------------------------------------------------------


@dataclass(frozen=True)
class LinkRespondent:
    """Who a hosted-page link belongs to: a known contact, or an anonymous respondent's email."""

    survey_key: str
    contact: Contact | None
    email: str | None = None
    nonce: str | None = None

    @property
    def ref(self) -> str:
        """What a form token is bound to."""
        return f"c{self.contact.id}" if self.contact else f"a{self.nonce}"

    def respondent(self) -> Respondent:
        if self.contact is not None:
            return Respondent(self.contact.account, self.contact, self.contact.email)
        return Respondent(None, None, self.email)

    def response_id(self, version: SurveyVersion) -> str:
        """The stable client_response_id every step (and the email click) saves into."""
        if self.contact is not None:
            return f"hosted-{self.contact.id}-{version.id}"
        return f"hosted-anon-{self.nonce}"


def respondent_token(settings: Settings, survey_key: str, contact: Contact) -> str:
    return _dumps(settings, RESPONDENT_SALT, [survey_key, contact.id])


def anonymous_respondent_token(settings: Settings, survey_key: str, email: str, nonce: str) -> str:
    return _dumps(settings, RESPONDENT_SALT, [survey_key, None, email, nonce])


def survey_link(settings: Settings, contact: Contact, survey_key: str) -> str:
    return f"{settings.public_url}/s/{survey_key}?t={respondent_token(settings, survey_key, contact)}"


def read_respondent_token(
    session: Session, settings: Settings, survey_key: str, token: str, *, max_age: dt.timedelta = LINK_MAX_AGE
) -> LinkRespondent:
    payload = _loads(settings, RESPONDENT_SALT, token, max_age, "survey link")
    if not isinstance(payload, list) or len(payload) not in (2, 4) or payload[0] != survey_key:
        raise LinkInvalid("this survey link is not valid")
    if len(payload) == 2:
        contact = session.get(Contact, payload[1]) if isinstance(payload[1], int) else None
        if contact is None:
            raise LinkInvalid("this survey link is not valid any more")
        return LinkRespondent(survey_key, contact)
    _key, _none, email, nonce = payload
    if not (isinstance(email, str) and isinstance(nonce, str)):
        raise LinkInvalid("this survey link is not valid")
    return LinkRespondent(survey_key, None, email, nonce)


# --- form tokens: a POST must come from a page we rendered for this respondent ------------------


def form_token(settings: Settings, survey_key: str, ref: str) -> str:
    return _dumps(settings, FORM_SALT, [survey_key, ref])


def check_form_token(
    settings: Settings, token: str | None, survey_key: str, ref: str, *, max_age: dt.timedelta = FORM_MAX_AGE
) -> None:
    if not token:
        raise FormRejected("the form was sent without its token; open the page again and resubmit")
    try:
        payload = _loads(settings, FORM_SALT, token, max_age, "form")
    except LinkExpired:
        raise FormExpired("please check your answers and send them again") from None
    except LinkInvalid:
        payload = None
    if payload != [survey_key, ref]:
        raise FormRejected("the form does not belong to this survey link; open the page again and resubmit")
