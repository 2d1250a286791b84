"""From a completed survey to a plan: build facts, decide with the published rules, apply actions."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session, SessionTransaction

from engine import db, refcache, signals
from engine.accounts import Account
from engine.library import objectives_by_key
from engine.plans.models import SuccessPlan
from engine.plans.service import (
    ObjectiveChoice,
    active_plan,
    add_milestone,
    add_objective,
    create_plan,
    get_template,
)
from engine.rules import CompiledRules, Decision, decide
from engine.rules.facts import load_facts
from engine.rules.models import Rule, RuleSet
from engine.rules.published import published_rules

log = logging.getLogger(__name__)


refcache.watch(RuleSet.__tablename__, Rule.__tablename__)

ACCOUNT_RULES_LOCK = 0x6E5F_7261  # "n_ra": advisory-lock namespace, one key per account id
_HELD = "northstar.rules_locks"


def lock_accounts(session: Session, account_ids: Iterable[int]) -> None:
    """Serialise rules decisions per account until this transaction ends (PostgreSQL; the demo's
    SQLite has one writer anyway). Two decisions for one account at once (a hosted-page answer
    while the `rules` job applies a widget answer, two colleagues answering the same minute) would
    each see no active plan and make one; the second now waits, then sees the first's plan.
    Locks are taken in id order, so a batch and a single decision cannot deadlock."""
    held: set[int] = session.info.setdefault(_HELD, set())
    wanted = sorted(set(account_ids) - held)
    if not wanted or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, id) FROM unnest(CAST(:ids AS integer[])) AS id ORDER BY id"),
        {"ns": ACCOUNT_RULES_LOCK, "ids": wanted},
    ).all()
    held.update(wanted)


@event.listens_for(Session, "after_transaction_end")
def _locks_released(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the database transaction ended: its advisory locks are gone
        session.info.pop(_HELD, None)


def _published_rules(session: Session) -> CompiledRules | None:
    """The published ruleset, compiled once per process per published version, which every
    decision reads from the database (engine.rules.published: safe across workers)."""
    return published_rules(session)


@dataclass(frozen=True)
class RulesOutcome:
    decision: Decision
    plan: SuccessPlan | None
    plan_created: bool


def decision_facts(
    session: Session,
    account: Account,
    *,
    answers: dict[str, Any],
    choices: list[ObjectiveChoice],
    now: dt.datetime,
    answers_as_of: tuple[dt.datetime, int] | None = None,
    stored: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts for a live decision: what is stored for the account (every survey's latest
    answers, event windows, plan state) with the answers just given laid over them. With
    `answers_as_of`, the stored answers are those of that moment (a decision made later, by the
    `rules` job, on a response given then). `stored` is what `load_facts` just read for the
    account with the same arguments (the job reads its batch's accounts in one go)."""
    if stored is None:
        as_of = {account.id: answers_as_of} if answers_as_of is not None else None
        stored = load_facts(session, [account], now, answers_as_of=as_of)[account.id]
    facts = dict(stored)
    facts["answers"] = {**facts["answers"], **answers}
    facts["objectives"] = list(dict.fromkeys([*facts["objectives"], *(c.key for c in choices)]))
    return facts


def run_rules(
    session: Session,
    account: Account,
    *,
    answers: dict[str, Any],
    choices: list[ObjectiveChoice],
    now: dt.datetime,
    channel: str,
    answers_as_of: tuple[dt.datetime, int] | None = None,
    stored_facts: dict[str, Any] | None = None,
) -> RulesOutcome:
    """Decide and apply. Idempotent: an account with an active plan keeps it (the respondent's new
    objectives join it, see `_add_choices`); enrolments dedupe.
    `stored_facts`: see `decision_facts`."""
    lock_accounts(session, [account.id])
    rules = _published_rules(session)
    if rules is None:
        log.warning("no published ruleset: response for %s stored, no plan made", account.external_id)
        return RulesOutcome(Decision((), ()), active_plan(session, account.id), False)
    facts = decision_facts(
        session,
        account,
        answers=answers,
        choices=choices,
        now=now,
        answers_as_of=answers_as_of,
        stored=stored_facts,
    )
    decision = decide(facts, rules)
    plan = active_plan(session, account.id)
    created = False
    for action in decision.of_type("create_plan"):
        if plan is not None:
            break
        template = get_template(session, str(action.params["template"]))
        plan = create_plan(session, account, template, choices, now=now, channel=channel)
        created = True
    if plan is not None:
        if not created:
            _add_choices(session, plan, choices, now=now, channel=channel)
        _extend_plan(session, plan, decision, now=now, channel=channel)
    tags = set(account.traits.get("tags", []))
    content_tags = set(account.traits.get("content_tags", []))
    for action in decision.actions:
        if action.type == "tag_account":
            tags.add(str(action.params["value"]))
        elif action.type == "assign_content":
            content_tags.add(str(action.params["tag"]))
    if tags != set(account.traits.get("tags", [])) or content_tags != set(
        account.traits.get("content_tags", [])
    ):
        traits = {**account.traits, "tags": sorted(tags)}
        if content_tags:
            traits["content_tags"] = sorted(content_tags)
        account.traits = traits
    db.flush(session)
    signals.decision_applied.send(
        "engine.automation",
        session=session,
        account_id=account.id,
        plan_id=plan.id if plan else None,
        actions=[a.to_dict() for a in decision.actions],
        now=now,
    )
    return RulesOutcome(decision, plan, created)


# A measure a respondent's answers added to the plan their account already had.
CUSTOMER_ACTOR = "customer via survey"


def _add_choices(
    session: Session, plan: SuccessPlan, choices: list[ObjectiveChoice], *, now: dt.datetime, channel: str
) -> None:
    """The objectives a respondent chose that the account's existing plan does not measure yet join
    it with the respondent's own numbers, as they would have in a plan these answers made (a second
    contact's answers, or a contact's later ones). What the plan measures already is left as it is:
    numbers are changed on the plan, not by answering a survey again. Before the rules' own
    `add_objective` actions, so a rule adding the same objective does not put its defaults first."""
    library = objectives_by_key(session)
    for choice in choices:
        if choice.key not in library:  # retired since the answer was given: nothing to add
            log.warning("plan %s: objective %r is no longer in the library", plan.id, choice.key)
            continue
        add_objective(session, plan, choice, now=now, actor=CUSTOMER_ACTOR, channel=channel)


def _extend_plan(
    session: Session, plan: SuccessPlan, decision: Decision, *, now: dt.datetime, channel: str
) -> None:
    """`add_objective` / `add_milestone` actions: idempotent (a measure or milestone key is added once)."""
    for action in decision.actions:
        params, actor = action.params, f"rule {action.rule!r}"
        if action.type == "add_objective":
            due = params.get("due_in_days")
            choice = ObjectiveChoice(
                key=str(params["key"]),
                baseline=params.get("baseline"),
                target=params.get("target"),
                due_date=now.date() + dt.timedelta(days=int(due)) if due else None,
            )
            add_objective(session, plan, choice, now=now, actor=actor, channel=channel)
        elif action.type == "add_milestone":
            add_milestone(session, plan, dict(params), now=now, actor=actor, channel=channel)


def rerun_rules(
    session: Session, account: Account, *, now: dt.datetime, channel: str = "rules"
) -> RulesOutcome:
    """Re-evaluate an account on what is stored (ops' "re-run rules", a ruleset change). Idempotent."""
    return run_rules(session, account, answers={}, choices=[], now=now, channel=channel)
