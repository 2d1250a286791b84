"""Survey authoring pages: list, create, edit (form or JSON), save a draft, preview, publish."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound as HTTPNotFound

from engine.errors import Conflict, ValidationFailed
from surveys import authoring
from surveys.display import UI_STRINGS, presentation
from surveys.models import Survey
from surveys.service import get_survey
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.admin.form_fields import unix_newlines
from web.admin.nav import Crumb, breadcrumbs
from web.admin.survey_form import (
    BLANK_SLOTS,
    KIND_FIELDS,
    KIND_GROUPS,
    KIND_LABELS,
    Editor,
    QuestionForm,
    SurveyForm,
    error_summary,
    parse_form,
)
from web.context import db_session, now, unit_of_work

SURVEY_KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")


@bp.get("/surveys")
@role_required(*ANY_ROLE)
def surveys() -> Any:
    return render_template(
        "admin/surveys.html",
        section="surveys",
        breadcrumbs=breadcrumbs(("Surveys", None)),
        surveys=authoring.survey_summaries(db_session()),
    )


@bp.route("/surveys/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def new_survey() -> Any:
    if request.method == "GET":
        blank = {"key": "", "title": "", "questions": []}
        return _editor_page(None, Editor(SurveyForm(), authoring.definition_json(blank), marker=""))
    form, definition, editor = _submitted(None, {})
    if editor.errors or editor.json_errors:
        return _editor_page(None, editor, 422)
    try:
        with unit_of_work() as session:
            survey = authoring.create_survey(session, definition, now=now())
            key = survey.key
    except ValidationFailed as exc:
        _record(editor, exc.errors)
        return _editor_page(None, editor, 422)
    flash("Survey created as a draft. Preview it, then publish it when it is ready.", "ok")
    return _after_save(key)


@bp.get("/surveys/<key>")
@role_required(*EDITORS)
def edit_survey(key: str) -> Any:
    survey = _survey(db_session(), key)
    definition = authoring.working_definition(survey)
    editor = Editor(
        SurveyForm.from_definition(definition),
        authoring.definition_json(definition),
        authoring.revision_marker(survey),
    )
    return _editor_page(survey, editor)


@bp.post("/surveys/<key>")
@role_required(*EDITORS)
def save_survey(key: str) -> Any:
    session = db_session()
    survey = _survey(session, key)
    form, definition, editor = _submitted(survey, authoring.working_definition(survey))
    if editor.errors or editor.json_errors:
        return _editor_page(survey, editor, 422)
    try:
        with unit_of_work() as session:
            draft = authoring.save_draft(session, key, definition, expected=editor.marker)
    except ValidationFailed as exc:
        _record(editor, exc.errors)
        return _editor_page(_survey(db_session(), key), editor, 422)
    except authoring.StaleEdit:
        fresh = _survey(db_session(), key)
        editor.conflict = _conflict_message(fresh)
        editor.marker = authoring.revision_marker(fresh)  # saving again now replaces their change
        return _editor_page(fresh, editor, 409)
    if draft is None:
        flash("No changes from the published version, so there is no draft.", "ok")
    else:
        flash("Draft saved. Respondents still see the published version until you publish.", "ok")
    return _after_save(key)


@bp.post("/surveys/<key>/publish")
@role_required(*EDITORS)
def publish_survey(key: str) -> Any:
    _survey(db_session(), key)
    expected = request.form.get("marker", "")
    clock = now()
    try:
        with unit_of_work() as session:
            version = authoring.publish_draft(session, key, expected=expected, now=clock)
            number, fresh = version.version, version.published_at == clock
    except authoring.StaleEdit:
        return _refused(key, "publish")
    except Conflict as exc:
        flash(f"Nothing was published: {exc.detail}.", "warn")
        return redirect(url_for("admin.edit_survey", key=key), 303)
    if not fresh:
        flash(f"The draft matched version {number}, so nothing new was published.", "ok")
    else:
        flash(
            f"Published version {number}. New responses use it; earlier responses keep their version.",
            "ok",
        )
    return redirect(url_for("admin.edit_survey", key=key), 303)


@bp.post("/surveys/<key>/discard")
@role_required(*EDITORS)
def discard_draft(key: str) -> Any:
    _survey(db_session(), key)
    try:
        with unit_of_work() as session:
            authoring.discard_draft(session, key, expected=request.form.get("marker", ""))
    except authoring.StaleEdit:
        return _refused(key, "discard the draft")
    flash("Draft discarded. The editor shows the published version again.", "ok")
    return redirect(url_for("admin.edit_survey", key=key), 303)


@bp.get("/surveys/<key>/preview")
@role_required(*ANY_ROLE)
def preview_survey(key: str) -> Any:
    session = db_session()
    survey = _survey(session, key)
    version_param = request.args.get("version", type=int)
    version = authoring.find_version(survey, version_param)
    locale = request.args.get("locale", "en")
    locale = locale if locale in UI_STRINGS else "en"
    shown = presentation(session, survey, version, locale)
    shown["anonymous"] = bool(version.definition.get("anonymous", False))  # the draft's, not the live one's
    return render_template(
        "admin/preview.html",
        section="surveys",
        breadcrumbs=survey_crumbs(
            (survey.title, url_for("admin.edit_survey", key=survey.key) if current_user.can_edit else None),
            ("Preview", None),
        ),
        survey=survey,
        version=version,
        version_param=version_param,
        shown=shown,
        locale=locale,
        locales=sorted(UI_STRINGS),
        outcomes=_outcomes_with_objectives(shown["library"], now().date()),
        conditions={
            q["key"]: json.dumps(q["show_if"], ensure_ascii=False)
            for q in shown["questions"]
            if q.get("show_if")
        },
        marker=authoring.revision_marker(survey),
        latest=survey.latest_published,
        next_version=authoring.next_version_number(survey),
    )


def survey_crumbs(*trail: Crumb) -> list[Crumb]:
    return breadcrumbs(("Surveys", url_for("admin.surveys")), *trail)


def _survey(session: Session, key: str) -> Survey:
    if not SURVEY_KEY.match(key):
        raise HTTPNotFound(f"There is no survey {key[:80]!r}.")
    return get_survey(session, key)


def _after_save(key: str) -> Any:
    if request.form.get("action") == "preview":
        return redirect(url_for("admin.preview_survey", key=key), 303)
    return redirect(url_for("admin.edit_survey", key=key), 303)


def _refused(key: str, what: str) -> Any:
    survey = _survey(db_session(), key)
    definition = authoring.working_definition(survey)
    editor = Editor(
        SurveyForm.from_definition(definition),
        authoring.definition_json(definition),
        authoring.revision_marker(survey),
        conflict=f"Could not {what}: {_conflict_message(survey)} Review the survey below, then try again.",
    )
    return _editor_page(survey, editor, 409)


def _conflict_message(survey: Survey) -> str:
    draft = authoring.draft_of(survey)
    latest = survey.latest_published
    now_state = (
        f"a draft is pending on top of version {latest.version}"
        if draft and latest
        else "a draft is pending"
        if draft
        else f"version {latest.version} is published and there is no draft"
        if latest
        else "it has no draft"
    )
    return f"Someone else changed this survey since you opened it (now {now_state})."


def _editor_page(survey: Survey | None, editor: Editor, status: int = 200) -> Any:
    form = editor.form
    slots = list(form.questions) + [QuestionForm() for _ in range(BLANK_SLOTS)]
    draft = authoring.draft_of(survey) if survey else None
    latest = survey.latest_published if survey else None
    return (
        render_template(
            "admin/edit.html",
            section="surveys",
            breadcrumbs=survey_crumbs((survey.title if survey else "New survey", None)),
            survey=survey,
            editor=editor,
            form=form,
            slots=slots,
            first_blank=len(form.questions),
            kinds=KIND_LABELS,
            kind_groups=KIND_GROUPS,
            kind_fields=KIND_FIELDS,
            summary=error_summary(editor.errors),
            json_summary=error_summary(editor.json_errors),
            blank_question=QuestionForm(),
            heading=authoring.working_definition(survey)["title"] if survey else "New survey",
            draft=draft,
            latest=latest,
            next_version=authoring.next_version_number(survey) if survey else None,
            history=authoring.version_history(db_session(), survey) if survey else [],
        ),
        status,
    )


def _submitted(
    survey: Survey | None, working: Mapping[str, Any]
) -> tuple[SurveyForm, dict[str, Any], Editor]:
    """The posted definition (from the form or the JSON editor) and the editor to show if it is
    rejected, with every problem found so far (the schema's are added by the caller's service)."""
    posted = request.form
    marker = posted.get("marker", "")
    if posted.get("source") == "json":
        text = unix_newlines(posted.get("definition", ""))
        editor = Editor(SurveyForm.from_definition(working), text, marker)
        try:
            definition = authoring.definition_from_json(text)
        except ValidationFailed as exc:
            editor.json_errors = exc.errors
            return editor.form, {}, editor
        if survey is not None:
            definition.setdefault("key", survey.key)
        _check(editor, definition, json_mode=True)
        return editor.form, definition, editor
    form, definition, errors = parse_form(posted, survey.key if survey else None)
    if "strings" in working:
        definition["strings"] = working["strings"]  # edited only as JSON; the form keeps it
    editor = Editor(form, authoring.definition_json(working), marker, errors=errors)
    _check(editor, definition, json_mode=False)
    return form, definition, editor


def _check(editor: Editor, definition: Mapping[str, Any], *, json_mode: bool) -> None:
    try:
        authoring.validate_definition(definition)
    except ValidationFailed as exc:
        for name, message in exc.errors.items():
            target = editor.json_errors if json_mode else editor.errors
            target.setdefault(name, message)


def _record(editor: Editor, errors: Mapping[str, Any]) -> None:
    target = editor.json_errors if request.form.get("source") == "json" else editor.errors
    target.update({name: str(message) for name, message in errors.items()})


def _outcomes_with_objectives(library: Mapping[str, Any], today: dt.date) -> list[dict[str, Any]]:
    """The library as the respondent meets it: each outcome with its objectives and their default
    key results (an unanswered due date is today plus the objective's days, as `validate_answers`
    assumes)."""
    grouped = [dict(o, objectives=[]) for o in library["outcomes"]]
    by_key = {o["key"]: o for o in grouped}
    for objective in library["objectives"]:
        if objective["outcome"] in by_key:
            due = today + dt.timedelta(days=int(objective["days"]))
            by_key[objective["outcome"]]["objectives"].append(dict(objective, due=due))
    return grouped
