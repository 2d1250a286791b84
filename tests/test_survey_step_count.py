"""The hosted survey's "Step n of N" (surveys.hosted.expected_pages): N never grows as the respondent
goes on. A page a `show_if` hides counts while an answer it reads is still to come, and stops
counting once that answer is behind the respondent and hides it. The same rule in the widget, and
both in a browser: tests/browser/test_widget_layout.py, tests/browser/test_hosted_survey.py."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from surveys.hosted import Page, expected_pages, pages, visible_pages
from tests.factories import outcomes_answers
from tests.test_survey_tokens import RECRUITING

QUESTIONS: list[dict[str, Any]] = next(
    s["questions"] for s in yaml.safe_load(RECRUITING)["surveys"] if s["key"] == "outcomes"
)
LOW_SCORE_ASKS_WHY = {"and": [{"!==": [{"var": "answers.nps"}, None]}, {"<=": [{"var": "answers.nps"}, 6]}]}


def counted(questions: list[dict[str, Any]], answers: dict[str, Any], current: str) -> list[str]:
    return [p.key for p in expected_pages(questions, answers, current)]


def walk(questions: list[dict[str, Any]], answers: dict[str, Any]) -> list[tuple[int, int]]:
    """(n, N) on each page a respondent giving `answers` sees, page by page, as the hosted page says it."""
    seen: list[tuple[int, int]] = []
    given: dict[str, Any] = {}
    page: Page | None = pages(questions)[0]
    while page is not None:
        keys = counted(questions, given, page.key)
        seen.append((keys.index(page.key) + 1, len(keys)))
        given.update({q["key"]: answers[q["key"]] for q in page.questions if q["key"] in answers})
        order = [p.key for p in pages(questions)]
        page = next(
            (p for p in visible_pages(questions, given) if order.index(p.key) > order.index(page.key)), None
        )
    return seen


def test_the_recruiting_follow_up_is_counted_from_the_first_page() -> None:
    assert [p.key for p in pages(QUESTIONS)] == ["outcomes", "objectives", "key_results", "role", "comment"]
    assert counted(QUESTIONS, {}, "outcomes") == ["outcomes", "objectives", "key_results", "role", "comment"]
    # Without a current page, only what shows now: the count the "Submit" button goes by.
    assert [p.key for p in expected_pages(QUESTIONS, {})] == ["outcomes", "objectives", "key_results", "role"]


def test_a_low_score_keeps_the_count_it_had() -> None:
    low = {**outcomes_answers(), "role": "leader", "nps": 3, "comment": "Nobody owns the careers page."}
    assert walk(QUESTIONS, low) == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize("score", range(11))
def test_the_count_never_grows_whatever_the_score(score: int) -> None:
    seen = walk(QUESTIONS, {**outcomes_answers(), "role": "exec", "nps": score, "comment": "Too slow."})
    totals = [total for _, total in seen]
    assert totals == sorted(totals, reverse=True), seen
    assert seen[-1][0] == len(seen)  # the last page is numbered as the pages really seen


# A page before the score, the score, its follow-up, and a page after it (an outcome_pick, so a
# page of its own): [goal] [nps] [why] [size].
AROUND_THE_FOLLOW_UP: list[dict[str, Any]] = [
    {"key": "goal", "kind": "outcome_pick", "title": "Goal?"},
    {"key": "nps", "kind": "nps", "title": "Recommend us?"},
    {"key": "why", "kind": "text", "title": "What should we fix first?", "show_if": LOW_SCORE_ASKS_WHY},
    {"key": "size", "kind": "outcome_pick", "title": "Team size?"},
]


def test_the_follow_up_counts_while_its_score_is_ahead_or_current() -> None:
    questions = AROUND_THE_FOLLOW_UP
    assert [p.key for p in pages(questions)] == ["goal", "nps", "why", "size"]
    assert counted(questions, {}, "goal") == ["goal", "nps", "why", "size"]
    assert counted(questions, {"goal": ["x"]}, "nps") == ["goal", "nps", "why", "size"]
    # Back on the score's page with a high score saved: it can still change, so it still counts.
    assert counted(questions, {"goal": ["x"], "nps": 9}, "nps") == ["goal", "nps", "why", "size"]


def test_once_the_score_is_behind_the_follow_up_counts_only_if_it_shows() -> None:
    questions = AROUND_THE_FOLLOW_UP
    assert counted(questions, {"goal": ["x"], "nps": 9}, "size") == ["goal", "nps", "size"]  # shrinks
    assert counted(questions, {"goal": ["x"], "nps": 3}, "size") == ["goal", "nps", "why", "size"]
    assert counted(questions, {"goal": ["x"]}, "size") == ["goal", "nps", "size"]  # score skipped


def test_a_score_already_given_decides_when_going_back() -> None:
    assert counted(AROUND_THE_FOLLOW_UP, {"goal": ["x"], "nps": 9}, "goal") == ["goal", "nps", "size"]


def test_a_condition_on_a_later_question_never_waits_on_it() -> None:
    questions = [
        {"key": "why", "kind": "text", "title": "What should we fix first?", "show_if": LOW_SCORE_ASKS_WHY},
        {"key": "nps", "kind": "outcome_pick", "title": "Recommend us?"},
    ]
    # Conditions are judged on the answers before their question: a later answer cannot show it.
    assert counted(questions, {}, "nps") == ["nps"]
