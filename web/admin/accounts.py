"""Account 360: the account list, and one account's traits, contacts (the 1-2-3 triangle), survey
answers, plan, enrolments, messages with their "why (not) sent" trace, events and notes (the
actions CS ops take on it: web.admin.account_actions)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.exceptions import NotFound as HTTPNotFound

from campaigns.audit import contact_audit
from campaigns.models import RUNNABLE_STATES, Campaign, Enrollment
from engine import audit
from engine.accounts import Account, Contact
from engine.events.models import Event
from engine.library import library
from engine.notes import MAX_NOTE, AccountNote, account_notes, count_notes
from engine.plans.models import LIFECYCLE_STAGES, SuccessPlan
from engine.plans.triangle import ROLE_NAMES, WANTED, triangle
from engine.plans.views import progress
from surveys.models import Response, Survey, SurveyVersion
from web.admin import bp
from web.admin.answers import AnswerRow, answer_rows
from web.admin.auth import ANY_ROLE, role_required
from web.admin.contacts import STATUS_TONE, audit_time, guard_result
from web.admin.nav import account_crumbs, breadcrumbs
from web.context import db_session
from web.plans_api import share_url

PER_PAGE = 25
EVENTS_PER_PAGE = 20
RESPONSES = 20
REVISIONS = 20
MESSAGES_PER_CONTACT = 50
MESSAGES_SHOWN = 100
CONTACTS_AUDITED = 25  # beyond this, each contact's own audit page has their messages
MAX_PAGE = 100_000
MAX_TEXT = 200
ROLE_LABELS = {"exec_sponsor": "Executive sponsor", "champion": "Champion", "power_user": "Power user"}

# Notes written in the console go to the admin audit log like the rest of people's changes
# (registration is idempotent; done when the console is registered on an app).
bp.record_once(
    lambda _state: audit.register(AccountNote, label=lambda note: f"note on account {note.account_id}")
)


# -- the list -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountFilter:
    search: str = ""
    segment: str = ""
    stage: str = ""
    page: int = 1

    def params(self, **changes: Any) -> dict[str, Any]:
        values = {"q": self.search, "segment": self.segment, "stage": self.stage, "page": self.page}
        values.update(changes)
        return {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}


def parse_filter(args: Mapping[str, str]) -> tuple[AccountFilter, dict[str, str]]:
    """The list's filters from the query string, and a message per bad field."""
    errors: dict[str, str] = {}
    search = args.get("q", "").strip()
    segment = args.get("segment", "").strip()
    stage = args.get("stage", "").strip()
    typed_page = args.get("page", "1").strip() or "1"
    for name, value in (("q", search), ("segment", segment)):
        if len(value) > MAX_TEXT:
            errors[name] = f"Use at most {MAX_TEXT} characters."
        elif "\x00" in value:
            errors[name] = "Must not contain NUL characters."
    if stage and stage not in LIFECYCLE_STAGES:
        errors["stage"] = f"Lifecycle stage must be one of {', '.join(LIFECYCLE_STAGES)}."
    page = int(typed_page) if typed_page.isdigit() and len(typed_page) <= 7 else 0
    if not 1 <= page <= MAX_PAGE:
        errors["page"] = "Page must be a whole number from 1."
        page = 1
    return AccountFilter(search[:MAX_TEXT], segment[:MAX_TEXT], stage, page), errors


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class AccountRow:
    account: Account
    contacts: int
    plan: SuccessPlan | None


def account_page(
    session: Session, wanted: AccountFilter, per_page: int = PER_PAGE
) -> tuple[list[AccountRow], int]:
    """One page of accounts (by name) and the total; three bounded queries whatever the table size."""
    query = select(Account)
    if wanted.search:
        pattern = f"%{_escape_like(wanted.search)}%"
        query = query.where(
            or_(Account.name.ilike(pattern, escape="\\"), Account.external_id.ilike(pattern, escape="\\"))
        )
    if wanted.segment:
        query = query.where(Account.segment == wanted.segment)
    if wanted.stage:
        query = query.where(Account.lifecycle_stage == wanted.stage)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    accounts = session.scalars(
        query.order_by(Account.name, Account.id).limit(per_page).offset((wanted.page - 1) * per_page)
    ).all()
    ids = [a.id for a in accounts]
    contacts = (
        dict(
            session.execute(
                select(Contact.account_id, func.count(Contact.id))
                .where(Contact.account_id.in_(ids))
                .group_by(Contact.account_id)
            ).all()
        )
        if ids
        else {}
    )
    plans = (
        {
            p.account_id: p
            for p in session.scalars(
                select(SuccessPlan)
                .where(SuccessPlan.account_id.in_(ids))
                .options(selectinload(SuccessPlan.milestones))
            )
        }
        if ids
        else {}
    )
    return [AccountRow(a, int(contacts.get(a.id, 0)), plans.get(a.id)) for a in accounts], total


def segments(session: Session) -> list[str]:
    return list(session.scalars(select(Account.segment).distinct().order_by(Account.segment).limit(500)))


@bp.get("/accounts")
@role_required(*ANY_ROLE)
def accounts() -> Any:
    session = db_session()
    wanted, errors = parse_filter(request.args)
    rows, total = ([], 0) if errors else account_page(session, wanted)
    pages = max(1, -(-total // PER_PAGE))
    any_account = bool(rows) or total > 0 or session.scalar(select(Account.id).limit(1)) is not None
    return (
        render_template(
            "admin/accounts.html",
            section="accounts",
            breadcrumbs=breadcrumbs(("Accounts", None)),
            rows=rows,
            total=total,
            page=wanted.page,
            pages=pages,
            wanted=wanted,
            errors=errors,
            segments=segments(session),
            stages=LIFECYCLE_STAGES,
            any_account=any_account,
            page_url=lambda n: url_for("admin.accounts", **wanted.params(page=n)),
            filtered=bool(wanted.search or wanted.segment or wanted.stage),
        ),
        400 if errors else 200,
    )


# -- one account ----------------------------------------------------------------------------------


@dataclass
class Problem:
    """A refused action: which form, and what to say beside it."""

    form: str = ""
    message: str = ""
    typed: dict[str, str] = field(default_factory=dict)


def account_or_404(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise HTTPNotFound(
            f"There is no account {account_id}. It may have been removed; search for it by name."
        )
    return account


@dataclass(frozen=True)
class ResponseView:
    survey: str
    version: int
    channel: str
    contact: str | None
    completed_at: dt.datetime | None
    created_at: dt.datetime
    status: str
    answers: list[AnswerRow]


def survey_answers(
    session: Session, account_id: int, limit: int = RESPONSES
) -> tuple[list[ResponseView], int]:
    """The account's latest responses, each with its survey version's question titles as labels and
    the answers in words (web.admin.answers)."""
    total = int(session.scalar(select(func.count(Response.id)).where(Response.account_id == account_id)) or 0)
    rows = session.execute(
        select(Response, SurveyVersion, Survey)
        .join(SurveyVersion, SurveyVersion.id == Response.survey_version_id)
        .join(Survey, Survey.id == SurveyVersion.survey_id)
        .where(Response.account_id == account_id)
        .order_by(Response.created_at.desc(), Response.id.desc())
        .limit(limit)
    ).all()
    found = []
    known = library(session)
    for response, version, survey in rows:
        answers = answer_rows(version.questions, response.answers or {}, known)
        found.append(
            ResponseView(
                survey.title,
                version.version,
                response.channel.value,
                response.contact.email if response.contact else response.respondent_email,
                response.completed_at,
                response.created_at,
                response.status.value,
                answers,
            )
        )
    return found, total


def message_trail(session: Session, account: Account) -> dict[str, Any]:
    """Enrolments, and every message (latest first) with its guard trace and the steps that wrote
    nothing, per contact, from `campaigns.audit` (what the scheduler recorded)."""
    enrollments: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    not_sent: list[dict[str, Any]] = []
    totals = 0
    contacts = account.contacts[:CONTACTS_AUDITED]
    for contact in contacts:
        trail = contact_audit(session, contact, limit=MESSAGES_PER_CONTACT)
        enrollments = enrollments or trail["enrollments"]  # the account's: the same for every contact
        person = {"id": contact.id, "name": contact.name or contact.email, "email": contact.email}
        messages += [dict(m, contact=person) for m in trail["messages"]]
        not_sent += [dict(n, contact=person) for n in trail["not_sent"]]
        totals += int(trail["messages_total"])
    if not contacts:
        enrollments = [
            {
                "id": e.id,
                "campaign": e.campaign.key,
                "campaign_name": e.campaign.name,
                "state": e.state.value,
                "version": e.campaign_version,
                "entry": e.entry,
                "held_out": e.held_out,
                "enrolled_at": e.enrolled_at.isoformat(),
                "enrolled_by": None,
                "finished_at": None,
                "exited_reason": e.exited_reason,
                "next_run_at": None,
                "transitions": list(e.history or []),
            }
            for e in session.scalars(select(Enrollment).where(Enrollment.account_id == account.id))
        ]
    messages.sort(key=lambda m: (m["created_at"] or "", m["id"]), reverse=True)
    return {
        "enrollments": enrollments,
        "messages": messages[:MESSAGES_SHOWN],
        "messages_total": totals,
        "truncated": totals > min(len(messages), MESSAGES_SHOWN) or len(account.contacts) > CONTACTS_AUDITED,
        "not_sent": not_sent,
    }


def events_page(session: Session, account_id: int, page: int) -> tuple[Sequence[Event], int]:
    total = int(session.scalar(select(func.count(Event.id)).where(Event.account_id == account_id)) or 0)
    rows = session.scalars(
        select(Event)
        .where(Event.account_id == account_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(EVENTS_PER_PAGE)
        .offset((page - 1) * EVENTS_PER_PAGE)
    ).all()
    return rows, total


def latest_plan(session: Session, account_id: int) -> SuccessPlan | None:
    """The account's plan (one per account; active, completed or cancelled)."""
    return session.scalar(select(SuccessPlan).where(SuccessPlan.account_id == account_id))


def campaign_choices(session: Session) -> list[tuple[str, str]]:
    return [(c.key, c.name) for c in session.scalars(select(Campaign).order_by(Campaign.name).limit(500))]


def _events_page_number() -> int:
    typed = request.args.get("events", "1")
    if not typed.isdigit() or len(typed) > 7 or int(typed) < 1:
        return 1
    return int(typed)


def render_account(account: Account, problem: Problem | None = None, status: int = 200) -> Any:
    session = db_session()
    plan = latest_plan(session, account.id)
    people = triangle(account.contacts)
    events_at = _events_page_number()
    events, events_total = events_page(session, account.id, events_at)
    responses, responses_total = survey_answers(session, account.id)
    trail = message_trail(session, account)
    running = {
        e["campaign"] for e in trail["enrollments"] if e["state"] in {s.value for s in RUNNABLE_STATES}
    }
    corners = [
        (ROLE_LABELS[role.value], wanted, [c for c in account.contacts if c.role is role])
        for role, wanted in WANTED.items()
    ]
    return (
        render_template(
            "admin/account.html",
            section="accounts",
            breadcrumbs=account_crumbs(account),
            account=account,
            traits=sorted((account.traits or {}).items()),
            traits_json=json.dumps,
            corners=corners,
            others=[c for c in account.contacts if c.role.value == "other"],
            gaps=people.gaps,
            role_names=ROLE_NAMES,
            plan=plan,
            plan_progress={kr.id: round(100 * progress(kr)) for kr in plan.key_results} if plan else {},
            revisions=plan.revisions[::-1][:REVISIONS] if plan else [],
            share=share_url(plan) if plan else None,
            responses=responses,
            responses_total=responses_total,
            trail=trail,
            running=running,
            campaigns=campaign_choices(session),
            events=events,
            events_total=events_total,
            events_at=events_at,
            events_pages=max(1, -(-events_total // EVENTS_PER_PAGE)),
            events_url=lambda n: url_for("admin.account", account_id=account.id, events=n, _anchor="events"),
            notes=account_notes(session, account.id),
            notes_total=count_notes(session, account.id),
            max_note=MAX_NOTE,
            tone=STATUS_TONE,
            when=audit_time,
            guard_result=guard_result,
            problem=problem or Problem(),
            can_edit=current_user.can_edit,
        ),
        status,
    )


@bp.get("/accounts/<int:account_id>")
@role_required(*ANY_ROLE)
def account(account_id: int) -> Any:
    return render_account(account_or_404(db_session(), account_id))
