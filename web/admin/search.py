"""Global search: accounts, contacts, campaigns and content by name, as a results page (works
without JavaScript) and as JSON suggestions for the search box."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from flask import jsonify, render_template, request, url_for
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from campaigns.models import Campaign
from content.models import ContentItem
from engine.accounts import Account, Contact
from web.admin import bp
from web.admin.auth import ANY_ROLE, role_required
from web.admin.nav import breadcrumbs, first_link
from web.context import db_session
from web.problems import problem

MAX_QUERY = 200
PAGE_LIMIT = 20  # per kind on the results page
SUGGEST_LIMIT = 5  # per kind in the box's suggestion list
KINDS = ("accounts", "contacts", "campaigns", "content")
Found = TypeVar("Found", Account, Contact, Campaign, ContentItem)
KIND_LABELS = {"accounts": "Accounts", "contacts": "Contacts", "campaigns": "Campaigns", "content": "Content"}


@dataclass(frozen=True)
class Hit:
    kind: str
    label: str
    detail: str
    url: str | None


def _pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _starts(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _matching(
    session: Session,
    model: type[Found],
    text: str,
    limit: int,
    fields: Sequence[QueryableAttribute[Any]],
    sort: QueryableAttribute[Any],
    *,
    starts_first: bool = False,
) -> list[Found]:
    """At most `limit` rows of `model` with `text` anywhere in one of `fields`, by `sort` then id;
    with `starts_first`, those whose `sort` starts with the text come first."""
    order: list[ColumnElement[Any] | QueryableAttribute[Any]] = [sort, model.id]
    if starts_first:
        order.insert(0, ~sort.ilike(_starts(text), escape="\\"))
    pattern = _pattern(text)
    matches = or_(*(f.ilike(pattern, escape="\\") for f in fields))
    return list(session.scalars(select(model).where(matches).order_by(*order).limit(limit)))


def search_accounts(session: Session, text: str, limit: int) -> list[Account]:
    fields = (Account.name, Account.external_id)
    return _matching(session, Account, text, limit, fields, Account.name, starts_first=True)


def search_contacts(session: Session, text: str, limit: int) -> list[Contact]:
    fields = (Contact.email, Contact.name)
    return _matching(session, Contact, text, limit, fields, Contact.email, starts_first=True)


def search_campaigns(session: Session, text: str, limit: int) -> list[Campaign]:
    return _matching(session, Campaign, text, limit, (Campaign.name, Campaign.key), Campaign.name)


def search_content(session: Session, text: str, limit: int) -> list[ContentItem]:
    return _matching(
        session, ContentItem, text, limit, (ContentItem.title, ContentItem.key), ContentItem.title
    )


def search_all(session: Session, text: str, limit: int) -> dict[str, list[Hit]]:
    """Up to `limit` hits per kind, each with the console page that shows it (None if none does)."""
    found: dict[str, list[Hit]] = {kind: [] for kind in KINDS}
    for account in search_accounts(session, text, limit):
        found["accounts"].append(
            Hit(
                "accounts",
                account.name,
                f"{account.external_id} · {account.segment} · {account.lifecycle_stage}",
                url_for("admin.account", account_id=account.id),
            )
        )
    for contact in search_contacts(session, text, limit):
        found["contacts"].append(
            Hit(
                "contacts",
                contact.name or contact.email,
                f"{contact.email} · {contact.role.value.replace('_', ' ')} at {contact.account.name}",
                url_for("admin.account", account_id=contact.account_id, _anchor=f"contact-{contact.id}"),
            )
        )
    for campaign in search_campaigns(session, text, limit):
        found["campaigns"].append(
            Hit(
                "campaigns",
                campaign.name,
                f"{campaign.key} · version {campaign.version}{' · paused' if campaign.paused else ''}",
                first_link(
                    ("admin.campaign", {"key": campaign.key}),
                    ("admin.campaign", {"campaign_id": campaign.id}),
                    ("admin.campaigns", {"q": campaign.key}),
                ),
            )
        )
    for item in search_content(session, text, limit):
        found["content"].append(
            Hit(
                "content",
                item.title,
                f"{item.kind} · {item.key}",
                first_link(
                    ("admin.content_item", {"key": item.key}),
                    ("admin.content_item", {"item_id": item.id}),
                    ("admin.content", {"q": item.title}),
                ),
            )
        )
    return found


def _query() -> tuple[str, str | None]:
    """The typed text (trimmed) and what is wrong with it, if anything."""
    text = request.args.get("q", "").strip()
    if "\x00" in text:
        return "", "The search must not contain NUL characters."
    if len(text) > MAX_QUERY:
        return text[:MAX_QUERY], f"Search for at most {MAX_QUERY} characters."
    return text, None


@bp.get("/search")
@role_required(*ANY_ROLE)
def search() -> Any:
    text, error = _query()
    results = search_all(db_session(), text, PAGE_LIMIT) if text and not error else None
    status = 400 if error else 200
    return (
        render_template(
            "admin/search.html",
            section=None,
            search_query=text,
            error=error,
            results=results,
            labels=KIND_LABELS,
            limit=PAGE_LIMIT,
            total=sum(len(v) for v in results.values()) if results else 0,
            capped=any(len(v) >= PAGE_LIMIT for v in results.values()) if results else False,
            breadcrumbs=breadcrumbs(("Search", None)),
        ),
        status,
    )


@bp.get("/search/suggest")
@role_required(*ANY_ROLE)
def search_suggest() -> Any:
    """JSON for the search box: {"query", "results": [{kind, label, detail, url}]} (at most 5 per kind)."""
    text, error = _query()
    if error:
        return problem(400, "Bad request", error, errors={"q": error})
    hits = search_all(db_session(), text, SUGGEST_LIMIT) if len(text) >= 2 else {}
    flat = [asdict(hit) for kind in KINDS for hit in hits.get(kind, []) if hit.url]
    return jsonify({"query": text, "results": flat, "all": url_for("admin.search", q=text) if text else None})
