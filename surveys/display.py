"""What a survey looks like to a respondent: definition, library, UI strings, resume and display rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.accounts import Contact
from engine.library import Objective, Outcome
from surveys.models import Response, ResponseStatus, Survey, SurveyDismissal, SurveyVersion

UI_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "next": "Next",
        "back": "Back",
        "submit": "Submit",
        "close": "Not now",
        "thanks": "Thank you! Your success plan is ready.",
        "preparing": "Thank you! We are putting your success plan together.",
        "received": "Thank you! We have your answers.",
        "open_plan": "Open your plan",
        "baseline": "Today",
        "target": "Target",
        "due_date": "By",
        "step": "Step {n} of {total}",
        "email": "Your work email",
        "required": "Please answer this question.",
        "choose_at_most": "Choose at most {max}.",
        "error": "Something went wrong. Please try again.",
        "nps_low": "Not likely",
        "nps_high": "Very likely",
    },
    "de": {
        "next": "Weiter",
        "back": "Zurück",
        "submit": "Absenden",
        "close": "Später",
        "thanks": "Danke! Ihr Erfolgsplan ist fertig.",
        "preparing": "Danke! Wir stellen Ihren Erfolgsplan zusammen.",
        "received": "Danke! Wir haben Ihre Antworten.",
        "open_plan": "Plan öffnen",
        "baseline": "Heute",
        "target": "Ziel",
        "due_date": "Bis",
        "step": "Schritt {n} von {total}",
        "email": "Ihre geschäftliche E-Mail",
        "required": "Bitte beantworten Sie diese Frage.",
        "choose_at_most": "Wählen Sie höchstens {max}.",
        "error": "Etwas ist schiefgelaufen. Bitte versuchen Sie es erneut.",
        "nps_low": "Unwahrscheinlich",
        "nps_high": "Sehr wahrscheinlich",
    },
}


def ui_strings(definition: dict[str, Any], locale: str) -> dict[str, str]:
    """English, overlaid by the built-in locale, overlaid by the survey's own strings for it."""
    language = (locale or "en").split("-")[0].lower()
    strings = dict(UI_STRINGS["en"])
    strings.update(UI_STRINGS.get(language, {}))
    strings.update((definition.get("strings") or {}).get(language, {}))
    return strings


def library(session: Session) -> dict[str, list[dict[str, Any]]]:
    outcomes = session.scalars(select(Outcome).order_by(Outcome.title))
    objectives = session.scalars(select(Objective).order_by(Objective.title))
    return {
        "outcomes": [o.item() for o in outcomes],
        "objectives": [o.item() for o in objectives],
    }


def presentation(session: Session, survey: Survey, version: SurveyVersion, locale: str) -> dict[str, Any]:
    definition = version.definition
    return {
        "survey": survey.key,
        "version": version.version,
        "title": definition.get("title", survey.title),
        "intro": definition.get("intro", ""),
        "anonymous": survey.anonymous,
        "questions": version.questions,
        "library": library(session),
        "strings": ui_strings(definition, locale),
    }


def respondent_state(
    session: Session, survey: Survey, contact: Contact | None, *, now: dt.datetime
) -> dict[str, Any]:
    """Resume a half-answered response, and the display rule: once per contact, pause after dismiss."""
    if contact is None:
        return {"completed": False, "partial": None, "dismissed_until": None, "show": True}
    responses = session.scalars(
        select(Response)
        .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
        .where(SurveyVersion.survey_id == survey.id, Response.contact_id == contact.id)
        .order_by(Response.id.desc())
    ).all()
    completed = any(r.status == ResponseStatus.COMPLETED for r in responses)
    partial = next((r for r in responses if r.status == ResponseStatus.PARTIAL), None)
    dismissal = session.scalar(
        select(SurveyDismissal).where(
            SurveyDismissal.survey_id == survey.id, SurveyDismissal.contact_id == contact.id
        )
    )
    until = dismissal.dismissed_at + dt.timedelta(days=survey.redisplay_days) if dismissal else None
    return {
        "completed": completed,
        "partial": (
            {"client_response_id": partial.client_response_id, "answers": partial.answers}
            if partial and not completed
            else None
        ),
        "dismissed_until": until.isoformat() if until and until > now else None,
        "show": not completed and (until is None or until <= now),
    }


def dismiss(session: Session, survey: Survey, contact: Contact, *, now: dt.datetime) -> dt.datetime:
    dismissal = session.scalar(
        select(SurveyDismissal).where(
            SurveyDismissal.survey_id == survey.id, SurveyDismissal.contact_id == contact.id
        )
    )
    if dismissal is None:
        dismissal = SurveyDismissal(survey_id=survey.id, contact_id=contact.id)
        session.add(dismissal)
    dismissal.dismissed_at = now
    session.flush()
    return now + dt.timedelta(days=survey.redisplay_days)
