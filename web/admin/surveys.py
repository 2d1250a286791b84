"""Survey authoring pages: list, create, edit (form or JSON), save a draft, preview, publish."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound as HTTPNotFound

from engine.errors import Conflict, ValidationFailed
from surveys import authoring
from surveys.display import UI_STRINGS, presentation
from surveys.models import Survey
from surveys.schemas import QUESTION_KINDS
from surveys.service import get_survey
from web.admin import bp
from web.admin.auth import ANY_ROLE, EDITORS, role_required
from web.context import db_session, now, unit_of_work

KIND_LABELS = {
    "outcome_pick": "Outcome pick",
    "objective_pick": "Objective pick",
    "key_result": "Key results",
    "single_choice": "Single choice",
    "multi_choice": "Multiple choice",
    "nps": "NPS (0–10)",
    "csat": "CSAT (1–5)",
    "text": "Free text",
}
KIND_GROUPS = {
    "From the outcome library": ("outcome_pick", "objective_pick", "key_result"),
    "Questions": ("single_choice", "multi_choice", "nps", "csat", "text"),
}
assert set(KIND_LABELS) == set(QUESTION_KINDS) == {k for kinds in KIND_GROUPS.values() for k in kinds}
# Which kinds use a field (the editor hides the others; without JS they are all shown).
KIND_FIELDS = {
    "max": ("outcome_pick", "objective_pick", "multi_choice"),
    "max_length": ("text",),
    "options": ("single_choice", "multi_choice"),
}
BLANK_SLOTS = 2  # empty question fieldsets: how the form adds questions when JavaScript is off
MAX_SLOTS = 60
SLOT_FIELD = re.compile(r"^q-(\d{1,3})-[a-z_]+$")
SURVEY_KEY = re.compile(r"^[a-z][a-z0-9_\-]{0,79}$")
FIELD_LABELS = {
    "key": "Key",
    "kind": "Kind",
    "title": "Title",
    "help": "Help text",
    "required": "Required",
    "max": "Most picks",
    "max_length": "Longest answer",
    "options": "Options",
    "show_if": "Show only if",
    "intro": "Introduction",
    "anonymous": "Anonymous",
    "redisplay_days": "Ask again after",
    "strings": "UI strings",
    "questions": "Questions",
    "json": "JSON",
    "definition": "Survey",
}


@dataclass
class QuestionForm:
    """One question fieldset, as typed (strings), so a rejected form comes back exactly as sent."""

    key: str = ""
    kind: str = "single_choice"
    title: str = ""
    help: str = ""
    required: bool = False
    max: str = ""
    max_length: str = ""
    options: str = ""
    show_if: str = ""

    @property
    def blank(self) -> bool:
        typed = (self.key, self.title, self.help, self.max, self.max_length, self.options, self.show_if)
        return not any(v.strip() for v in typed)

    @classmethod
    def from_definition(cls, question: Mapping[str, Any]) -> QuestionForm:
        options = question.get("options") or []
        return cls(
            key=str(question.get("key", "")),
            kind=str(question.get("kind", "")),
            title=str(question.get("title", "")),
            help=str(question.get("help") or ""),
            required=bool(question.get("required", False)),
            max=_text(question.get("max")),
            max_length=_text(question.get("max_length")) if question.get("max_length") != 500 else "",
            options="\n".join(f"{o.get('value', '')}|{o.get('label', '')}" for o in options),
            show_if=json.dumps(question["show_if"]) if question.get("show_if") is not None else "",
        )


@dataclass
class SurveyForm:
    key: str = ""
    title: str = ""
    intro: str = ""
    anonymous: bool = False
    redisplay_days: str = "30"
    questions: list[QuestionForm] = field(default_factory=list)

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> SurveyForm:
        return cls(
            key=str(definition.get("key", "")),
            title=str(definition.get("title", "")),
            intro=str(definition.get("intro") or ""),
            anonymous=bool(definition.get("anonymous", False)),
            redisplay_days=_text(definition.get("redisplay_days", 30)),
            questions=[QuestionForm.from_definition(q) for q in definition.get("questions", [])],
        )


@dataclass
class Editor:
    """Everything the edit page shows besides the survey itself."""

    form: SurveyForm
    json_text: str
    marker: str
    errors: dict[str, str] = field(default_factory=dict)
    json_errors: dict[str, str] = field(default_factory=dict)
    conflict: str | None = None


@bp.get("/surveys")
@role_required(*ANY_ROLE)
def surveys() -> Any:
    return render_template(
        "admin/surveys.html", section="surveys", surveys=authoring.survey_summaries(db_session())
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
            survey=survey,
            editor=editor,
            form=form,
            slots=slots,
            first_blank=len(form.questions),
            kinds=KIND_LABELS,
            kind_groups=KIND_GROUPS,
            kind_fields=KIND_FIELDS,
            summary=_error_summary(editor.errors),
            json_summary=_error_summary(editor.json_errors),
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
        text = _newlines(posted.get("definition", ""))
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
    form, definition, errors = _parse_form(posted, survey.key if survey else None)
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


def _parse_form(
    posted: MultiDict[str, str], fixed_key: str | None
) -> tuple[SurveyForm, dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    form = SurveyForm(
        key=fixed_key if fixed_key is not None else posted.get("key", "").strip(),
        title=posted.get("title", "").strip(),
        intro=_newlines(posted.get("intro", "")).strip(),
        anonymous=posted.get("anonymous") == "on",
        redisplay_days=posted.get("redisplay_days", "").strip(),
    )
    definition: dict[str, Any] = {"key": form.key, "title": form.title}
    if form.intro:
        definition["intro"] = form.intro
    if form.anonymous:
        definition["anonymous"] = True
    if form.redisplay_days:
        number = _whole_number(form.redisplay_days)
        if number is None:
            errors["redisplay_days"] = "Enter a whole number of days."
        else:
            definition["redisplay_days"] = number
    form.questions = _ordered_questions(posted)
    questions = []
    for i, question in enumerate(form.questions):
        questions.append(_question(question, f"questions.{i}", errors))
    definition["questions"] = questions
    return form, definition, errors


def _ordered_questions(posted: MultiDict[str, str]) -> list[QuestionForm]:
    """The filled-in, not removed question fieldsets in the order asked for: JavaScript moves the
    fieldsets themselves; without it, a changed position number moves that question there."""
    slots: list[int] = []
    for name in posted:
        match = SLOT_FIELD.match(name)
        if match and int(match.group(1)) not in slots and len(slots) < MAX_SLOTS:
            slots.append(int(match.group(1)))
    staying: list[QuestionForm] = []
    moving: list[tuple[int, int, QuestionForm]] = []
    for rank, slot in enumerate(slots, start=1):
        question = QuestionForm(
            key=posted.get(f"q-{slot}-key", "").strip(),
            kind=posted.get(f"q-{slot}-kind", "").strip(),
            title=posted.get(f"q-{slot}-title", "").strip(),
            help=_newlines(posted.get(f"q-{slot}-help", "")).strip(),
            required=posted.get(f"q-{slot}-required") == "on",
            max=posted.get(f"q-{slot}-max", "").strip(),
            max_length=posted.get(f"q-{slot}-max_length", "").strip(),
            options=_newlines(posted.get(f"q-{slot}-options", "")).strip(),
            show_if=_newlines(posted.get(f"q-{slot}-show_if", "")).strip(),
        )
        if question.blank or posted.get(f"q-{slot}-remove") == "on":
            continue
        position = _whole_number(posted.get(f"q-{slot}-position", "").strip())
        if position is None or position == rank:
            staying.append(question)
        else:
            moving.append((position, rank, question))
    for position, _rank, question in sorted(moving, key=lambda m: (m[0], m[1])):
        staying.insert(min(max(position, 1), len(staying) + 1) - 1, question)
    return staying


def _question(question: QuestionForm, path: str, errors: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {"key": question.key, "kind": question.kind, "title": question.title}
    if question.help:
        parsed["help"] = question.help
    if question.required:
        parsed["required"] = True
    for name in ("max", "max_length"):
        typed = getattr(question, name)
        if typed:
            number = _whole_number(typed)
            if number is None:
                errors[f"{path}.{name}"] = "Enter a whole number."
            else:
                parsed[name] = number
    if question.options:
        options = []
        for line_number, line in enumerate(question.options.splitlines(), start=1):
            if not line.strip():
                continue
            value, bar, label = line.partition("|")
            value, label = value.strip(), (label.strip() if bar else value.strip())
            if not value or not label:
                errors[f"{path}.options"] = f"Line {line_number}: write each option as value|label."
                break
            options.append({"value": value, "label": label})
        parsed["options"] = options
    if question.show_if:
        try:
            parsed["show_if"] = authoring.condition_from_json(question.show_if)
        except ValueError as exc:
            errors[f"{path}.show_if"] = f"Not valid JSON ({exc})."
    return parsed


def _error_summary(errors: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every error with a label a person recognises: ("Question 2 · Options", "...")."""
    summary = []
    for name, message in errors.items():
        parts = name.split(".")
        if parts[0] == "questions" and len(parts) >= 2 and parts[1].isdigit():
            label = f"Question {int(parts[1]) + 1}"
            rest = ".".join(parts[2:])
            if rest:
                label += f" · {FIELD_LABELS.get(parts[2], rest)}"
        else:
            label = FIELD_LABELS.get(parts[0], name)
            if len(parts) > 1:
                label += f" · {'.'.join(parts[1:])}"
        summary.append((label, message))
    return summary


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


def _whole_number(text: str) -> int | None:
    if not re.fullmatch(r"-?\d{1,9}", text):
        return None
    return int(text)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _text(value: Any) -> str:
    return "" if value is None else str(value)
