"""The hosted survey page and the email's one-click answers; plain HTML forms, no JavaScript needed.

`/s/<key>?t=<respondent token>` shows the survey a page at a time (outcomes → objectives → key
results → the rest); every page POSTs, is saved as a partial response and redirects to the next
page. `/s/<key>/a/<answer token>` is the link behind each option in an email: GET only shows a
confirmation (mail scanners follow links and must not answer for the customer), POST records.
"""

from __future__ import annotations

import datetime as dt
import math
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
from surveys.reports import record_reach
from surveys.service import ResponseIn, get_survey, published_version, submit_response
from web.context import db_session, now, settings, unit_of_work
from web.ratelimit import limiter

bp = Blueprint("survey_pages", __name__)

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SURVEY_KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")  # as surveys.schemas allows
ANONYMOUS_REF = "anon"  # what the anonymous first page's form token is bound to
LIST_KINDS = ("outcome_pick", "objective_pick", "multi_choice")
KR_FIELDS = ("baseline", "target", "due_date")
FRIENDLIER = {
    "target must differ from the baseline": "The target must differ from today's number.",
    "due_date must be a date like 2027-08-30": "Enter a date like 2027-08-30.",
    "due_date must be in the future": "Pick a date in the future.",
    "baseline must be a number": "Enter a number.",
    "target must be a number": "Enter a number.",
    "baseline must be a finite number": "Enter a number.",
    "target must be a finite number": "Enter a number.",
}


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
    return _render(visit, page, _answers_as_form(visit.questions, visit.answers))


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
    values, errors = _parse_page(
        hosted.page_questions(questions, page, saved), {k: lib[k] for k in chosen_objectives}, request.form
    )
    email = ""
    if visit.who is None:
        email = _clean(request.form.get("_email", "")).strip().lower()
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
        on_page, elsewhere = _field_errors(exc.errors, page, questions, visit.strings)
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
            form = _answers_as_form(visit.questions, clicked)
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
    counted = [p.key for p in hosted.expected_pages(questions, answers)]
    number = counted.index(page.key) + 1 if page.key in counted else 1
    visible = hosted.visible_pages(questions, answers)
    keys = [p.key for p in visible]
    at = keys.index(page.key) if page.key in keys else 0
    previous = visible[at - 1] if mode == "hosted" and at > 0 else None
    form_data = form if isinstance(form, MultiDict) else MultiDict(form)
    lib = library(db_session())
    views = [
        _question_view(q, form_data, errors or {}, questions, answers, lib, visit.strings)
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
            last=not counted or page.key == counted[-1],
            clicked=clicked_label,
            contact=visit.who.contact if visit.who else None,
            account=account,
        ),
        status,
    )


def _question_view(
    question: dict[str, Any],
    form: MultiDict[str, str],
    errors: dict[str, str],
    questions: list[dict[str, Any]],
    answers: dict[str, Any],
    lib: dict[str, list[dict[str, Any]]],
    strings: dict[str, str],
) -> dict[str, Any]:
    key, kind = question["key"], question["kind"]
    name = f"q.{key}"
    picked = set(form.getlist(name))
    view: dict[str, Any] = {
        "key": key,
        "name": name,
        "kind": kind,
        "title": question["title"],
        "help": question.get("help") or "",
        "required": bool(question.get("required")),
        "max": question.get("max"),
        "error": errors.get(key),
        "multiple": kind in LIST_KINDS,
    }
    if kind == "outcome_pick":
        view["options"] = [_option(o["key"], o["title"], o["description"], picked) for o in lib["outcomes"]]
    elif kind == "objective_pick":
        outcomes = hosted.chosen(questions, answers, "outcome_pick")
        titles = {o["key"]: o["title"] for o in lib["outcomes"]}
        view["options"] = [
            {
                **_option(o["key"], o["title"], _objective_line(o), picked),
                "group": titles.get(o["outcome"], ""),
            }
            for outcome in outcomes
            for o in lib["objectives"]
            if o["outcome"] == outcome
        ]
        view["grouped"] = len(outcomes) > 1
    elif kind in ("single_choice", "multi_choice"):
        view["options"] = [_option(str(o["value"]), o["label"], "", picked) for o in question["options"]]
    elif kind in ("nps", "csat"):
        low, high = (0, 10) if kind == "nps" else (1, 5)
        view["options"] = [_option(str(n), str(n), "", picked) for n in range(low, high + 1)]
        view["low"], view["high"] = (strings["nps_low"], strings["nps_high"]) if kind == "nps" else ("", "")
    elif kind == "text":
        view["value"] = form.get(name, "")
        view["max_length"] = question.get("max_length") or 500
    elif kind == "key_result":
        chosen = hosted.chosen(questions, answers, "objective_pick")
        by_key = {o["key"]: o for o in lib["objectives"]}
        today = now().date()
        view["rows"] = [_kr_row(by_key[k], form, errors, today) for k in chosen if k in by_key]
    return view


def _option(value: str, label: str, description: str, picked: set[str]) -> dict[str, Any]:
    return {"value": value, "label": label, "description": description, "checked": value in picked}


def _objective_line(objective: dict[str, Any]) -> str:
    return f"Measured by {objective['metric']} ({objective['unit']})"


def _kr_row(
    objective: dict[str, Any], form: MultiDict[str, str], errors: dict[str, str], today: dt.date
) -> dict[str, Any]:
    key = objective["key"]
    defaults = {
        "baseline": _format_number(objective["baseline"]),
        "target": _format_number(objective["target"]),
        "due_date": (today + dt.timedelta(days=int(objective["days"]))).isoformat(),
    }
    return {
        "key": key,
        "title": objective["title"],
        "metric": objective["metric"],
        "unit": objective["unit"],
        "min_date": (today + dt.timedelta(days=1)).isoformat(),
        "fields": {
            f: {
                "name": f"kr.{key}.{f}",
                "value": form.get(f"kr.{key}.{f}", defaults[f]),
                "error": errors.get(f"kr.{key}.{f}"),
            }
            for f in KR_FIELDS
        },
    }


def _answers_as_form(questions: list[dict[str, Any]], answers: dict[str, Any]) -> MultiDict[str, str]:
    """Saved answers as the form fields that would have sent them (so one template shows both)."""
    form: MultiDict[str, str] = MultiDict()
    for question in questions:
        key, value = question["key"], answers.get(question["key"])
        if value is None:
            continue
        if question["kind"] == "key_result" and isinstance(value, dict):
            for objective, numbers in value.items():
                for f in KR_FIELDS:
                    if isinstance(numbers, dict) and numbers.get(f) is not None:
                        shown = numbers[f] if f == "due_date" else _format_number(numbers[f])
                        form.add(f"kr.{objective}.{f}", str(shown))
        elif isinstance(value, list):
            for item in value:
                form.add(f"q.{key}", str(item))
        else:
            form.add(f"q.{key}", str(value))
    return form


def _thanks(session: Session, visit: Visit, *, already: bool) -> Any:
    response = visit.response
    plan = active_plan(session, response.account_id) if response and response.account_id else None
    plan_url = (
        url_for("plan_page.shared_plan", token=plan_token(settings().secret_key, plan)) if plan else None
    )
    return render_template(
        "survey/thanks.html",
        already=already,
        strings=visit.strings,
        title=visit.version.definition.get("title", visit.survey.title),
        plan=plan,
        plan_url=plan_url,
        contact=visit.who.contact if visit.who else None,
    )


# --- reading the form ----------------------------------------------------------------------------


def _parse_page(
    questions: list[dict[str, Any]], objectives: Mapping[str, Any], form: MultiDict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Form fields → answer values as the API takes them, plus errors for what is not even a number."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for question in questions:
        key, kind, name = question["key"], question["kind"], f"q.{question['key']}"
        if kind in LIST_KINDS:
            picked = list(dict.fromkeys(_clean(v) for v in form.getlist(name) if v))
            if picked:
                values[key] = picked
        elif kind == "single_choice":
            if chosen := _clean(form.get(name, "")):
                values[key] = chosen
        elif kind in ("nps", "csat"):
            raw = _clean(form.get(name, "")).strip()
            if raw:
                values[key] = int(raw) if re.fullmatch(r"\d{1,3}", raw, re.ASCII) else raw
        elif kind == "text":
            text = _clean(form.get(name, ""))
            if text.strip():
                values[key] = text
        elif kind == "key_result":
            rows: dict[str, Any] = {}
            for objective, info in objectives.items():
                row: dict[str, Any] = {}
                for f in ("baseline", "target"):
                    number = _number(_clean(form.get(f"kr.{objective}.{f}", "")))
                    if number is None:
                        example = _format_number(getattr(info, f"default_{f}"))
                        errors[f"kr.{objective}.{f}"] = f"Enter a number, like {example}."
                    else:
                        row[f] = number
                if due := _clean(form.get(f"kr.{objective}.due_date", "")).strip():
                    row["due_date"] = due
                rows[objective] = row
            if rows:
                values[key] = rows
    return values, errors


def _clean(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text and JSONB refuse NUL


def _number(raw: str) -> float | None:
    """Numbers as people type them: 12,000 · 12 000 · 3,5 · 3.5% · 1e3."""
    text = raw.strip().removesuffix("%").replace(" ", "").replace("\u00a0", "").replace("_", "")
    if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    elif re.fullmatch(r"[-+]?\d+,\d+", text):
        text = text.replace(",", ".")
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d{1,3})?", text, re.ASCII):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _format_number(value: Any) -> str:
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def _field_errors(
    errors: dict[str, Any], page: Page, questions: list[dict[str, Any]], strings: dict[str, str]
) -> tuple[dict[str, str], list[tuple[str, str | None]]]:
    """The service's `answers.<key>` errors: next to this page's fields, or listed by question."""
    on_page: dict[str, str] = {}
    elsewhere: list[tuple[str, str | None]] = []
    page_keys = {q["key"] for q in page.questions}
    titles = {q["key"]: q["title"] for q in questions}
    kr_keys = {q["key"] for q in questions if q["kind"] == "key_result"}
    for path, message in errors.items():
        key = path.removeprefix("answers.")
        text = str(message[0] if isinstance(message, list) and message else message)
        if key in kr_keys and key in page_keys:
            found = re.match(r"^([a-z][a-z0-9_\-]*)\.(baseline|target|due_date) (.+)$", text)
            if found:
                objective, f, rest = found.groups()
                on_page[f"kr.{objective}.{f}"] = FRIENDLIER.get(f"{f} {rest}", _sentence(rest))
                continue
        friendly = _friendly(text, strings)
        if key in page_keys:
            on_page[key] = friendly
        else:
            elsewhere.append((f"{titles.get(key, key)}: {friendly}", key if key in titles else None))
    return on_page, elsewhere


def _friendly(message: str, strings: dict[str, str]) -> str:
    if message == "an answer is required":
        return strings["required"]
    if found := re.fullmatch(r"choose at most (\d+)", message):
        return strings["choose_at_most"].format(max=found.group(1))
    return _sentence(message)


def _sentence(text: str) -> str:
    text = text.strip()
    if len(text) > 160:  # the service quotes the bad value back; a pasted novel need not be
        text = text[:150] + "…'"
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
