"""API v1 for rules: rule set versions, their rules, validate/simulate/publish/rollback, and
evaluating a condition against facts. Token auth. A rule set is addressed by its version number."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from marshmallow import Schema, fields, validate

from engine.accounts import get_account
from engine.db import MAX_ID
from engine.errors import NotFound, ValidationFailed
from engine.rules import RuleSpec, decide, evaluate
from engine.rules import service as rules
from engine.rules.catalogue import catalogue
from engine.rules.decide import EVALUATION_FAILED
from engine.rules.facts import load_facts
from engine.rules.logic import truthy, validate_condition
from engine.rules.models import Rule, RuleSet, published_ruleset
from engine.rules.service import condition_errors
from web.api import load, token_required
from web.context import db_session, json_body, now, unit_of_work
from web.problems import problem

bp = Blueprint("rules_api", __name__)


def _caller() -> str | None:
    caller: str | None = g.get("api_caller")
    return caller


def ruleset_summary(ruleset: RuleSet) -> dict[str, Any]:
    return {
        "id": ruleset.version,
        "version": ruleset.version,
        "status": ruleset.status.value,
        "note": ruleset.note,
        "created_at": ruleset.created_at.isoformat(),
        "created_by": ruleset.created_by,
        "published_at": ruleset.published_at.isoformat() if ruleset.published_at else None,
        "published_by": ruleset.published_by,
        "based_on_version": ruleset.based_on_version,
        "rules_count": len(ruleset.rules),
    }


def rule_json(rule: Rule) -> dict[str, Any]:
    return {"id": rule.id, "revision": rule.revision, **rules.rule_document(rule)}


def _rule_response(rule: Rule, status: int = 200) -> Response:
    """The rule with its revision as the ETag: send it back as If-Match when you PUT the rule."""
    response = jsonify(rule_json(rule))
    response.status_code = status
    response.headers["ETag"] = f'"{rule.revision}"'
    return response


def _rule_body() -> tuple[Any, int | None]:
    """The request's rule document without the read-only `id` and `revision` a GET returned (so
    GET → edit → PUT works as is), and that revision: the one the client's edit is based on."""
    body = json_body()
    if not isinstance(body, dict):
        return body, None
    document = {k: v for k, v in body.items() if k not in ("id", "revision")}
    revision = body.get("revision")
    return document, revision if isinstance(revision, int) and not isinstance(revision, bool) else None


def _expected_revision() -> int | None:
    """`If-Match: "<revision>"` from an earlier GET; absent or `*` means overwrite whatever is there."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    tag = header.removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise ValidationFailed({"If-Match": 'send the rule\'s ETag (e.g. "3") from GET, or "*"'})
    return int(tag)


def ruleset_json(ruleset: RuleSet) -> dict[str, Any]:
    ordered = sorted(ruleset.rules, key=lambda r: (-r.priority, r.name))
    return {**ruleset_summary(ruleset), "rules": [rule_json(r) for r in ordered]}


def _version(version: str) -> RuleSet:
    """`<id>` is a version number, or `published` / `draft`."""
    session = db_session()
    if version == "published":
        found = published_ruleset(session)
    elif version == "draft":
        found = rules.current_draft(session)
    elif version.isdigit() and len(version) < 10:
        return rules.get_version(session, int(version))
    else:
        raise NotFound(f"rule set {version!r}: use a version number, 'published' or 'draft'")
    if found is None:
        raise NotFound(f"there is no {version} rule set")
    return found


@bp.get("/api/v1/rulesets")
@token_required
def list_rulesets() -> Any:
    return jsonify({"rulesets": [ruleset_summary(r) for r in rules.history(db_session())]})


class DraftSchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=2000))


@bp.post("/api/v1/rulesets")
@token_required
def start_draft() -> Any:
    """Start the draft (a copy of the published rules), or return the one that exists."""
    body = load(DraftSchema(), json_body())
    with unit_of_work() as session:
        existing = rules.current_draft(session)
        draft = existing or rules.start_draft(session, user=_caller(), note=body["note"])
        document = ruleset_json(draft)
    return jsonify(document), 200 if existing else 201


@bp.get("/api/v1/rulesets/<version>")
@token_required
def get_ruleset(version: str) -> Any:
    ruleset = _version(version)
    report = rules.validate_ruleset(db_session(), ruleset)
    return jsonify(
        {**ruleset_json(ruleset), "errors": report.errors, "findings": [f.to_dict() for f in report.findings]}
    )


@bp.put("/api/v1/rulesets/<version>/rules")
@token_required
def replace_rules(version: str) -> Any:
    body = json_body()
    with unit_of_work():
        ruleset = rules.replace_rules(db_session(), _version(version), body.get("rules"))
        document = ruleset_json(ruleset)
    return jsonify(document)


@bp.post("/api/v1/rulesets/<version>/rules")
@token_required
def add_rule(version: str) -> Any:
    body, _revision = _rule_body()
    with unit_of_work():
        rule = rules.save_rule(db_session(), _version(version), body)
        document = rule_json(rule)
    return jsonify(document), 201


@bp.get("/api/v1/rulesets/<version>/rules/<int:rule_id>")
@token_required
def get_rule(version: str, rule_id: int) -> Any:
    return _rule_response(rules.get_rule(_version(version), rule_id))


@bp.put("/api/v1/rulesets/<version>/rules/<int:rule_id>")
@token_required
def put_rule(version: str, rule_id: int) -> Any:
    body, body_revision = _rule_body()
    # If-Match wins (`*` overwrites on purpose); without it, the revision a GET put in the body.
    sent = request.headers.get("If-Match", "").strip()
    expected = _expected_revision() if sent else body_revision
    try:
        with unit_of_work():
            rule = rules.save_rule(
                db_session(), _version(version), body, rule_id=rule_id, expected_revision=expected
            )
            response = _rule_response(rule)
    except rules.StaleRule as exc:
        return problem(412, "Precondition Failed", exc.detail)
    return response


@bp.delete("/api/v1/rulesets/<version>/rules/<int:rule_id>")
@token_required
def delete_rule(version: str, rule_id: int) -> Any:
    with unit_of_work():
        rules.delete_rule(db_session(), _version(version), rule_id)
    return "", 204


@bp.get("/api/v1/rules")
@token_required
def published_rules() -> Any:
    """The rules in force (the published version), in evaluation order."""
    return jsonify(ruleset_json(_version("published")))


@bp.post("/api/v1/rulesets/<version>/validate")
@token_required
def validate_ruleset(version: str) -> Any:
    report = rules.validate_ruleset(db_session(), _version(version))
    return jsonify(
        {"ok": report.ok, "errors": report.errors, "findings": [f.to_dict() for f in report.findings]}
    )


class SimulateSchema(Schema):
    sample = fields.Raw(load_default=1000)
    against = fields.Integer(load_default=None, strict=True, validate=validate.Range(1, MAX_ID))


def _sample(value: Any) -> int | None:
    if value is None or value == "all":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ValidationFailed({"sample": 'a number of accounts from 1 to 1,000,000, or "all"'})
    return value


@bp.post("/api/v1/rulesets/<version>/simulate")
@token_required
def simulate(version: str) -> Any:
    body = load(SimulateSchema(), json_body())
    session = db_session()
    against = rules.get_version(session, body["against"]) if body["against"] is not None else None
    result = rules.simulate(
        session, _version(version), now=now(), sample=_sample(body["sample"]), against=against
    )
    return jsonify(result.to_dict())


@bp.post("/api/v1/rulesets/<version>/publish")
@token_required
def publish(version: str) -> Any:
    body = load(DraftSchema(), json_body())
    with unit_of_work():
        ruleset = rules.publish(db_session(), _version(version), user=_caller(), note=body["note"])
        document = ruleset_json(ruleset)
    return jsonify(document)


@bp.post("/api/v1/rulesets/<version>/rollback")
@token_required
def rollback(version: str) -> Any:
    """Publish a copy of this (earlier) version as a new version."""
    with unit_of_work():
        ruleset = rules.rollback(db_session(), _version(version).version, user=_caller())
        document = ruleset_json(ruleset)
    return jsonify(document), 201


class EvaluateSchema(Schema):
    condition = fields.Raw(required=True, allow_none=True)
    facts = fields.Dict(keys=fields.String(), load_default=None)
    account = fields.String(load_default=None, validate=validate.Length(1, 200))
    check_fields = fields.Boolean(load_default=False)


@bp.post("/api/v1/rules/evaluate")
@token_required
def evaluate_condition() -> Any:
    """A condition against facts (given, or a real account's): the value, truthiness and why."""
    body = load(EvaluateSchema(), json_body())
    session = db_session()
    if (body["facts"] is None) == (body["account"] is None):
        raise ValidationFailed({"facts": "give either `facts` or `account` (an account's external id)"})
    if body["check_fields"]:
        errors = condition_errors(session, body["condition"], pointer="/condition")
        if errors:
            raise ValidationFailed(errors)
    else:
        validate_condition(body["condition"], pointer="/condition")
    if body["account"] is not None:
        account = get_account(session, body["account"])
        facts = load_facts(session, [account], now())[account.id]
    else:
        facts = body["facts"]
    # The engine's own run: a condition that fails on these facts (`{"<=": [1.5, {}]}`) does not
    # match, and the trace says why; the raw value is then null.
    # Facts datalogic cannot take at all: evaluate() raises UnreadableFacts, a 422 keyed `facts`.
    trace = decide(facts, [RuleSpec("condition", body["condition"], ())]).trace[0]
    value = None if trace.reason.startswith(EVALUATION_FAILED) else evaluate(body["condition"], facts)
    return jsonify(
        {
            "result": value,
            "matched": truthy(value),
            "reason": trace.reason,
            "facts": facts if body["account"] else None,
        }
    )


@bp.get("/api/v1/rules/fields")
@token_required
def field_catalogue() -> Any:
    """Every fact a rule may read, with its type and description."""
    found = catalogue(db_session())
    return jsonify(
        {
            "fields": [
                {"path": f.path, "type": f.type, "description": f.description, "values": list(f.values)}
                for f in sorted(found.fields.values(), key=lambda f: f.path)
            ]
        }
    )
