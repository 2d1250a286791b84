"""The content API (token auth): search, get with locale fallback, create, update; bad input is a
problem+json naming the field."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

ITEM = {
    "key": "api-guide",
    "kind": "article",
    "title": "API guide",
    "url": "https://help.example/api-guide",
    "minutes": 4,
    "tags": {"outcomes": ["hire_faster"], "milestones": ["first_job_posted"], "roles": ["champion"]},
}


def test_create_get_update_and_search(recruiting: object, api_client: FlaskClient) -> None:
    created = api_client.post("/api/v1/content", json=ITEM)
    assert created.status_code == 201, created.json
    assert created.headers["Location"].endswith("/api/v1/content/api-guide?locale=en")
    german = api_client.post("/api/v1/content", json={**ITEM, "locale": "de", "title": "API-Anleitung"})
    assert german.status_code == 201
    assert api_client.get("/api/v1/content/api-guide?locale=de-AT").json["title"] == "API-Anleitung"
    assert api_client.get("/api/v1/content/api-guide?locale=fr").json["title"] == "API guide"
    updated = api_client.put(
        "/api/v1/content/api-guide", json={**ITEM, "title": "API guide, v2", "body": "**b**"}
    )
    assert updated.status_code == 200 and updated.json["body_html"] == "<p><strong>b</strong></p>\n"
    found = api_client.get("/api/v1/content?q=v2&milestone=first_job_posted").json
    assert [i["key"] for i in found["items"]] == ["api-guide"] and found["total"] == 1
    paged = api_client.get("/api/v1/content?per_page=2").json
    assert len(paged["items"]) == 2 and paged["next"].endswith("page=2") and paged["total"] > 10


def test_bad_input_is_a_problem_naming_the_field(recruiting: object, api_client: FlaskClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({**ITEM, "kind": "podcast"}, "kind"),
        ({**ITEM, "url": "javascript:alert(1)"}, "url"),
        ({**ITEM, "body": "<script>alert(1)</script>"}, "body"),
        ({**ITEM, "tags": {"milestones": ["moon_landing"]}}, "tags.milestones"),
        ({**ITEM, "tags": {"stages": ["winter"]}}, "tags.stages.0"),
        ({**ITEM, "locale": "english please"}, "locale"),
        ({**ITEM, "minutes": 0}, "minutes"),
    ]
    for body, field in cases:
        response = api_client.post("/api/v1/content", json=body)
        assert response.status_code == 422, (field, response.json)
        assert response.mimetype == "application/problem+json"
        assert field in response.json["errors"], (field, response.json)
    assert api_client.post("/api/v1/content", json=ITEM).status_code == 201
    assert api_client.post("/api/v1/content", json=ITEM).status_code == 409
    assert api_client.put("/api/v1/content/nope", json=ITEM).status_code == 404
    assert api_client.get("/api/v1/content?per_page=1000").status_code == 422
    assert api_client.get("/api/v1/content?kind=podcast").status_code == 422
    assert api_client.get("/api/v1/content/api-guide?locale=%00").status_code == 422


def test_the_content_api_needs_a_token_and_is_documented(client: FlaskClient) -> None:
    response = client.get("/api/v1/content")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/content"]) and {"get", "put"} <= set(
        paths["/api/v1/content/{key}"]
    )
