"""Survey authoring: one draft per survey, validated, published as the next immutable version.

A draft is a SurveyVersion whose `published_at` is NULL. Publishing stamps it, so the draft row
becomes version N+1; published rows are never changed, and responses keep the version they
answered. Every write carries the revision marker the editor started from: a stale one is refused
(`StaleEdit`) instead of silently overwriting someone else's change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from engine.errors import Conflict, NotFound, ValidationFailed
from surveys.models import Response, Survey, SurveyVersion
from surveys.schemas import SurveyDefinitionSchema

# Survey and question fields in the order people read them (JSONB keeps its own key order).
SURVEY_FIELDS = ("key", "title", "anonymous", "intro", "redisplay_days", "strings", "questions")
QUESTION_FIELDS = ("key", "kind", "title", "help", "required", "max", "max_length", "options", "show_if")
# Values equal to the schema's defaults are left out of a stored definition, so a definition
# written in a playbook and the same one saved from the admin form compare equal.
SURVEY_DEFAULTS: dict[str, Any] = {"anonymous": False, "intro": "", "redisplay_days": 30, "strings": {}}
QUESTION_DEFAULTS: dict[str, Any] = {
    "help": "",
    "required": False,
    "max": None,
    "max_length": 500,
    "options": [],
    "show_if": None,
}


class StaleEdit(Conflict):
    """The survey changed (a draft saved, a version published) since the editor loaded it."""

    title = "Edited by someone else"


@dataclass(frozen=True)
class SurveySummary:
    key: str
    title: str
    latest_published: int | None
    draft_pending: bool
    responses: int


@dataclass(frozen=True)
class VersionSummary:
    version: int
    published_at: dt.datetime | None
    responses: int

    @property
    def is_draft(self) -> bool:
        return self.published_at is None


def survey_summaries(session: Session) -> list[SurveySummary]:
    surveys = session.scalars(select(Survey).options(selectinload(Survey.versions)).order_by(Survey.key))
    counts: dict[int, int] = {
        survey_id: int(n)
        for survey_id, n in session.execute(
            select(SurveyVersion.survey_id, func.count(Response.id))
            .join(Response, Response.survey_version_id == SurveyVersion.id)
            .group_by(SurveyVersion.survey_id)
        )
    }
    summaries = []
    for survey in surveys:
        latest = survey.latest_published
        summaries.append(
            SurveySummary(
                key=survey.key,
                title=survey.title,
                latest_published=latest.version if latest else None,
                draft_pending=draft_of(survey) is not None,
                responses=counts.get(survey.id, 0),
            )
        )
    return summaries


def version_history(session: Session, survey: Survey) -> list[VersionSummary]:
    """Newest first: the draft (if any), then every published version with its response count."""
    counts: dict[int, int] = {
        version_id: int(n)
        for version_id, n in session.execute(
            select(Response.survey_version_id, func.count(Response.id))
            .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
            .where(SurveyVersion.survey_id == survey.id)
            .group_by(Response.survey_version_id)
        )
    }
    ordered = sorted(survey.versions, key=lambda v: (v.published_at is None, v.version), reverse=True)
    return [VersionSummary(v.version, v.published_at, counts.get(v.id, 0)) for v in ordered]


def draft_of(survey: Survey) -> SurveyVersion | None:
    return next((v for v in survey.versions if v.published_at is None), None)


def working_definition(survey: Survey) -> dict[str, Any]:
    """What an editor starts from: the draft if there is one, else the latest published version."""
    current = draft_of(survey) or survey.latest_published
    if current is None:
        return {"key": survey.key, "title": survey.title, "questions": []}
    return _sparse_or_none(current.definition) or ordered_definition(current.definition)


def revision_marker(survey: Survey) -> str:
    """Changes whenever the draft's content or the latest published version changes."""
    latest = survey.latest_published
    draft = draft_of(survey)
    digest = "none"
    if draft is not None:
        canonical = json.dumps(draft.definition, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return f"{latest.version if latest else 0}.{draft.version if draft else 0}.{digest}"


def validate_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition checked by `SurveyDefinitionSchema`, defaults left out, fields in reading
    order; or ValidationFailed mapping dotted paths (`questions.2.options`) to messages."""
    unstorable = _unstorable_text(definition, "")
    if unstorable:
        raise ValidationFailed(unstorable)
    try:
        loaded = SurveyDefinitionSchema().load(dict(definition))
    except ValidationError as exc:
        raise ValidationFailed(_flatten(exc.messages)) from None
    return _sparse(loaded)


def definition_from_json(text: str) -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity, finite numbers) that is an object, or ValidationFailed."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValidationFailed({"json": "the JSON is nested too deeply"}) from None
    except ValueError as exc:
        raise ValidationFailed({"json": f"not valid JSON: {exc}"}) from None
    if not isinstance(value, dict):
        raise ValidationFailed({"json": "the definition must be a JSON object"})
    return value


def condition_from_json(text: str) -> Any:
    """A `show_if` condition typed as JSON (checked later by the schema); ValueError if not JSON."""
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def definition_json(definition: Mapping[str, Any]) -> str:
    return json.dumps(ordered_definition(definition), indent=2, ensure_ascii=False)


def ordered_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    ordered = _in_order(definition, SURVEY_FIELDS)
    if isinstance(ordered.get("questions"), list):
        ordered["questions"] = [
            _in_order(q, QUESTION_FIELDS) if isinstance(q, Mapping) else q for q in ordered["questions"]
        ]
    return ordered


def create_survey(session: Session, definition: Mapping[str, Any], *, now: dt.datetime) -> Survey:
    """A new, unpublished survey holding `definition` as its draft."""
    clean = validate_definition(definition)
    if session.scalar(select(Survey.id).where(Survey.key == clean["key"])) is not None:
        raise ValidationFailed({"key": f"a survey with the key {clean['key']!r} already exists"})
    survey = Survey(
        key=clean["key"],
        title=clean["title"],
        anonymous=bool(clean.get("anonymous", False)),
        redisplay_days=int(clean.get("redisplay_days", 30)),
        created_at=now,
    )
    survey.versions.append(SurveyVersion(version=1, definition=clean, published_at=None))
    session.add(survey)
    session.flush()
    return survey


def save_draft(
    session: Session, key: str, definition: Mapping[str, Any], *, expected: str
) -> SurveyVersion | None:
    """Store `definition` as the survey's one draft (overwriting it). None when it equals the
    latest published version: there is nothing to publish, so any draft is dropped."""
    clean = validate_definition(definition)
    if clean["key"] != key:
        raise ValidationFailed({"key": "a survey's key cannot change; create a new survey instead"})
    survey = _locked_survey(session, key, expected)
    draft = draft_of(survey)
    latest = survey.latest_published
    if latest is not None and _sparse_or_none(latest.definition) == clean:
        if draft is not None:
            survey.versions.remove(draft)
            session.flush()
        return None
    if draft is None:
        draft = SurveyVersion(version=_next_number(survey), definition=clean, published_at=None)
        survey.versions.append(draft)
    else:
        draft.definition = clean
    if latest is None:  # never published: the list shows the draft's title
        survey.title = clean["title"]
    session.flush()
    return draft


def publish_draft(session: Session, key: str, *, expected: str, now: dt.datetime) -> SurveyVersion:
    """Turn the draft into the next published version; the survey's settings follow it."""
    survey = _locked_survey(session, key, expected)
    draft = draft_of(survey)
    if draft is None:
        raise Conflict(f"survey {key!r} has no draft to publish")
    latest = survey.latest_published
    if latest is not None and _sparse_or_none(latest.definition) == _sparse_or_none(draft.definition):
        survey.versions.remove(draft)
        session.flush()
        return latest
    draft.version = next_version_number(survey)
    draft.published_at = now
    definition = draft.definition
    survey.title = definition["title"]
    survey.anonymous = bool(definition.get("anonymous", False))
    survey.redisplay_days = int(definition.get("redisplay_days", 30))
    session.flush()
    # `versions` is ordered by number when loaded; keep it so for `latest_published` in this session.
    survey.versions.sort(key=lambda v: v.version)
    return draft


def next_version_number(survey: Survey) -> int:
    """The number the draft gets when it is published."""
    draft = draft_of(survey)
    latest = survey.latest_published
    # A playbook import may have published past the draft's number since it was created.
    if draft is not None and (latest is None or draft.version > latest.version):
        return draft.version
    return (latest.version if latest else 0) + 1


def discard_draft(session: Session, key: str, *, expected: str) -> None:
    survey = _locked_survey(session, key, expected)
    draft = draft_of(survey)
    if draft is not None:
        survey.versions.remove(draft)
        session.flush()


def find_version(survey: Survey, number: int | None) -> SurveyVersion:
    """Version `number`, or (None) the draft if there is one, else the latest published version."""
    if number is None:
        found = draft_of(survey) or survey.latest_published
    else:
        found = next((v for v in survey.versions if v.version == number), None)
    if found is None:
        raise NotFound(f"survey {survey.key!r} has no version {number}" if number else "nothing to show")
    return found


def _locked_survey(session: Session, key: str, expected: str) -> Survey:
    # FOR UPDATE serialises two editors saving at the same moment; the second sees the first's
    # draft and so a different marker.
    survey = session.scalar(
        select(Survey)
        .where(Survey.key == key)
        .options(selectinload(Survey.versions))
        .with_for_update(of=Survey)
        .execution_options(populate_existing=True)
    )
    if survey is None:
        raise NotFound(f"no survey {key!r}")
    if revision_marker(survey) != expected:
        raise StaleEdit(f"survey {key!r} was changed by someone else since you opened it")
    return survey


def _next_number(survey: Survey) -> int:
    return max((v.version for v in survey.versions), default=0) + 1


def _sparse_or_none(definition: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return validate_definition(definition)
    except ValidationFailed:
        return None  # an old definition the schema no longer accepts differs from any valid one


def _sparse(loaded: Mapping[str, Any]) -> dict[str, Any]:
    survey = {k: v for k, v in loaded.items() if k not in SURVEY_DEFAULTS or v != SURVEY_DEFAULTS[k]}
    survey["questions"] = [
        {k: v for k, v in q.items() if k not in QUESTION_DEFAULTS or v != QUESTION_DEFAULTS[k]}
        for q in loaded["questions"]
    ]
    return ordered_definition(survey)


def _in_order(mapping: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    known = {k: mapping[k] for k in order if k in mapping}
    known.update({k: v for k, v in mapping.items() if k not in known})
    return known


def _flatten(messages: Any, path: str = "") -> dict[str, str]:
    """marshmallow's nested messages as {"questions.1.options": "..."}."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {path or "definition": " ".join(messages)}
    if isinstance(messages, list):
        messages = dict(enumerate(messages))
    if not isinstance(messages, dict):
        return {path or "definition": str(messages)}
    flat: dict[str, str] = {}
    for key, inner in messages.items():
        child = path if key == "_schema" else f"{path}.{key}" if path else str(key)
        for name, message in _flatten(inner, child).items():
            flat[name] = f"{flat[name]} {message}" if name in flat else message
    return flat


def _unstorable_text(value: Any, path: str) -> dict[str, str]:
    """Strings PostgreSQL refuses (NUL, lone surrogates) would only fail at commit, as a 500."""
    pending: list[tuple[Any, str]] = [(value, path)]
    found: dict[str, str] = {}
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if "\x00" in item or not _encodable(item):
                found[where or "definition"] = (
                    "contains a character that cannot be stored (NUL or a lone surrogate)"
                )
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                child = f"{where}.{key}" if where else str(key)
                pending.append((key, child))
                pending.append((inner, child))
        elif isinstance(item, list):
            pending.extend((inner, f"{where}.{i}" if where else str(i)) for i, inner in enumerate(item))
    return found


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value
