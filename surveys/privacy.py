"""What surveys hold about a contact: their responses (and anonymous ones left with their email),
and the surveys they dismissed.

Erasing keeps each response's structured answers (outcome and objective picks, key-result numbers,
scores, choices: the account's plan was built from them) detached from the person, and drops the
free-text answers, which may say anything about anyone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.privacy import PrivacyProvider, iso
from surveys.models import Response, SurveyDismissal

FREE_TEXT = "text"


def _responses(session: Session, contact: Contact) -> list[Response]:
    email = contact.email.strip().lower()
    return list(
        session.scalars(
            select(Response)
            .where(or_(Response.contact_id == contact.id, func.lower(Response.respondent_email) == email))
            .order_by(Response.id)
        )
    )


def export_survey_data(session: Session, contact: Contact) -> dict[str, Any]:
    dismissals = session.scalars(select(SurveyDismissal).where(SurveyDismissal.contact_id == contact.id))
    return {
        "responses": [
            {
                "id": r.id,
                "survey": r.version.survey.key,
                "survey_version": r.version.version,
                "channel": r.channel.value,
                "status": r.status.value,
                "answers": r.answers,
                "respondent_email": r.respondent_email,
                "created_at": iso(r.created_at),
                "completed_at": iso(r.completed_at),
            }
            for r in _responses(session, contact)
        ],
        "dismissals": [{"survey_id": d.survey_id, "dismissed_at": iso(d.dismissed_at)} for d in dismissals],
    }


def _free_text_keys(response: Response) -> set[str]:
    return {str(q.get("key")) for q in response.version.questions if q.get("kind") == FREE_TEXT}


def erase_survey_data(session: Session, contact: Contact, _now: dt.datetime) -> dict[str, int]:
    responses = _responses(session, contact)
    texts = 0
    for response in responses:
        drop = _free_text_keys(response) & set(response.answers)
        texts += len(drop)
        response.answers = {k: v for k, v in response.answers.items() if k not in drop}
        response.contact_id = None
        response.respondent_email = None
    dismissed = session.execute(delete(SurveyDismissal).where(SurveyDismissal.contact_id == contact.id))
    return {
        "responses_anonymised": len(responses),
        "free_text_answers_removed": texts,
        "dismissals_removed": int(getattr(dismissed, "rowcount", 0) or 0),
    }


PROVIDER = PrivacyProvider("surveys", export_survey_data, erase_survey_data)
