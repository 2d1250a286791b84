"""Survey answers with parts replaced by anything JSON can say (hypothesis): the response endpoint
answers 2xx or a 4xx problem, never a 5xx, and a refused response leaves nothing behind. Written
after a list given for a single choice failed the option lookup (unhashable) as a 500."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from engine.db import Database
from surveys.models import Response
from tests.factories import outcomes_answers

URL = "/api/v1/surveys/outcomes/responses"
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2030-01-01", "1999-12-31", "2030-02-30", "1e400", "hire_faster", "leader"]),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)
PLACES = [
    ("outcomes",),
    ("outcomes", 0),
    ("objectives",),
    ("objectives", 0),
    ("key_results",),
    ("key_results", "careers_site_traffic"),
    ("key_results", "careers_site_traffic", "baseline"),
    ("key_results", "careers_site_traffic", "target"),
    ("key_results", "careers_site_traffic", "due_date"),
    ("key_results", "careers_site_traffic", "extra"),
    ("role",),
    ("nps",),
    ("comment",),
    ("unknown",),
]


def _responses(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Response)) or 0


@pytest.mark.slow
@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    changes=st.lists(st.tuples(st.sampled_from(PLACES), LEAF), min_size=1, max_size=3), complete=st.booleans()
)
def test_any_answers_get_an_answer_not_a_500(
    api_client: FlaskClient,
    database: Database,
    acme: str,
    changes: list[tuple[tuple[Any, ...], Any]],
    complete: bool,
) -> None:
    answers: Any = copy.deepcopy(outcomes_answers())
    for place, value in changes:
        target = answers
        try:
            for step in place[:-1]:
                target = target[step]
            if isinstance(target, dict) != isinstance(place[-1], str):
                continue  # an index into an object, a key into a list: the place is gone
            target[place[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # the place is gone (an earlier change replaced its parent)
    before = _responses(database)
    payload = {
        "client_response_id": str(uuid.uuid4()),
        "account": acme,
        "answers": answers,
        "complete": complete,
    }
    response = api_client.post(URL, json=payload)
    assert response.status_code < 500, (answers, response.get_data(as_text=True))
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        assert _responses(database) == before
