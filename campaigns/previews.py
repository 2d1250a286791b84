"""The survey a template preview shows: the one a campaign step sending the template names, built
the way the send builds it (`surveys.links.one_click_question`), else the sample survey."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.models import Campaign, Step, StepKind
from content.emails import SAMPLE_SURVEY, SurveyQuestion
from engine.errors import NotFound, ValidationFailed
from surveys.links import one_click_question


def preview_survey(
    session: Session, template_key: str, survey_key: str | None = None
) -> tuple[SurveyQuestion, str | None]:
    """The survey question to preview `template_key` with, and its survey's key (None: the sample).

    `survey_key` (the builder step's own survey) is used as asked, so a survey an email cannot offer
    raises ValidationFailed or NotFound, as publishing the step would. Without it, the first live
    email step (by campaign key) that sends this template with a survey answers; one whose survey an
    email can no longer offer is passed over: the preview is about the template, and the campaign
    page says what is wrong with the step."""
    if survey_key:
        return one_click_question(session, survey_key), survey_key
    named = session.scalars(
        select(Step.config["survey"].as_string())
        .join(Campaign, (Campaign.id == Step.campaign_id) & (Campaign.version == Step.version))
        .where(
            Step.kind == StepKind.EMAIL,
            Step.config["template"].as_string() == template_key,
            Step.config["survey"].as_string().is_not(None),
        )
        .order_by(Campaign.key, Step.position)
    )
    for key in dict.fromkeys(named):
        try:
            return one_click_question(session, key), key
        except (NotFound, ValidationFailed):
            continue
    return SAMPLE_SURVEY, None
