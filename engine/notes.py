"""Notes CS ops keep on an account (Account 360): who wrote what, when; newest first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ForeignKey, Index, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.accounts import Account
from engine.db import Base, utcnow
from engine.errors import ValidationFailed

MAX_NOTE = 4000
MAX_AUTHOR = 200


class AccountNote(Base):
    __tablename__ = "account_notes"
    __table_args__ = (Index("ix_account_notes_account_time", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(MAX_AUTHOR))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def add_note(session: Session, account: Account, body: str, *, author: str, now: dt.datetime) -> AccountNote:
    """Store a note; the text is trimmed, must not be empty, and is at most MAX_NOTE characters."""
    text = body.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationFailed({"body": "write the note first"})
    if len(text) > MAX_NOTE:
        raise ValidationFailed(
            {"body": f"a note has at most {MAX_NOTE:,} characters (this one has {len(text):,})"}
        )
    if "\x00" in text:
        raise ValidationFailed({"body": "a note must not contain NUL characters"})
    note = AccountNote(account_id=account.id, author=author[:MAX_AUTHOR], body=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def account_notes(session: Session, account_id: int, *, limit: int = 50) -> Sequence[AccountNote]:
    """The account's latest notes, newest first."""
    query = (
        select(AccountNote)
        .where(AccountNote.account_id == account_id)
        .order_by(AccountNote.created_at.desc(), AccountNote.id.desc())
        .limit(max(1, limit))
    )
    return session.scalars(query).all()


def count_notes(session: Session, account_id: int) -> int:
    return int(
        session.scalar(select(func.count(AccountNote.id)).where(AccountNote.account_id == account_id)) or 0
    )
