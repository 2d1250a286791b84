"""The recruiting playbook's field catalogue on the real database, and JSON pointers into conditions:
what the catalogue tests and the rule properties share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine.accounts import TraitDefinition, TraitType
from engine.playbook import import_playbook, resolve_playbook
from engine.rules.catalogue import Catalogue, build_catalogue

RECRUITING = resolve_playbook("recruiting")[1]
OUTCOME_KEYS = ["hire_better", "hire_faster", "keep_people", "manager_control"]


def import_recruiting(session: Session) -> None:
    import_playbook(session, RECRUITING)
    session.add(TraitDefinition(key="region", type=TraitType.STRING, description="sales region"))
    session.add(TraitDefinition(key="renewal_date", type=TraitType.DATE))
    session.flush()


def build_recruiting_catalogue(pg_engine: Engine) -> Catalogue:
    """The catalogue of a database with the recruiting playbook imported (rolled back after)."""
    with pg_engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            import_recruiting(session)
            return build_catalogue(session)
        finally:
            session.close()
            outer.rollback()


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901: the value `pointer` names in `document` (KeyError/IndexError when it names none)."""
    if pointer == "":
        return document
    assert pointer.startswith("/"), pointer
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, list):
            assert token.isdigit() and (token == "0" or not token.startswith("0")), pointer
            document = document[int(token)]
        elif isinstance(document, dict):
            document = document[token]
        else:
            raise KeyError(pointer)
    return document
