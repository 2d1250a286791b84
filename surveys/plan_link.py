"""A link to "the plan this response makes", handed out before the `rules` job has made it.

The widget and API answer a completed response at once and leave the plan to a job
(surveys.rules_queue); their `plan.share_url` is this link until the plan exists. It is signed,
names only the response, and expires (`MAX_AGE`): past that, the plan's own revocable link (sent by
email) is the way in, so rotating a plan's link still revokes every way to it but a day-old one.
"""

from __future__ import annotations

from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from engine.errors import NotFound

SALT = "northstar.response-plan"
MAX_AGE_SECONDS = 24 * 3600


@lru_cache(maxsize=8)
def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def response_plan_token(secret_key: str, response_id: int) -> str:
    return str(_serializer(secret_key).dumps(response_id))


def response_id_from_token(secret_key: str, token: str, *, max_age: int = MAX_AGE_SECONDS) -> int:
    try:
        found = _serializer(secret_key).loads(token, max_age=max_age)
    except SignatureExpired:
        raise NotFound("this link has expired; open your plan with the link in your email") from None
    except BadSignature:
        raise NotFound("this plan link is not valid") from None
    if not isinstance(found, int) or isinstance(found, bool):
        raise NotFound("this plan link is not valid")
    return found
