"""The survey as pages for a server-rendered, no-JavaScript form, and answers kept consistent between them.

Outcomes, objectives and key results each get a page of their own (each page's choices depend on
the previous one); the other questions share pages, split where a `show_if` reads an answer given
on the same page, because without JavaScript a question can only appear after that answer is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.library import objectives_by_key
from engine.rules.logic import holds
from surveys.models import Response, ResponseStatus, Survey, SurveyVersion

OWN_PAGE_KINDS = ("outcome_pick", "objective_pick", "key_result")


@dataclass(frozen=True)
class Page:
    """Questions shown together; `key` (the first question's key) names the page in URLs."""

    key: str
    questions: tuple[dict[str, Any], ...]


def pages(questions: list[dict[str, Any]]) -> list[Page]:
    found: list[Page] = []
    current: list[dict[str, Any]] = []
    group = ""
    for question in questions:
        kind = question["kind"] if question["kind"] in OWN_PAGE_KINDS else "other"
        reads = _answers_read(question.get("show_if")) & {q["key"] for q in current}
        if current and (kind != group or kind in OWN_PAGE_KINDS or reads):
            found.append(Page(current[0]["key"], tuple(current)))
            current = []
        current.append(question)
        group = kind
    if current:
        found.append(Page(current[0]["key"], tuple(current)))
    return found


def _answers_read(logic: Any) -> set[str]:
    """Question keys a JSON Logic condition reads as `answers.<key>`."""
    found: set[str] = set()
    pending = [logic]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for operator, argument in node.items():
                if operator == "var":
                    name = argument[0] if isinstance(argument, list) and argument else argument
                    if isinstance(name, str) and name.startswith("answers."):
                        found.add(name.split(".")[1])
                else:
                    pending.append(argument)
        elif isinstance(node, list):
            pending.extend(node)
    return found


def chosen(questions: list[dict[str, Any]], answers: dict[str, Any], kind: str) -> list[str]:
    """Every key picked by questions of `kind` (outcome_pick, objective_pick), in order."""
    picked: list[str] = []
    for question in questions:
        value = answers.get(question["key"])
        if question["kind"] == kind and isinstance(value, list):
            picked.extend(v for v in value if isinstance(v, str) and v not in picked)
    return picked


def visible_keys(questions: list[dict[str, Any]], answers: dict[str, Any]) -> set[str]:
    """Questions whose `show_if` holds, judged as surveys.answers does: on the answers before them."""
    shown: set[str] = set()
    earlier: dict[str, Any] = {}
    for question in questions:
        if question.get("show_if") and not holds(question["show_if"], {"answers": earlier}):
            continue
        shown.add(question["key"])
        if question["key"] in answers:
            earlier[question["key"]] = answers[question["key"]]
    return shown


def page_questions(
    questions: list[dict[str, Any]], page: Page, answers: dict[str, Any]
) -> list[dict[str, Any]]:
    """The page's questions a respondent can answer now (objectives need outcomes, and so on)."""
    shown = visible_keys(questions, answers)
    outcomes = chosen(questions, answers, "outcome_pick")
    objectives = chosen(questions, answers, "objective_pick")
    return [
        q
        for q in page.questions
        if q["key"] in shown
        and (q["kind"] != "objective_pick" or outcomes)
        and (q["kind"] != "key_result" or objectives)
    ]


def visible_pages(questions: list[dict[str, Any]], answers: dict[str, Any]) -> list[Page]:
    return [p for p in pages(questions) if page_questions(questions, p, answers)]


def expected_pages(
    questions: list[dict[str, Any]], answers: dict[str, Any], current: str | None = None
) -> list[Page]:
    """The pages to count in "Step n of N": those a `show_if` hides are left out, those whose choices
    wait on an earlier answer (objectives wait on outcomes) are counted.

    With `current` (the key of the page the respondent is on), a page a `show_if` hides still counts
    while an answer it reads is still to come, so that N never grows as the respondent goes on
    ("Step 3 of 4" then "Step 4 of 5" reads as the survey getting longer); it may shrink."""
    shown = visible_keys(questions, answers)
    if current is not None:
        shown |= _undecided_keys(questions, answers, current)
    return [p for p in pages(questions) if any(q["key"] in shown for q in p.questions)]


def _undecided_keys(questions: list[dict[str, Any]], answers: dict[str, Any], current: str) -> set[str]:
    """Questions whose `show_if` reads an earlier question on page `current`, or on a later page and
    not answered yet: their answer can still change whether the question shows."""
    page_of = {q["key"]: n for n, p in enumerate(pages(questions)) for q in p.questions}
    order = {q["key"]: n for n, q in enumerate(questions)}
    here = page_of.get(current, 0)
    return {
        q["key"]
        for q in questions
        if any(
            order[key] < order[q["key"]]
            and (page_of[key] == here or (page_of[key] > here and key not in answers))
            for key in _answers_read(q.get("show_if")) & order.keys()
        )
    }


def resume_page(questions: list[dict[str, Any]], answers: dict[str, Any]) -> Page:
    """The page after the last one with an answer (the first page for a fresh response)."""
    shown = visible_pages(questions, answers) or pages(questions)
    answered = [i for i, p in enumerate(shown) if any(q["key"] in answers for q in p.questions)]
    if not answered:
        return shown[0]
    return shown[min(answered[-1] + 1, len(shown) - 1)]


def consistent_answers(
    session: Session, questions: list[dict[str, Any]], answers: dict[str, Any]
) -> dict[str, Any]:
    """Drop what an earlier page's change made stale: objectives no longer under a chosen outcome,
    key results of objectives no longer chosen, answers to questions now hidden."""
    library = objectives_by_key(session)
    outcomes = set(chosen(questions, answers, "outcome_pick"))
    kept = dict(answers)
    for question in questions:
        key = question["key"]
        value = kept.get(key)
        if question["kind"] == "objective_pick" and isinstance(value, list):
            kept[key] = [
                v for v in value if isinstance(v, str) and v in library and library[v].outcome_key in outcomes
            ]
    objectives = set(chosen(questions, kept, "objective_pick"))
    for question in questions:
        key = question["key"]
        value = kept.get(key)
        if question["kind"] == "key_result" and isinstance(value, dict):
            kept[key] = {k: v for k, v in value.items() if k in objectives}
    shown = visible_keys(questions, kept)
    return {k: v for k, v in kept.items() if k in shown and v not in ([], {}, None, "")}


def find_response(
    session: Session, survey: Survey, *, contact_id: int | None, client_response_id: str
) -> Response | None:
    """The respondent's response to resume or thank for: a completed one wins over a partial one.

    A contact's partial response from another channel (the widget) is resumed too."""
    if contact_id is None:
        return session.scalar(select(Response).where(Response.client_response_id == client_response_id))
    responses = session.scalars(
        select(Response)
        .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
        .where(SurveyVersion.survey_id == survey.id, Response.contact_id == contact_id)
        .order_by(Response.id.desc())
    ).all()
    completed = next((r for r in responses if r.status == ResponseStatus.COMPLETED), None)
    return completed or next(iter(responses), None)
