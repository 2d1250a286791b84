"""Accounts and their contacts: the customer side of every plan (the seeds' 1-2-3 triangle)."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from engine.db import Base, utcnow
from engine.errors import NotFound


class ContactRole(enum.StrEnum):
    EXEC_SPONSOR = "exec_sponsor"
    CHAMPION = "champion"
    POWER_USER = "power_user"
    OTHER = "other"


def str_enum(kind: type[enum.StrEnum]) -> Enum:
    """Enums stored as short strings on every backend, validated in Python."""
    return Enum(kind, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str] = mapped_column(String(80), default="default", index=True)
    plan_tier: Mapped[str | None] = mapped_column(String(80))
    lifecycle_stage: Mapped[str] = mapped_column(String(40), default="onboarding")
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    holdout_group: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="account", order_by="Contact.id", cascade="all, delete-orphan"
    )

    def facts(self) -> dict[str, Any]:
        """What rules may read about the account itself."""
        return {
            "external_id": self.external_id,
            "segment": self.segment,
            "plan_tier": self.plan_tier,
            "lifecycle_stage": self.lifecycle_stage,
            "traits": dict(self.traits or {}),
        }


class TraitType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "list"
    DATE = "date"


class TraitDefinition(Base):
    """A custom account trait rules may read (`account.traits.<key>`), declared with its type."""

    __tablename__ = "trait_definitions"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    type: Mapped[TraitType] = mapped_column(str_enum(TraitType))
    description: Mapped[str] = mapped_column(Text, default="")


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("account_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200), index=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[ContactRole] = mapped_column(str_enum(ContactRole), default=ContactRole.OTHER)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str | None] = mapped_column(String(64))
    unsubscribed_at: Mapped[dt.datetime | None]
    bounced_at: Mapped[dt.datetime | None]
    spam_reported_at: Mapped[dt.datetime | None]
    # Email categories (campaign `category`) the contact opted out of on the preference page.
    unsubscribed_categories: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship(back_populates="contacts")

    @property
    def first_name(self) -> str:
        return (self.name or self.email).split()[0].split("@")[0]

    @property
    def mailable(self) -> bool:
        return self.unsubscribed_at is None and self.bounced_at is None and self.spam_reported_at is None


def get_account(session: Session, external_id: str) -> Account:
    account = session.scalar(select(Account).where(Account.external_id == external_id))
    if account is None:
        raise NotFound(f"no account with external id {external_id!r}")
    return account


def upsert_account(
    session: Session,
    external_id: str,
    *,
    name: str,
    segment: str = "default",
    plan_tier: str | None = None,
    lifecycle_stage: str = "onboarding",
    traits: dict[str, Any] | None = None,
    timezone: str = "UTC",
) -> Account:
    account = session.scalar(select(Account).where(Account.external_id == external_id))
    if account is None:
        account = Account(external_id=external_id, name=name)
        session.add(account)
    account.name = name
    account.segment = segment
    account.plan_tier = plan_tier
    account.lifecycle_stage = lifecycle_stage
    account.traits = dict(traits or {})
    account.timezone = timezone
    session.flush()
    return account


def upsert_contact(
    session: Session,
    account: Account,
    email: str,
    *,
    name: str = "",
    role: ContactRole = ContactRole.OTHER,
    external_id: str | None = None,
    locale: str = "en",
    timezone: str | None = None,
) -> Contact:
    email = email.strip().lower()
    contact = session.scalar(select(Contact).where(Contact.account_id == account.id, Contact.email == email))
    if contact is None:
        contact = Contact(account=account, email=email)
        session.add(contact)
    contact.name = name or contact.name
    contact.role = role
    contact.external_id = external_id or contact.external_id
    contact.locale = locale
    contact.timezone = timezone
    session.flush()
    return contact
