"""Who is answering: a host backend's signed JWT (HS256, per-workspace secret) names the contact."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt
from sqlalchemy import ColumnElement, Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from engine.accounts import Account, Contact, ContactRole, upsert_account
from engine.errors import NorthstarError
from engine.workspaces import WorkspaceKeys

MAX_TOKEN_LIFETIME = dt.timedelta(days=1)
CLOCK_SKEW = dt.timedelta(seconds=30)


class IdentityRejected(NorthstarError):
    status = 401
    title = "Identity token rejected"


@dataclass(frozen=True)
class Identity:
    """A verified respondent: the host vouched for this contact of this account."""

    contact_external_id: str
    account_external_id: str
    email: str | None
    name: str
    account_name: str | None


def verify_identity(workspace: WorkspaceKeys, token: str, *, now: dt.datetime) -> Identity:
    """Check an HS256 JWT from the host: signature (current or grace-period secret), exp, claims."""
    claims = None
    for secret in workspace.secrets_at(now):
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                options={"require": ["sub", "exp"], "verify_iat": False},
                leeway=CLOCK_SKEW,
            )
            break
        except jwt.ExpiredSignatureError:
            raise IdentityRejected(
                "the identity token has expired; ask the host page for a new one"
            ) from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError as exc:
            raise IdentityRejected(f"the identity token is not valid: {exc}") from None
    if claims is None:
        raise IdentityRejected("the identity token is not signed with this workspace's secret")
    exp = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
    if exp - now > MAX_TOKEN_LIFETIME + CLOCK_SKEW:
        raise IdentityRejected("identity tokens may live at most one day (set a shorter exp)")
    account = claims.get("account")
    if not isinstance(account, str) or not account or not isinstance(claims["sub"], str):
        raise IdentityRejected("the identity token needs string claims 'sub' and 'account'")
    email = claims.get("email")
    return Identity(
        contact_external_id=claims["sub"],
        account_external_id=account,
        email=email.strip().lower() if isinstance(email, str) and "@" in email else None,
        name=str(claims.get("name") or ""),
        account_name=str(claims["account_name"]) if claims.get("account_name") else None,
    )


def contact_match(by_email: bool) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """How an identity finds its contact among the account's (an outer join's ON clause), and the
    ordering that prefers a match by external id over one by email. Bind parameters: `account`,
    `contact` and, with `by_email`, `email`."""
    by_external_id = Contact.external_id == bindparam("contact")
    matches = [by_external_id, Contact.email == bindparam("email")] if by_email else [by_external_id]
    return and_(Contact.account_id == Account.id, or_(*matches)), by_external_id


def identity_params(identity: Identity) -> dict[str, str]:
    params = {"account": identity.account_external_id, "contact": identity.contact_external_id}
    if identity.email:
        params["email"] = identity.email
    return params


def _find_statement(by_email: bool) -> Select[Account, Contact]:
    on_contact, by_external_id = contact_match(by_email)
    return (
        select(Account, Contact)
        .outerjoin(Contact, on_contact)
        .where(Account.external_id == bindparam("account"))
        .order_by(by_external_id.desc().nulls_last())
        .limit(1)
    )


# Built once (with and without an email claim): constructing them cost more than running them.
_FIND = {by_email: _find_statement(by_email) for by_email in (False, True)}


def _find(session: Session, identity: Identity) -> tuple[Account | None, Contact | None]:
    """One query finds both: the account, and its contact by external id (preferred) or by email."""
    row = session.execute(_FIND[bool(identity.email)], identity_params(identity)).first()
    return (row[0], row[1]) if row is not None else (None, None)


def known_contact(session: Session, identity: Identity) -> Contact | None:
    """The contact the token names if Northstar knows it already; creates and changes nothing.

    For reads that run alongside the widget's first request (a contact new to us has no messages):
    two requests both creating the same account would make one of them fail."""
    return _find(session, identity)[1]


def resolve_identity(session: Session, identity: Identity, *, flush: bool = True) -> tuple[Account, Contact]:
    """The account and contact the token names, created on first sight (the host vouches for them).

    `flush=False` leaves a new contact pending, for a caller that flushes it with its own rows
    (a survey submission stores it together with the response: one flush instead of two)."""
    account, contact = adopt(session, identity, *_find(session, identity))
    if flush:
        session.flush()
    return account, contact


def adopt(
    session: Session, identity: Identity, account: Account | None, contact: Contact | None
) -> tuple[Account, Contact]:
    """The account and contact found for `identity` (either may be missing), created or brought
    up to date from its claims; new and changed rows are left for the caller's flush."""
    if account is None:
        account = upsert_account(
            session, identity.account_external_id, name=identity.account_name or identity.account_external_id
        )
    if contact is None:
        contact = Contact(account=account, email=_new_contact_email(identity), role=ContactRole.OTHER)
        session.add(contact)
    if contact.external_id != identity.contact_external_id:
        contact.external_id = identity.contact_external_id
    if identity.name and contact.name != identity.name:
        contact.name = identity.name
    return account, contact


def unsaved_contact(identity: Identity, account: Account) -> Contact:
    """The contact `identity` names, new to `account`, as an object outside any session (for a
    caller that INSERTs it itself: surveys.service stores it with the response in one statement)."""
    return Contact(
        account_id=account.id,
        external_id=identity.contact_external_id,
        email=_new_contact_email(identity),
        name=identity.name,
        role=ContactRole.OTHER,
        locale="en",
    )


def _new_contact_email(identity: Identity) -> str:
    if not identity.email:
        raise IdentityRejected("this contact is new to us: the identity token needs an 'email' claim")
    return identity.email
