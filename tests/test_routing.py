"""Row ids in URLs: `<int:…>` matches only what a PostgreSQL `integer` id can be (web.converters)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter

from engine.db import MAX_ID


def _int_routes(app: Flask) -> list[tuple[str, str, list[str]]]:
    found = []
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if ints:
            methods = sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
            found.append((rule.rule, rule.endpoint, methods))
    return found


def test_every_id_route_refuses_an_id_no_row_can_have(
    app: Flask, client: FlaskClient, auth: dict[str, Any]
) -> None:
    """2**31 used to reach the database from the routes that did not check it themselves, which
    failed the query ("integer out of range"): a 500 instead of a 404."""
    routes = _int_routes(app)
    assert len(routes) > 30
    for rule, endpoint, methods in routes:
        for too_big in (MAX_ID + 1, 10**30):
            path = rule
            for part in rule.split("<")[1:]:
                spec = part.split(">", 1)[0]
                path = path.replace(f"<{spec}>", str(too_big) if spec.startswith("int:") else "clicked")
            for method in methods:
                response = client.open(path, method=method, headers=auth)
                # 405 where werkzeug's matcher checks the method before the converter (the path's
                # other rules: GET of the same URL), else 404; never the database's error
                assert response.status_code in (404, 405), (endpoint, method, path, response.status_code)


def test_the_largest_id_still_routes(client: FlaskClient, auth: dict[str, Any]) -> None:
    """Up to the limit an id reaches its view, which says there is no such row."""
    for contact_id in (MAX_ID, 0):
        response = client.get(f"/api/v1/contacts/{contact_id}/export", headers=auth)
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["detail"] != "The requested URL was not found on the server."
