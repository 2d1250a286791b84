"""API v1 for rules over HTTP: versions, draft edits, validate, simulate, publish, rollback, evaluate,
and bad input answered with problem+json pointing at the exact field."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from engine.db import Database
from engine.rules.models import RuleSetStatus, published_ruleset
from tests.test_api_accounts import assert_problem

TAG_SMB = {
    "name": "SMB → tag",
    "priority": 500,
    "condition": {"==": [{"var": "account.segment"}, "smb"]},
    "actions": [{"type": "tag_account", "value": "smb"}],
}


def test_token_is_required(client: FlaskClient, recruiting: dict[str, int]) -> None:
    assert_problem(client.get("/api/v1/rulesets"), 401)
    assert_problem(client.post("/api/v1/rules/evaluate", json={"condition": True, "facts": {}}), 401)


def test_the_draft_flow_end_to_end(
    client: FlaskClient, auth: dict[str, Any], database: Database, recruiting: dict[str, int]
) -> None:
    listed = client.get("/api/v1/rulesets", headers=auth).get_json()["rulesets"]
    assert [r["status"] for r in listed] == ["published"]
    live = client.get("/api/v1/rules", headers=auth).get_json()
    assert live["rules"] and live["rules"][0]["priority"] >= live["rules"][-1]["priority"]

    created = client.post("/api/v1/rulesets", json={"note": "tag SMB"}, headers=auth)
    assert created.status_code == 201
    draft = created.get_json()
    assert draft["status"] == "draft" and draft["based_on_version"] == live["version"]
    assert draft["created_by"].startswith("api-token:")
    assert client.post("/api/v1/rulesets", json={}, headers=auth).status_code == 200  # same draft

    version = draft["version"]
    added = client.post(f"/api/v1/rulesets/{version}/rules", json=TAG_SMB, headers=auth)
    assert added.status_code == 201, added.get_json()
    rule_id = added.get_json()["id"]
    changed = client.put(
        f"/api/v1/rulesets/{version}/rules/{rule_id}", json={**TAG_SMB, "priority": 600}, headers=auth
    )
    assert changed.get_json()["priority"] == 600

    report = client.post(f"/api/v1/rulesets/{version}/validate", headers=auth).get_json()
    assert report["ok"] is True and isinstance(report["findings"], list)

    client.put("/api/v1/accounts/small-co", json={"name": "Small Co", "segment": "smb"}, headers=auth)
    sim = client.post(f"/api/v1/rulesets/{version}/simulate", json={"sample": "all"}, headers=auth)
    assert sim.status_code == 200, sim.get_json()
    body = sim.get_json()
    assert body["accounts_evaluated"] == 1 and body["accounts_changed"] == 1
    assert {"effect": "tag_account:smb", "before": 0, "after": 1, "gained": 1, "lost": 0} in body["effects"]

    published = client.post(f"/api/v1/rulesets/{version}/publish", json={"note": "go"}, headers=auth)
    assert published.status_code == 200 and published.get_json()["status"] == "published"
    with database.transaction() as session:
        live_now = published_ruleset(session)
        assert live_now is not None and live_now.version == version

    # Published versions are immutable.
    assert_problem(client.post(f"/api/v1/rulesets/{version}/rules", json=TAG_SMB, headers=auth), 409)
    back = client.post(f"/api/v1/rulesets/{live['version']}/rollback", headers=auth)
    assert back.status_code == 201 and back.get_json()["based_on_version"] == live["version"]
    statuses = [r["status"] for r in client.get("/api/v1/rulesets", headers=auth).get_json()["rulesets"]]
    assert statuses == ["published", "archived", "archived"]
    with database.transaction() as session:
        assert published_ruleset(session).status is RuleSetStatus.PUBLISHED  # type: ignore[union-attr]


def test_a_put_based_on_an_older_revision_is_refused(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int]
) -> None:
    version = client.post("/api/v1/rulesets", json={}, headers=auth).get_json()["version"]
    added = client.post(f"/api/v1/rulesets/{version}/rules", json=TAG_SMB, headers=auth)
    path = f"/api/v1/rulesets/{version}/rules/{added.get_json()['id']}"
    opened = client.get(path, headers=auth)
    assert opened.headers["ETag"] == '"1"' and opened.get_json()["revision"] == 1
    first = client.put(path, json={**TAG_SMB, "priority": 600}, headers={**auth, "If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    late = client.put(path, json={**TAG_SMB, "priority": 700}, headers={**auth, "If-Match": '"1"'})
    body = assert_problem(late, 412)
    assert "someone else saved rule" in body["detail"]
    assert client.get(path, headers=auth).get_json()["priority"] == 600  # nothing overwritten
    assert_problem(client.put(path, json=TAG_SMB, headers={**auth, "If-Match": "soon"}), 422)
    forced = client.put(path, json={**TAG_SMB, "priority": 700}, headers={**auth, "If-Match": "*"})
    assert forced.status_code == 200 and forced.get_json()["priority"] == 700
    # GET → edit → PUT as is: the read-only id and revision ride along, and the revision counts.
    current = client.get(path, headers=auth).get_json()
    assert client.put(path, json={**current, "priority": 710}, headers=auth).status_code == 200
    body = assert_problem(client.put(path, json={**current, "priority": 720}, headers=auth), 412)
    assert "someone else saved rule" in body["detail"]
    stale_but_forced = client.put(path, json={**current, "priority": 730}, headers={**auth, "If-Match": "*"})
    assert stale_but_forced.status_code == 200 and stale_but_forced.get_json()["priority"] == 730


def test_bad_rules_are_rejected_with_json_pointers(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int]
) -> None:
    version = client.post("/api/v1/rulesets", json={}, headers=auth).get_json()["version"]
    bad = {
        "name": "",
        "priority": "high",
        "condition": {"and": [{"==": [{"var": "account.segmnt"}, "smb"]}, {"nope": [1]}]},
        "actions": [{"type": "create_plan", "template": "ghost"}, {"type": "enroll"}],
        "surprise": 1,
    }
    body = assert_problem(client.post(f"/api/v1/rulesets/{version}/rules", json=bad, headers=auth), 422)
    errors = body["errors"]
    for pointer in ("/name", "/priority", "/surprise", "/actions/0/template", "/actions/1/campaign"):
        assert pointer in errors, (pointer, errors)
    assert any(p.startswith("/condition/and/") for p in errors), errors
    assert_problem(client.post(f"/api/v1/rulesets/{version}/rules", data="{", headers=auth), 400)
    assert_problem(client.put(f"/api/v1/rulesets/{version}/rules", json={"rules": "x"}, headers=auth), 422)
    assert_problem(client.get("/api/v1/rulesets/999", headers=auth), 404)
    assert_problem(client.get("/api/v1/rulesets/%00", headers=auth), 404)
    odd_type = {"name": "Odd", "condition": True, "actions": [{"type": {"==": [1]}}]}
    odd = assert_problem(client.post(f"/api/v1/rulesets/{version}/rules", json=odd_type, headers=auth), 422)
    assert "/actions/0/type" in odd["errors"]  # an unhashable type was a 500
    assert_problem(
        client.post(f"/api/v1/rulesets/{version}/simulate", json={"sample": -1}, headers=auth), 422
    )
    against = client.post(f"/api/v1/rulesets/{version}/simulate", json={"against": 2**31}, headers=auth)
    assert "against" in assert_problem(against, 422)["errors"]
    # Nothing half-written: the draft still holds exactly the copied rules.
    rules = client.get(f"/api/v1/rulesets/{version}", headers=auth).get_json()["rules"]
    assert all(r["name"] for r in rules)


def test_evaluate_returns_value_match_and_reason(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int]
) -> None:
    condition = {
        "and": [{">=": [{"var": "account.traits.seats"}, 10]}, {"in": ["hire_faster", {"var": "outcomes"}]}]
    }
    facts = {"account": {"traits": {"seats": 40}}, "outcomes": ["keep_people"]}
    result = client.post(
        "/api/v1/rules/evaluate", json={"condition": condition, "facts": facts}, headers=auth
    )
    assert result.status_code == 200, result.get_json()
    body = result.get_json()
    assert body["result"] is False and body["matched"] is False
    assert body["reason"]
    ok = client.post(
        "/api/v1/rules/evaluate",
        json={"condition": {"+": [1, {"var": "x"}]}, "facts": {"x": 2}},
        headers=auth,
    ).get_json()
    assert ok["result"] == 3 and ok["matched"] is True
    client.put("/api/v1/accounts/acme", json={"name": "Acme", "traits": {"seats": 12}}, headers=auth)
    real = client.post(
        "/api/v1/rules/evaluate",
        json={"condition": {">": [{"var": "account.traits.seats"}, 10]}, "account": "acme"},
        headers=auth,
    ).get_json()
    assert real["matched"] is True and real["facts"]["account"]["traits"]["seats"] == 12
    # A condition these facts break (comparing a number with an object) does not match, as in a
    # real run, and says why; it was datalogic's EvaluateError as a 500.
    broken = client.post(
        "/api/v1/rules/evaluate",
        json={"condition": {"<=": [1.5, {"var": "x"}]}, "facts": {"x": {}}},
        headers=auth,
    )
    assert broken.status_code == 200, broken.get_data(as_text=True)
    assert broken.get_json()["result"] is None and broken.get_json()["matched"] is False
    assert broken.get_json()["reason"].startswith("condition failed to evaluate")
    # Integers past 64 bits are read as doubles, as a real run reads them (datalogic's ParseError
    # was a 500 here)
    huge = {"condition": {">": [{"var": "x"}, 1]}, "facts": {"x": 10**30}}
    read = client.post("/api/v1/rules/evaluate", json=huge, headers=auth)
    assert read.status_code == 200 and read.get_json()["matched"] is True, read.get_data(as_text=True)
    body = assert_problem(
        client.post("/api/v1/rules/evaluate", json={"condition": {"bogus": []}, "facts": {}}, headers=auth),
        422,
    )
    assert any(p.startswith("/condition") for p in body["errors"])
    unknown = assert_problem(
        client.post(
            "/api/v1/rules/evaluate",
            json={"condition": {"var": "acount.segment"}, "facts": {}, "check_fields": True},
            headers=auth,
        ),
        422,
    )
    assert "/condition/var" in unknown["errors"] or "/condition" in unknown["errors"], unknown["errors"]
    assert_problem(client.post("/api/v1/rules/evaluate", json={"condition": True}, headers=auth), 422)
    assert_problem(
        client.post("/api/v1/rules/evaluate", json={"condition": True, "account": "nobody"}, headers=auth),
        404,
    )


def test_field_catalogue_and_openapi(
    client: FlaskClient, auth: dict[str, Any], recruiting: dict[str, int]
) -> None:
    fields = {f["path"]: f for f in client.get("/api/v1/rules/fields", headers=auth).get_json()["fields"]}
    assert fields["account.segment"]["type"] == "string"
    assert "hire_faster" in fields["outcomes"]["values"]
    assert any(p.startswith("answers.outcomes.") for p in fields)
    assert any(p.startswith("events.") and p.endswith("count_30d") for p in fields)
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in (
        "/api/v1/rulesets",
        "/api/v1/rulesets/{version}/simulate",
        "/api/v1/rules/evaluate",
        "/api/v1/accounts/{external_id}/plan",
        "/api/v1/plans",
    ):
        assert path in paths
