"""A survey submission reads its immutable inputs from per-process caches: each cache serves what
the database says is current, including changes made by another process (simulated here with
Core statements, which this process's ORM events never see)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, insert, select, update

from engine.db import Database, utcnow
from engine.plans.models import PlanStatus, SuccessPlan
from engine.rules.models import Rule, RuleSet, RuleSetStatus
from engine.workspaces import ensure_workspace
from surveys import cache
from surveys.models import Response, Survey, SurveyVersion
from surveys.rules_queue import apply_queued_rules_job
from tests.factories import outcomes_answers

URL = "/api/v1/surveys/outcomes/responses"
HOST = "https://app.customer.example"


@pytest.fixture
def secret(recruiting: object, database: Database) -> str:
    with database.transaction() as session:
        return ensure_workspace(session, origins=[HOST]).jwt_secret


def submit(client: FlaskClient, secret: str, account: str, **body: Any) -> Any:
    token = jwt.encode(
        {
            "sub": f"{account}-contact",
            "account": account,
            "email": f"someone@{account}.example",
            "exp": int((utcnow() + dt.timedelta(minutes=10)).timestamp()),
        },
        secret,
        algorithm="HS256",
    )
    payload = {"client_response_id": str(uuid.uuid4()), "channel": "in_app", "answers": outcomes_answers()}
    payload.update(body)
    headers = {"Origin": HOST, "X-Northstar-Workspace": "default", "Authorization": f"Bearer {token}"}
    return client.post(URL, json=payload, headers=headers)


def submit_plan(client: FlaskClient, secret: str, account: str) -> Any:
    """Submit, let the `rules` job decide (in this process, so with this process's caches), and
    return the plan the decision made."""
    payload = {"client_response_id": str(uuid.uuid4())}
    assert submit(client, secret, account, **payload).status_code == 201
    apply_queued_rules_job()
    replay = submit(client, secret, account, **payload)
    assert replay.get_json()["plan"]["status"] == "ready", replay.get_json()
    return replay.get_json()["plan"]


def publish_elsewhere(database: Database, definition_change: dict[str, Any]) -> int:
    """Another process publishes the outcomes survey's next version (a Core INSERT)."""
    with database.engine.begin() as conn:
        survey_id, number, definition = conn.execute(
            select(SurveyVersion.survey_id, SurveyVersion.version, SurveyVersion.definition)
            .join(Survey, Survey.id == SurveyVersion.survey_id)
            .where(Survey.key == "outcomes")
            .order_by(SurveyVersion.version.desc())
            .limit(1)
        ).one()
        conn.execute(
            insert(SurveyVersion).values(
                survey_id=survey_id,
                version=number + 1,
                definition={**definition, **definition_change},
                published_at=utcnow(),
            )
        )
    return int(number) + 1


def with_team_size(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    team_size = {
        "key": "team_size",
        "kind": "single_choice",
        "title": "How many recruiters?",
        "options": [{"value": "small", "label": "1-5"}, {"value": "large", "label": "6+"}],
    }
    return [*questions, team_size]


def current_questions(database: Database) -> list[dict[str, Any]]:
    with database.session() as session:
        survey = session.scalars(select(Survey).where(Survey.key == "outcomes")).one()
        assert survey.latest_published is not None
        return survey.latest_published.questions


def test_a_survey_republished_by_another_process_is_answered_on_its_new_version(
    client: FlaskClient, secret: str, database: Database
) -> None:
    first = submit(client, secret, "acme")
    assert first.status_code == 201 and first.get_json()["version"] == 1
    refused = submit(client, secret, "globex", answers={**outcomes_answers(), "team_size": "small"})
    assert refused.status_code == 422
    assert "team_size" in str(refused.get_json())

    version = publish_elsewhere(database, {"questions": with_team_size(current_questions(database))})

    accepted = submit(client, secret, "globex", answers={**outcomes_answers(), "team_size": "small"})
    assert accepted.status_code == 201, accepted.get_json()
    assert accepted.get_json()["version"] == version == 2
    with database.session() as session:
        stored = session.scalars(select(Response).order_by(Response.id.desc()).limit(1)).one()
        assert stored.version.version == 2
        assert stored.answers["team_size"] == "small"


def test_a_pinned_version_is_still_validated_against_its_own_questions(
    client: FlaskClient, secret: str, database: Database
) -> None:
    publish_elsewhere(database, {"questions": with_team_size(current_questions(database))})

    old = submit(client, secret, "acme", version=1, answers={**outcomes_answers(), "team_size": "small"})
    assert old.status_code == 422
    pinned = submit(client, secret, "globex", version=1)
    assert pinned.status_code == 201 and pinned.get_json()["version"] == 1
    missing = submit(client, secret, "initech", version=7)
    assert missing.status_code == 404
    assert "no published version 7" in missing.get_json()["detail"]


def test_a_reset_database_reusing_a_version_id_is_read_afresh(recruiting: object, database: Database) -> None:
    """Tests truncate with RESTART IDENTITY (and a restore may too): same id, another definition."""
    with database.session() as session:
        version = session.scalars(select(SurveyVersion).where(SurveyVersion.version == 1)).one()
        before = cache.spec_of(session, version)
        version_id, survey_id = version.id, version.survey_id
    with database.engine.begin() as conn:
        conn.execute(SurveyVersion.__table__.delete().where(SurveyVersion.id == version_id))
        republished = utcnow() + dt.timedelta(seconds=1)
        conn.execute(
            insert(SurveyVersion).values(
                id=version_id,
                survey_id=survey_id,
                version=1,
                definition={**before.definition, "questions": before.questions[:1]},
                published_at=republished,
            )
        )
    with database.session() as session:
        spec = cache.version_spec(session, version_id, republished)
    assert spec is not None
    assert [q["key"] for q in spec.questions] == [before.questions[0]["key"]]
    assert len(before.questions) > 1


def test_rules_published_by_another_process_decide_the_next_submission(
    client: FlaskClient, secret: str, database: Database
) -> None:
    assert "fills open roles faster" in submit_plan(client, secret, "acme")["goal"]

    with database.engine.begin() as conn:  # Core statements: no ORM event reaches any cache
        live_id, version = conn.execute(
            select(RuleSet.id, RuleSet.version).where(RuleSet.status == RuleSetStatus.PUBLISHED)
        ).one()
        conn.execute(update(RuleSet).where(RuleSet.id == live_id).values(status=RuleSetStatus.ARCHIVED))
        new_id = conn.execute(
            insert(RuleSet)
            .values(version=version + 1, status=RuleSetStatus.PUBLISHED, published_at=utcnow(), note="")
            .returning(RuleSet.id)
        ).scalar_one()
        conn.execute(
            insert(Rule).values(
                ruleset_id=new_id,
                name="Everyone → field-managers plan",
                description="",
                priority=100,
                condition={"!!": [{"var": "outcomes"}]},
                actions=[{"type": "create_plan", "template": "field_hiring_plan"}],
                stop_processing=True,
                revision=1,
            )
        )

    assert "field managers run hiring" in submit_plan(client, secret, "globex")["goal"]


def test_a_rule_revised_in_place_is_recompiled(client: FlaskClient, secret: str, database: Database) -> None:
    """Published rules are not edited, but if a rule's revision moves the compiled rules follow."""
    submit_plan(client, secret, "acme")
    with database.engine.begin() as conn:
        live = select(RuleSet.id).where(RuleSet.status == RuleSetStatus.PUBLISHED).scalar_subquery()
        conn.execute(
            update(Rule)
            .where(Rule.ruleset_id == live, Rule.name == "Hire faster or hire better → hire-faster plan")
            .values(
                actions=[{"type": "create_plan", "template": "field_hiring_plan"}],
                revision=Rule.revision + 1,
            )
        )
    assert "field managers run hiring" in submit_plan(client, secret, "globex")["goal"]


def test_a_new_allowed_origin_is_honoured_on_the_next_request(
    client: FlaskClient, secret: str, database: Database
) -> None:
    other = "https://other.customer.example"
    assert submit_from(client, secret, other).status_code == 403
    with database.transaction() as session:
        ensure_workspace(session, origins=[other])
    assert submit_from(client, secret, other).status_code == 201


def submit_from(client: FlaskClient, secret: str, origin: str) -> Any:
    token = jwt.encode(
        {"sub": "o-1", "account": "acme", "email": "o@acme.example", "exp": int(utcnow().timestamp()) + 600},
        secret,
        algorithm="HS256",
    )
    headers = {"Origin": origin, "X-Northstar-Workspace": "default", "Authorization": f"Bearer {token}"}
    body = {"client_response_id": str(uuid.uuid4()), "channel": "in_app", "answers": outcomes_answers()}
    return client.post(URL, json=body, headers=headers)


def test_a_changed_plan_template_shapes_the_next_plan(
    client: FlaskClient, secret: str, database: Database
) -> None:
    from engine.plans.models import PlanTemplate

    submit_plan(client, secret, "acme")
    with database.transaction() as session:
        template = session.scalars(select(PlanTemplate).where(PlanTemplate.key == "hire_faster_plan")).one()
        template.goal = "By {{ review_date }}, {{ account.name }} hires its first ten people."
    assert "hires its first ten people" in submit_plan(client, secret, "globex")["goal"]


def test_a_refused_submission_says_when_to_retry_and_an_accepted_one_carries_no_limit_headers(
    client: FlaskClient, secret: str, database: Database
) -> None:
    client.application.config["RATELIMIT_ENABLED"] = True
    accepted = submit(client, secret, "acme", complete=False, answers={})
    assert accepted.status_code == 201
    assert "X-RateLimit-Remaining" not in accepted.headers
    statuses = [submit(client, secret, "acme", complete=False, answers={}).status_code for _ in range(20)]
    assert statuses[-1] == 429
    refused = submit(client, secret, "acme", complete=False, answers={})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61  # the 60 s window, rounded up
    assert refused.headers["X-RateLimit-Limit"] == "20"
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_a_plan_created_after_the_facts_were_read_is_the_active_plan(
    recruiting: object, database: Database
) -> None:
    """The facts read says "no plan"; that answer is forgotten as soon as a plan is written."""
    from engine.plans.service import active_plan, create_plan, get_template
    from engine.rules.facts import load_facts
    from tests.factories import make_account

    with database.transaction() as session:
        account = make_account(session, "acme")
        assert load_facts(session, [account], utcnow())[account.id]["plan"]["exists"] is False
        assert active_plan(session, account.id) is None
        plan = create_plan(session, account, get_template(session, "hire_faster_plan"), [], now=utcnow())
        assert active_plan(session, account.id) is plan

    with database.transaction() as session:
        other = make_account(session, "globex")
        load_facts(session, [other], utcnow())
        session.execute(  # a bulk INSERT: no flush, no identity map
            insert(SuccessPlan).values(
                account_id=other.id,
                template_key="hire_faster_plan",
                status=PlanStatus.ACTIVE,
                goal="Bulk-made plan",
                dependencies=[],
                risks=[],
                started_at=utcnow(),
                review_date=dt.date.today(),
                review_every_days=90,
            )
        )
        found = active_plan(session, other.id)
        assert found is not None and found.goal == "Bulk-made plan"


def test_a_pending_plan_is_found_without_a_query_and_a_discarded_one_is_not(
    recruiting: object, database: Database
) -> None:
    """Inside the rules job's batch (engine.db.deferred_flushes) plans stay pending: `active_plan`
    finds the account's own without asking, and one expunged or rolled back no longer counts."""
    from engine.db import deferred_flushes
    from engine.plans.service import active_plan, create_plan, get_template
    from engine.rules.facts import load_facts
    from tests.factories import make_account

    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with database.transaction() as session:
        accounts = [make_account(session, name, contacts=()) for name in ("acme", "globex", "initech")]
        acme, globex, initech = accounts
        template = get_template(session, "hire_faster_plan")
        load_facts(session, accounts, utcnow())  # reads "no plan" for all three
        event.listen(database.engine, "before_cursor_execute", record)
        try:
            with deferred_flushes(session):
                plan = create_plan(session, acme, template, [], now=utcnow())
                assert active_plan(session, acme.id) is plan
                assert active_plan(session, globex.id) is None
                session.expunge(plan)
                assert active_plan(session, acme.id) is None
        finally:
            event.remove(database.engine, "before_cursor_execute", record)
        assert not [s for s in statements if "success_plans" in s]  # no plan asked for or written

        savepoint = session.begin_nested()
        other = create_plan(session, initech, template, [], now=utcnow())
        assert active_plan(session, initech.id) is other
        savepoint.rollback()
        assert active_plan(session, initech.id) is None
