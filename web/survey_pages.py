"""The hosted survey page and the email's one-click answers; plain HTML forms, no JavaScript needed.

`/s/<key>?t=<respondent token>` shows the survey a page at a time (outcomes → objectives → key
results → the rest); every page POSTs, is saved as a partial response and redirects to the next
page. `/s/<key>/a/<answer token>` is the link behind each option in an email: GET only shows a
confirmation (mail scanners follow links and must not answer for the customer), POST records.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, render_template, request, url_for
from flask import Response as FlaskResponse
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.utils import redirect

from engine.errors import NotFound, ValidationFailed
from engine.library import objectives_by_key
from engine.plans.service import active_plan
from engine.plans.sharing import plan_token
from surveys import hosted
from surveys.answers import validate_answers
from surveys.display import library, ui_strings
from surveys.hosted import Page
from surveys.links import (
    AnswerClick,
    FormExpired,
    LinkInvalid,
    LinkRespondent,
    anonymous_respondent_token,
    check_form_token,
    form_token,
    read_answer_token,
    read_respondent_token,
    respondent_token,
)
from surveys.models import Channel, Response, ResponseStatus, Survey, SurveyVersion
from surveys.plan_effect import PlanEffect, plan_effect
from surveys.reports import record_reach
from surveys.service import ResponseIn, get_survey, published_version, submit_response
from web.context import db_session, now, settings, unit_of_work
from web.ratelimit import limiter
from web.survey_form import answers_as_form, clean_text, field_errors, parse_page
from web.survey_views import question_view

bp = Blueprint("survey_pages", __name__)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SURVEY_KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")  # as surveys.schemas allows
ANONYMOUS_REF = "anon"  # what the anonymous first page's form token is bound to


def _limit_per_ip() -> str:
    return settings().response_limit_per_ip


@bp.after_request
def _private(response: FlaskResponse) -> FlaskResponse:
    # The URLs carry capabilities and the pages show someone's answers: never cache, never leak
    # the URL in a Referer, never index.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@dataclass
class Visit:
    """Everything a survey page needs to know first: the survey, who answers, what they said."""

    survey: Survey
    version: SurveyVersion
    who: LinkRespondent | None  # None: an anonymous survey, before the respondent gave an email
    response: Response | None
    token: str | None  # the respondent token the next pages are reached with
    strings: dict[str, str] = field(default_factory=dict)

    @property
    def answers(self) -> dict[str, Any]:
        return dict(self.response.answers) if self.response is not None else {}

    @property
    def completed(self) -> bool:
        return self.response is not None and self.response.status == ResponseStatus.COMPLETED

    @property
    def questions(self) -> list[dict[str, Any]]:
        return self.version.questions


def _survey(session: Session, survey_key: str) -> Survey:
    if not SURVEY_KEY.match(survey_key):  # never hand PostgreSQL a NUL or a 10 kB key
        raise NotFound(f"no survey {survey_key[:80]!r}")
    return get_survey(session, survey_key)


def _visit(session: Session, survey_key: str, token: str | None) -> Visit | None:
    """None when the survey needs a respondent link and the request has none."""
    survey = _survey(session, survey_key)
    version = published_version(survey, None)
    if not token:
        if not survey.anonymous:
            return None
        return Visit(survey, version, None, None, None, _strings(version, None))
    who = read_respondent_token(session, settings(), survey_key, token)
    return _visit_of(session, survey, version, who, token)


def _visit_of(
    session: Session, survey: Survey, version: SurveyVersion, who: LinkRespondent, token: str
) -> Visit:
    response = hosted.find_response(
        session,
        survey,
        contact_id=who.contact.id if who.contact else None,
        client_response_id=who.response_id(version),
    )
    if response is not None:
        version = response.version  # finish on the version it was begun with
    return Visit(survey, version, who, response, token, _strings(version, who))


def _strings(version: SurveyVersion, who: LinkRespondent | None) -> dict[str, str]:
    locale = request.args.get("locale") or (who.contact.locale if who and who.contact else None)
    if not locale:
        locale = request.accept_languages.best_match(["en", "de"]) or "en"
    return ui_strings(version.definition, locale)


# --- the hosted page -----------------------------------------------------------------------------


@bp.get("/s/<survey_key>")
def hosted_page(survey_key: str) -> Any:
    visit = _visit(db_session(), survey_key, request.args.get("t"))
    if visit is None:
        return render_template("survey/link_required.html"), 403
    if visit.completed:
        return _thanks(db_session(), visit, already=not request.args.get("done"))
    if visit.who is not None and visit.who.contact is not None:  # the hosted page was opened: reached
        with unit_of_work() as session:
            contact = visit.who.contact
            record_reach(session, visit.survey.id, contact.account_id, contact.id, "hosted", now=now())
    page = _allowed_page(visit, request.args.get("step")) or hosted.resume_page(
        visit.questions, visit.answers
    )
    return _render(visit, page, answers_as_form(visit.questions, visit.answers))


@bp.post("/s/<survey_key>")
@limiter.limit(_limit_per_ip)
def hosted_submit(survey_key: str) -> Any:
    with unit_of_work() as session:
        visit = _visit(session, survey_key, request.args.get("t"))
        if visit is None:
            return render_template("survey/link_required.html"), 403
        if visit.completed:
            return _thanks(session, visit, already=True)
        page = _allowed_page(visit, request.form.get("_step"))
        if page is None:  # a stale or hand-made form: show where the respondent really is
            return redirect(_page_url(visit, None), 303)
        expired = _check_form(visit)
        if expired is not None:
            return _render(visit, page, request.form, notice=expired, status=422)
        channel = "email" if visit.response and visit.response.channel == Channel.EMAIL else "hosted"
        return _save_page(session, visit, page, channel=channel)


def _allowed_page(visit: Visit, key: str | None) -> Page | None:
    """A page the respondent may be on: visible now, and not past the first unanswered one."""
    if not key:
        return None
    shown = hosted.visible_pages(visit.questions, visit.answers)
    resume = hosted.resume_page(visit.questions, visit.answers)
    keys = [p.key for p in shown]
    if key not in keys or (resume.key in keys and keys.index(key) > keys.index(resume.key)):
        return None
    return shown[keys.index(key)]


def _page_url(visit: Visit, page: Page | None, **extra: Any) -> str:
    args: dict[str, Any] = {"t": visit.token} if visit.token else {}
    if page is not None:
        args["step"] = page.key
    return url_for("survey_pages.hosted_page", survey_key=visit.survey.key, **args, **extra)


def _check_form(visit: Visit) -> str | None:
    """Refuse a POST that did not come from a page we rendered for this link (FormRejected → 400);
    an expired form comes back as a message so the respondent can simply send it again."""
    ref = visit.who.ref if visit.who else ANONYMOUS_REF
    try:
        check_form_token(settings(), request.form.get("_form"), visit.survey.key, ref)
    except FormExpired as exc:
        return exc.detail[:1].upper() + exc.detail[1:] + "."
    return None


def _save_page(
    session: Session,
    visit: Visit,
    page: Page,
    *,
    channel: str,
    mode: str = "hosted",
    action: str | None = None,
) -> Any:
    """Validate the page, save the response (partial, or complete on the last page), redirect on.

    Every error shows at once: what is not even a number (read here), what the survey's rules
    refuse (`validate_answers`, the same validation as the API) and required answers left out."""
    questions = visit.questions
    saved = visit.answers
    lib = objectives_by_key(session)
    chosen_objectives = [k for k in hosted.chosen(questions, saved, "objective_pick") if k in lib]
    values, errors = parse_page(
        hosted.page_questions(questions, page, saved), {k: lib[k] for k in chosen_objectives}, request.form
    )
    email = ""
    if visit.who is None:
        email = clean_text(request.form.get("_email", "")).strip().lower()
        if len(email) > 320 or not EMAIL.match(email):
            errors["_email"] = "Enter your email address, like ann@example.com."
    merged = {k: v for k, v in saved.items() if k not in {q["key"] for q in page.questions}}
    merged.update(values)
    merged = hosted.consistent_answers(session, questions, merged)
    for question in hosted.page_questions(questions, page, merged):
        if question.get("required") and question["key"] not in merged and question["key"] not in errors:
            errors[question["key"]] = visit.strings["required"]
    order = [p.key for p in hosted.pages(questions)]
    later = [p for p in hosted.visible_pages(questions, merged) if order.index(p.key) > order.index(page.key)]
    problems: list[tuple[str, str | None]] = []
    try:
        validate_answers(session, questions, merged, complete=not later, today=now().date())
    except ValidationFailed as exc:
        on_page, elsewhere = field_errors(exc.errors, page, questions, visit.strings)
        errors = {**on_page, **errors}  # "not a number" beats what the default number led to
        where = {q["key"]: p for p in hosted.pages(questions) for q in p.questions}
        problems = [(text, _page_url(visit, where[key]) if key in where else None) for text, key in elsewhere]
    if errors or problems:
        return _render(
            visit, page, request.form, errors=errors, problems=problems, status=422, mode=mode, action=action
        )
    if visit.who is None:  # an anonymous respondent's first page: from now on the link carries the email
        visit.who = LinkRespondent(visit.survey.key, None, email, secrets.token_urlsafe(12))
        visit.token = anonymous_respondent_token(settings(), visit.survey.key, email, visit.who.nonce or "")
    submit_response(
        session,
        visit.survey.key,
        ResponseIn(
            client_response_id=(
                visit.response.client_response_id if visit.response else visit.who.response_id(visit.version)
            ),
            account=None,
            answers=merged,
            channel=channel,
            version=visit.version.version,
            complete=not later,
        ),
        now=now(),
        respondent=visit.who.respondent(),
    )
    if not later:
        return redirect(_page_url(visit, None, done=1), 303)
    return redirect(_page_url(visit, later[0]), 303)


# --- one-click answers from an email ---------------------------------------------------------------


@bp.route("/s/<survey_key>/a/<token>", methods=["GET", "POST"])
@limiter.limit(_limit_per_ip, methods=["POST"])
def answer_page(survey_key: str, token: str) -> Any:
    with unit_of_work() as session:
        click = read_answer_token(session, settings(), token)
        if click.survey_key != survey_key:
            raise LinkInvalid("this answer link is not valid")
        who = LinkRespondent(survey_key, click.contact)
        visit = _visit_of(
            session,
            click.version.survey,
            click.version,
            who,
            respondent_token(settings(), survey_key, click.contact),
        )
        if visit.completed:
            return _thanks(session, visit, already=True)  # a replayed link stores nothing twice
        first = hosted.pages(visit.questions)[0]
        action = url_for("survey_pages.answer_page", survey_key=survey_key, token=token)
        clicked = _with_click(visit.answers, click, first)
        if request.method in ("GET", "HEAD"):  # never records: mail scanners follow links
            form = answers_as_form(visit.questions, clicked)
            return _render(visit, first, form, mode="confirm", action=action, clicked=click.option_value)
        expired = _check_form(visit)
        if expired is not None:
            return _render(
                visit, first, request.form, notice=expired, status=422, mode="confirm", action=action
            )
        return _save_page(session, visit, first, channel="email", mode="confirm", action=action)


def _with_click(answers: dict[str, Any], click: AnswerClick, first: Page) -> dict[str, Any]:
    """The saved answers with the clicked option selected (added to a multi-pick, else replacing)."""
    if click.question_key not in {q["key"] for q in first.questions}:
        return answers
    value = click.answer()
    before = answers.get(click.question_key)
    if isinstance(value, list) and isinstance(before, list):
        value = before + [v for v in value if v not in before]
    return {**answers, click.question_key: value}


# --- rendering -----------------------------------------------------------------------------------


def _render(
    visit: Visit,
    page: Page,
    form: Mapping[str, Any],
    *,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    problems: list[tuple[str, str | None]] | None = None,
    status: int = 200,
    mode: str = "hosted",
    action: str | None = None,
    clicked: str | None = None,
) -> Any:
    questions = visit.questions
    answers = visit.answers
    counted = [p.key for p in hosted.expected_pages(questions, answers, page.key)]
    shown_now = [p.key for p in hosted.expected_pages(questions, answers)]
    number = counted.index(page.key) + 1 if page.key in counted else 1
    visible = hosted.visible_pages(questions, answers)
    keys = [p.key for p in visible]
    at = keys.index(page.key) if page.key in keys else 0
    previous = visible[at - 1] if mode == "hosted" and at > 0 else None
    form_data = form if isinstance(form, MultiDict) else MultiDict(form)
    lib = library(db_session())
    views = [
        question_view(q, form_data, errors or {}, questions, answers, lib, visit.strings)
        for q in hosted.page_questions(questions, page, answers)
    ]
    ref = visit.who.ref if visit.who else ANONYMOUS_REF
    clicked_label = next(
        (o["label"] for v in views[:1] for o in v.get("options", []) if o["value"] == clicked), ""
    )
    account = visit.who.contact.account if visit.who and visit.who.contact else None
    return (
        render_template(
            "survey/step.html",
            mode=mode,
            survey=visit.survey,
            title=visit.version.definition.get("title", visit.survey.title),
            intro=visit.version.definition.get("intro", ""),
            strings=visit.strings,
            page=page,
            number=number,
            total=max(len(counted), number),
            questions=views,
            errors=errors or {},
            notice=notice,
            problems=problems or [],
            action=action or _page_url(visit, None),
            form_token=form_token(settings(), visit.survey.key, ref),
            ask_email=visit.who is None,
            email=form_data.get("_email", ""),
            back_url=_page_url(visit, previous) if previous else None,
            # "Submit" when no page shows after this one on the answers so far: most respondents'
            # last page, though a page counted ahead may still show after it (a low score's question).
            last=not shown_now or page.key == shown_now[-1],
            clicked=clicked_label,
            contact=visit.who.contact if visit.who else None,
            account=account,
        ),
        status,
    )


def _thanks(session: Session, visit: Visit, *, already: bool) -> Any:
    """The thank-you page says what the answers did: made the plan, changed it, or (another contact
    made it first, and the rules keep an account's active plan) left it as it was."""
    response = visit.response
    plan = active_plan(session, response.account_id) if response and response.account_id else None
    plan_url = (
        url_for("plan_page.shared_plan", token=plan_token(settings().secret_key, plan)) if plan else None
    )
    effect = plan_effect(session, response, plan) if response and plan else None
    return render_template(
        "survey/thanks.html",
        already=already,
        strings=visit.strings,
        title=visit.version.definition.get("title", visit.survey.title),
        plan=plan,
        plan_url=plan_url,
        effect=effect or PlanEffect.KEPT,  # unknown (the `rules` job's): claim nothing about it
        account=plan.account if plan else None,
        contact=visit.who.contact if visit.who else None,
    )
