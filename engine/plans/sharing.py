"""Signed, revocable links to a plan: the token carries the plan id and its share version."""

from __future__ import annotations

from functools import lru_cache

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from engine.errors import NotFound
from engine.plans.models import SuccessPlan

SALT = "northstar.plan-share"


@lru_cache(maxsize=8)
def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def plan_token(secret_key: str, plan: SuccessPlan) -> str:
    return str(_serializer(secret_key).dumps([plan.id, plan.share_token_version]))


def plan_from_token(session: Session, secret_key: str, token: str) -> SuccessPlan:
    """The plan a token opens; forged tokens and tokens of a rotated (revoked) link are refused."""
    try:
        plan_id, version = _serializer(secret_key).loads(token)
    except (BadSignature, ValueError, TypeError):
        raise NotFound("this plan link is not valid") from None
    plan = session.get(SuccessPlan, plan_id)
    if plan is None or plan.share_token_version != version:
        raise NotFound("this plan link is no longer valid; ask for a new one") from None
    return plan
