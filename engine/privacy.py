"""Privacy requests about one contact: export everything held about them (JSON), or erase them.

Each package that holds data about contacts registers a provider (`register_provider`, from its
`wiring.py`): surveys (responses, dismissals), campaigns (messages, in-app inbox), plans (plan
revisions they made). Engine itself covers the contact, its account link and events.

Erasure, in the caller's one transaction, idempotent:
- every provider removes or anonymises what it holds (campaigns keeps messages as anonymised
  counts per account, campaign, step, channel and status, then the contact's rows go);
- events stay with the account (product usage), detached from the contact;
- the contact row is deleted;
- the email is kept only as a salted HMAC-SHA256 (`erased_emails`): the send guards check it, so
  an erased person is never mailed again, even if a sync creates the contact anew;
- a `contact_erasures` row records that contact id N was erased, when, by whom and the counts
  (no personal data), which makes a second request answer "already erased".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, String, event, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import Contact
from engine.audit import AuditEntry
from engine.db import MAX_ID, Base, utcnow
from engine.errors import NotFound
from engine.events.models import Event

EXPORT_FORMAT = "northstar.contact-export/1"


class PrivacySalt(Base):
    """One random salt per installation for the erased-email digests (kept apart from the app's
    secret key, so rotating that key never forgets who was erased)."""

    __tablename__ = "privacy_salts"

    id: Mapped[int] = mapped_column(primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


class ErasedEmail(Base):
    __tablename__ = "erased_emails"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ContactErasure(Base):
    """That a contact was erased: no personal data, only the id it had, when, who asked, counts."""

    __tablename__ = "contact_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    erased_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    erased_by: Mapped[str] = mapped_column(String(320))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


_ERASED_KEY = "northstar.erased_emails"


@dataclass(frozen=True)
class PrivacyProvider:
    """What one package holds about a contact: `export` returns JSON-ready data; `erase` removes or
    anonymises it (before the contact row is deleted) and returns counts of what it did."""

    name: str
    export: Callable[[Session, Contact], Any]
    erase: Callable[[Session, Contact, dt.datetime], dict[str, int]]


_providers: dict[str, PrivacyProvider] = {}


def register_provider(provider: PrivacyProvider) -> None:
    _providers[provider.name] = provider


def providers() -> list[PrivacyProvider]:
    return list(_providers.values())


@dataclass(frozen=True)
class ErasureResult:
    contact_id: int
    erased_at: dt.datetime
    erased_by: str
    summary: dict[str, Any]
    already: bool  # True when an earlier request had erased the contact


def iso(value: dt.datetime | dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


# --- the erased-email digests ---------------------------------------------------------------


def _salt(session: Session) -> str:
    found = session.scalar(select(PrivacySalt.salt).where(PrivacySalt.id == 1))
    if found is not None:
        return found
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # Two first erasures at once: one salt wins, both use it.
    session.execute(
        insert(PrivacySalt)
        .values(id=1, salt=secrets.token_hex(32))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    found = session.scalar(select(PrivacySalt.salt).where(PrivacySalt.id == 1))
    assert found is not None
    return found


def email_digest(salt: str, email: str) -> str:
    return hmac.new(salt.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def _erased(session: Session) -> tuple[str | None, frozenset[str]]:
    # Loaded once per transaction (a scheduler tick asks for every recipient); erase_contact drops it.
    found: tuple[str | None, frozenset[str]] | None = session.info.get(_ERASED_KEY)
    if found is None:
        salt = session.scalar(select(PrivacySalt.salt).where(PrivacySalt.id == 1))
        digests = frozenset(session.scalars(select(ErasedEmail.digest))) if salt else frozenset()
        found = session.info[_ERASED_KEY] = (salt, digests)
    return found


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_erased(session: Session) -> None:
    session.info.pop(_ERASED_KEY, None)


def email_erased(session: Session, email: str) -> bool:
    """Whether this email belonged to an erased contact (the send guards ask, per recipient)."""
    salt, digests = _erased(session)
    return salt is not None and bool(digests) and email_digest(salt, email) in digests


# --- export and erase -----------------------------------------------------------------------


def contact_summary(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "email": contact.email,
        "name": contact.name,
        "role": contact.role.value,
        "locale": contact.locale,
        "timezone": contact.timezone,
        "unsubscribed_at": iso(contact.unsubscribed_at),
        "unsubscribed_categories": list(contact.unsubscribed_categories or []),
        "bounced_at": iso(contact.bounced_at),
        "spam_reported_at": iso(contact.spam_reported_at),
        "created_at": iso(contact.created_at),
    }


def _get_contact(session: Session, contact_id: int, *, lock: bool = False) -> Contact:
    contact = session.get(Contact, contact_id, with_for_update=lock) if 0 < contact_id <= MAX_ID else None
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def export_contact(session: Session, contact_id: int, *, now: dt.datetime) -> dict[str, Any]:
    """Everything held about one contact, as one JSON-ready document."""
    contact = _get_contact(session, contact_id)
    account = contact.account
    events = session.scalars(
        select(Event).where(Event.contact_id == contact.id).order_by(Event.occurred_at, Event.id)
    )
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": iso(now),
        "contact": contact_summary(contact),
        "account": {
            "id": account.id,
            "external_id": account.external_id,
            "name": account.name,
            "segment": account.segment,
        },
        "events": [
            {
                "id": e.id,
                "name": e.name,
                "properties": e.properties,
                "occurred_at": iso(e.occurred_at),
                "received_at": iso(e.received_at),
            }
            for e in events
        ],
    }
    for provider in providers():
        document[provider.name] = provider.export(session, contact)
    return document


def previous_erasure(session: Session, contact_id: int) -> ContactErasure | None:
    return session.scalar(select(ContactErasure).where(ContactErasure.contact_id == contact_id))


def erase_contact(session: Session, contact_id: int, *, by: str, now: dt.datetime) -> ErasureResult:
    """Erase one contact (see the module docstring); safe to repeat. Runs in the caller's
    transaction: if any step fails, nothing is erased."""
    earlier = previous_erasure(session, contact_id)
    if earlier is None:
        try:
            contact = _get_contact(session, contact_id, lock=True)
        except NotFound:
            # A concurrent request may have erased it while this one waited for the row lock.
            earlier = previous_erasure(session, contact_id)
            if earlier is None:
                raise
    if earlier is not None:
        return ErasureResult(contact_id, earlier.erased_at, earlier.erased_by, earlier.summary, True)
    salt = _salt(session)
    digest = email_digest(salt, contact.email)
    if session.get(ErasedEmail, digest) is None:
        session.add(ErasedEmail(digest=digest, erased_at=now))
    session.info.pop(_ERASED_KEY, None)
    summary: dict[str, Any] = {}
    for provider in providers():
        summary[provider.name] = provider.erase(session, contact, now)
    detached = session.execute(update(Event).where(Event.contact_id == contact.id).values(contact_id=None))
    summary["events"] = {"detached": int(getattr(detached, "rowcount", 0) or 0)}
    # The log keeps that someone exported or erased contact N, not who the contact was.
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.object_type == "Contact", AuditEntry.object_id == str(contact.id))
        .values(label="(erased)")
    )
    account_id = contact.account_id
    session.delete(contact)
    session.flush()
    session.add(
        ContactErasure(
            contact_id=contact_id, account_id=account_id, erased_at=now, erased_by=by, summary=summary
        )
    )
    session.flush()
    return ErasureResult(contact_id, now, by, summary, False)
