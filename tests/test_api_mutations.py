"""Real request bodies of API v1, each posted back many times with one to three parts replaced by
something else JSON can say (a NUL, a huge number, a wrong type, a dropped key): a 2xx or a 4xx
problem, never a 5xx. The bodies are the ones a client would start from (a content item as read, a
campaign's draft, the playbook's rules, an event, an account). This found an action type given as
an object and a condition the facts break in /rules/evaluate, each a 500 until fixed."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

ROUNDS = 60  # mutations per body; the seed is fixed, so CI meets the same cases every run
LEAVES: list[Any] = [None, True, 0, -1, 2**40, 10**30, 1.5, "", "x", "a\x00b", "x" * 5000, "2030-02-30"]
LEAVES += ["1999-01-01", [], {}, [1, "a"], {"a": 1}, {"var": "x"}, {"==": [1]}, ["x"], "email", "in_app"]


def _places(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _places(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _places(value, (*prefix, i))


def mutations(doc: Any, seed: int, rounds: int = ROUNDS) -> Iterator[Any]:
    rnd = random.Random(seed)
    for _ in range(rounds):
        changed = copy.deepcopy(doc)
        places = list(_places(changed))
        for place in rnd.sample(places, min(len(places), rnd.randint(1, 3))):
            parent = changed
            try:
                for step in place[:-1]:
                    parent = parent[step]
                if isinstance(parent, dict) != isinstance(place[-1], str):
                    continue  # the place is gone: an earlier change replaced a list or an object
                if isinstance(parent, dict) and rnd.random() < 0.15:
                    del parent[place[-1]]
                else:
                    parent[place[-1]] = copy.deepcopy(rnd.choice(LEAVES))
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change replaced the parent
        yield changed


def _send(client: FlaskClient, method: str, url: str, body: Any, **headers: str) -> None:
    response = client.open(url, method=method, json=body, headers=headers)
    assert response.status_code < 500, (method, url, body, response.get_data(as_text=True)[:500])
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json", (method, url, response.status_code)


@pytest.mark.slow
def test_mutated_bodies_get_an_answer_not_a_500(api_client: FlaskClient, recruiting: dict[str, int]) -> None:
    client = api_client
    item = client.get("/api/v1/content").get_json()["items"][0]
    content = client.get(f"/api/v1/content/{item['key']}").get_json()
    for i, body in enumerate(mutations(content, 1)):
        _send(client, "PUT", f"/api/v1/content/{item['key']}", body)
        if isinstance(body, dict):
            _send(client, "POST", "/api/v1/content", {**body, "key": f"mutated-{i}"})

    key = client.get("/api/v1/campaigns").get_json()["campaigns"][0]["key"]
    draft = client.get(f"/api/v1/campaigns/{key}/draft")
    for body in mutations(draft.get_json()["document"], 2):
        etag = client.get(f"/api/v1/campaigns/{key}/draft").headers["ETag"]
        _send(client, "PUT", f"/api/v1/campaigns/{key}/draft", body, **{"If-Match": etag})

    assert client.post("/api/v1/rulesets", json={}).status_code in (200, 201)
    rules = client.get("/api/v1/rulesets/draft").get_json()["rules"]
    shapes = [{k: v for k, v in rule.items() if k not in ("id", "revision")} for rule in rules]
    for body in mutations(shapes[0], 3):
        _send(client, "POST", "/api/v1/rulesets/draft/rules", body)
    for body in mutations({"rules": shapes}, 4):
        _send(client, "PUT", "/api/v1/rulesets/draft/rules", body)
    for body in mutations({"condition": shapes[-1]["condition"], "facts": {"outcomes": ["hire_faster"]}}, 5):
        _send(client, "POST", "/api/v1/rules/evaluate", body)

    account = {"name": "Mutant", "segment": "smb", "traits": {"seats": 5}}
    account["contacts"] = [{"email": "m@mutant.example", "name": "M", "role": "champion"}]
    for body in mutations(account, 6):
        _send(client, "PUT", "/api/v1/accounts/mutant", body)
    event = {"account": "mutant", "type": "job_posted", "timestamp": "2026-11-01T00:00:00Z", "id": "e-1"}
    for body in mutations({"events": [{**event, "properties": {"n": 1}}]}, 7):
        _send(client, "POST", "/api/v1/events", body)
