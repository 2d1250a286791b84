"""What the SendGrid sink checks and records of a v3 mail/send body: SendGrid's validation rules
and messages, and the per-recipient expansion of an accepted request (see campaigns.sink)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

MAIL_SEND_PATH = "/v3/mail/send"
MAX_BODY_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000

_MSG_PERSONALIZATIONS = "The personalizations field is required and must have at least one personalization."
_MSG_TOO_MANY_PERSONALIZATIONS = (
    f"You may not include more than {MAX_PERSONALIZATIONS} personalizations per API request."
)
_MSG_TOO_MANY_RECIPIENTS = (
    f"The total number of recipients must be no more than {MAX_RECIPIENTS}. This includes all"
    " recipients defined within the to, cc, and bcc parameters, across each personalization."
)
_MSG_TO = (
    "The to array is required for all personalization objects, and must have at least one email"
    " object with a valid email address."
)
_MSG_BAD_ADDRESS = "Does not contain a valid address."
_MSG_FROM = (
    "The from object must be provided for every email send. It is an object that requires the"
    ' email parameter, but may also contain a name parameter. e.g. {"email": "a@example.com"}'
)
_MSG_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template with a"
    " subject defined or if every personalization has a subject defined."
)
_MSG_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at"
    " least one defined content block."
)
_MSG_CONTENT_VALUE = "The content value must be a string at least one character in length."
_MSG_CONTENT_TYPE = "The content type must be a string at least one character in length."
_MSG_CONTENT_ORDER = (
    "If present, text/plain content must be first, followed by text/html, followed by any other content."
)
_MSG_TEMPLATE_ID = "The template_id must be a non-empty string."
_MSG_BAD_REQUEST = "Bad Request"  # what SendGrid says for non-string custom_args/substitutions

JSONDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CapturedRequest:
    """One HTTP request to the mail-send endpoint, as received."""

    path: str
    headers: dict[str, str]
    body: JSONDict  # parsed JSON; ``{}`` when the body was missing, too large or not an object
    received_at: float  # time.time() when the request was read
    status: int = 202  # what the sink answered
    message_id: str | None = None  # the X-Message-Id returned for accepted requests


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One email as SendGrid would deliver it: a single ``to`` recipient of one personalization."""

    to: str
    subject: str | None
    custom_args: dict[str, str]
    substitutions: dict[str, str]
    headers: dict[str, str]
    html: str | None
    text: str | None
    from_email: str | None
    to_name: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    template_id: str | None = None
    dynamic_template_data: JSONDict = field(default_factory=dict)
    send_at: int | None = None
    x_message_id: str | None = None  # X-Message-Id of the request that carried this message
    received_at: float = 0.0


class MailSendError(Exception):
    def __init__(self, message: str, field_name: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field_name = field_name


def error_body(message: str, field_name: str | None = None) -> JSONDict:
    return {"errors": [{"message": message, "field": field_name, "help": None}]}


def _is_email(value: object) -> bool:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain and "." in domain and not domain.startswith("."))


def _emails(p: JSONDict, key: str, index: int, seen: set[str], required: bool) -> int:
    """Validate ``p[key]`` (a list of email objects); return how many recipients it holds."""
    items = p.get(key)
    if items is None and not required:
        return 0
    if not isinstance(items, list) or (required and not items):
        raise MailSendError(_MSG_TO, f"personalizations.{index}.{key}")
    for j, item in enumerate(items):
        email = item.get("email") if isinstance(item, dict) else None
        if not _is_email(email):
            raise MailSendError(_MSG_BAD_ADDRESS, f"personalizations.{index}.{key}.{j}.email")
        lowered = cast(str, email).lower()
        if lowered in seen:
            raise MailSendError(
                "Each email address in the personalization block should be unique between to,"
                f" cc, and bcc. We found the first duplicate instance of [{email}] in the"
                f" personalizations.{index}.{key} field.",
                f"personalizations.{index}",
            )
        seen.add(lowered)
    return len(items)


def _check_string_map(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MailSendError(_MSG_BAD_REQUEST, None)


def validate_mail_send(body: object) -> int:
    """Validate a mail-send body like SendGrid; return the number of ``to`` recipients."""
    if not isinstance(body, dict):
        raise MailSendError(_MSG_BAD_REQUEST, None)
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise MailSendError(_MSG_PERSONALIZATIONS, "personalizations")
    if len(personalizations) > MAX_PERSONALIZATIONS:
        raise MailSendError(_MSG_TOO_MANY_PERSONALIZATIONS, "personalizations")

    template_id = body.get("template_id")
    if template_id is not None and (not isinstance(template_id, str) or not template_id):
        raise MailSendError(_MSG_TEMPLATE_ID, "template_id")
    top_subject = body.get("subject")
    has_top_subject = isinstance(top_subject, str) and bool(top_subject)
    top_from = body.get("from")
    has_top_from = isinstance(top_from, dict) and "email" in top_from
    if has_top_from and not _is_email(cast(JSONDict, top_from)["email"]):
        raise MailSendError("The from email does not contain a valid address.", "from.email")
    _check_string_map(body.get("custom_args"))

    to_count = 0
    recipients = 0
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            raise MailSendError(_MSG_TO, f"personalizations.{i}.to")
        seen: set[str] = set()
        n_to = _emails(p, "to", i, seen, required=True)
        to_count += n_to
        recipients += n_to + _emails(p, "cc", i, seen, False) + _emails(p, "bcc", i, seen, False)
        if not has_top_from:
            p_from = p.get("from")
            if not isinstance(p_from, dict) or not _is_email(p_from.get("email")):
                raise MailSendError(_MSG_FROM, "from.email")
        if not has_top_subject and template_id is None:
            subject = p.get("subject")
            if not isinstance(subject, str) or not subject:
                raise MailSendError(_MSG_SUBJECT, "subject")
        _check_string_map(p.get("custom_args"))
        _check_string_map(p.get("substitutions"))
    if recipients > MAX_RECIPIENTS:
        raise MailSendError(_MSG_TOO_MANY_RECIPIENTS, "personalizations")

    content = body.get("content")
    if content is None and template_id is not None:
        return to_count
    if not isinstance(content, list) or not content:
        raise MailSendError(_MSG_CONTENT, "content")
    types: list[str] = []
    for k, block in enumerate(content):
        if not isinstance(block, dict):
            raise MailSendError(_MSG_CONTENT, "content")
        ctype, value = block.get("type"), block.get("value")
        if not isinstance(ctype, str) or not ctype:
            raise MailSendError(_MSG_CONTENT_TYPE, f"content.{k}.type")
        if not isinstance(value, str) or not value:
            raise MailSendError(_MSG_CONTENT_VALUE, f"content.{k}.value")
        types.append(ctype.lower())
    expected_prefix = [t for t in ("text/plain", "text/html") if t in types]
    if types[: len(expected_prefix)] != expected_prefix:
        raise MailSendError(_MSG_CONTENT_ORDER, "content")
    return to_count


def _substitute(text: str | None, subs: dict[str, str]) -> str | None:
    if text is None or not subs:
        return text
    for key in sorted(subs, key=len, reverse=True):  # longest first: "-name-" vs "-name-full-"
        text = text.replace(key, subs[key])
    return text


def _content(body: JSONDict, ctype: str) -> str | None:
    for block in body.get("content") or ():
        if isinstance(block, dict) and str(block.get("type", "")).lower() == ctype:
            value = block.get("value")
            return value if isinstance(value, str) else None
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    return list(value) if isinstance(value, list) else value


def expand_messages(req: CapturedRequest) -> list[CapturedMessage]:
    body = req.body
    html, text = _content(body, "text/html"), _content(body, "text/plain")
    top_from: JSONDict = body["from"] if isinstance(body.get("from"), dict) else {}
    top_custom = dict(body.get("custom_args") or {})
    top_headers = dict(body.get("headers") or {})
    categories = list(body.get("categories") or [])
    out: list[CapturedMessage] = []
    for p in body.get("personalizations") or ():
        subs = dict(p.get("substitutions") or {})
        subject = p.get("subject") or body.get("subject")
        p_from: JSONDict = p["from"] if isinstance(p.get("from"), dict) else top_from
        common: JSONDict = {
            "subject": _substitute(subject, subs),
            "custom_args": {**top_custom, **(p.get("custom_args") or {})},
            "substitutions": subs,
            "headers": {**top_headers, **(p.get("headers") or {})},
            "html": _substitute(html, subs),
            "text": _substitute(text, subs),
            "from_email": p_from.get("email"),
            "cc": [e.get("email") for e in p.get("cc") or ()],
            "bcc": [e.get("email") for e in p.get("bcc") or ()],
            "categories": categories,
            "template_id": body.get("template_id"),
            "dynamic_template_data": dict(p.get("dynamic_template_data") or {}),
            "send_at": p.get("send_at", body.get("send_at")),
            "x_message_id": req.message_id,
            "received_at": req.received_at,
        }
        for recipient in p.get("to") or ():
            out.append(
                CapturedMessage(
                    to=recipient.get("email"),
                    to_name=recipient.get("name"),
                    **{k: _copy(v) for k, v in common.items()},
                )
            )
    return out
