"""Mail backends: SendGrid v3 through the official library (one request per batch), or an outbox
folder of .eml files for laptops and the demo. Both personalise with the same substitutions."""

from __future__ import annotations

import http.client
import logging
import urllib.error
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol

import sendgrid
from python_http_client import exceptions as http_errors

from content.emails import personalise
from engine.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    message_id: int
    email: str
    name: str
    subject: str
    substitutions: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    content_ids: tuple[int, ...] = ()  # library items in this email (content.tracking.record_sends)


@dataclass(frozen=True)
class BulkEmail:
    sender: str
    html: str
    text: str
    recipients: list[Recipient]
    category: str = "nudge"


class TransientSendError(Exception):
    """The provider said 'later' (429, 5xx, connection refused): retry with backoff."""


class PermanentSendError(Exception):
    """The provider refused the request (4xx): do not retry, record why."""


class AmbiguousSendError(Exception):
    """No answer (timeout): the provider may have sent it; never resend blindly."""


class MailBackend(Protocol):
    def send(self, email: BulkEmail) -> str:
        """Send to every recipient; return the provider's batch/message id."""


class SendGridBackend:
    def __init__(self, api_key: str, host: str, timeout: float) -> None:
        self.client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self.timeout = timeout

    def request_body(self, email: BulkEmail) -> dict[str, object]:
        name, address = parseaddr(email.sender)
        return {
            "from": {"email": address, "name": name} if name else {"email": address},
            "personalizations": [
                {
                    "to": [{"email": r.email, "name": r.name} if r.name else {"email": r.email}],
                    "subject": r.subject,
                    "substitutions": r.substitutions,
                    "custom_args": {"message_id": str(r.message_id)},
                    "headers": r.headers,
                }
                for r in email.recipients
            ],
            "content": [
                {"type": "text/plain", "value": email.text},
                {"type": "text/html", "value": email.html},
            ],
            "categories": [email.category],
        }

    def send(self, email: BulkEmail) -> str:
        try:
            response = self.client.client.mail.send.post(
                request_body=self.request_body(email), timeout=self.timeout
            )
        except (http_errors.TooManyRequestsError, http_errors.ServiceUnavailableError) as exc:
            raise TransientSendError(f"SendGrid {exc.status_code}: {exc.body!r}") from exc
        except http_errors.HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            if status >= 500:
                raise TransientSendError(f"SendGrid {status}: {exc.body!r}") from exc
            raise PermanentSendError(f"SendGrid {status}: {exc.body!r}") from exc
        except TimeoutError as exc:
            # A read timeout: the whole request went out and the answer never came.
            raise AmbiguousSendError(f"SendGrid did not answer in {self.timeout}s") from exc
        except urllib.error.URLError as exc:
            # urllib wraps only failures while connecting or writing the request (refused, DNS, a
            # connect timeout): SendGrid never received a whole request, so a retry cannot duplicate.
            raise TransientSendError(f"SendGrid unreachable: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            # The request was written, then the connection broke before a whole answer arrived.
            raise AmbiguousSendError(f"SendGrid's answer was lost: {exc!r}") from exc
        headers = getattr(response, "headers", None)
        provider_id = headers.get("X-Message-Id") if headers is not None else None
        return str(provider_id or "")


class OutboxBackend:
    """Writes one RFC 5322 .eml file per recipient, exactly as the recipient would receive it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, email: BulkEmail) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        batch_id = uuid.uuid4().hex
        for recipient in email.recipients:
            message = EmailMessage()
            message["From"] = email.sender
            message["To"] = formataddr((recipient.name, recipient.email))
            message["Subject"] = recipient.subject
            message["Message-ID"] = make_msgid(domain="northstar.local")
            message["X-Northstar-Message-Id"] = str(recipient.message_id)
            for header, value in recipient.headers.items():
                message[header] = value
            message.set_content(personalise(email.text, recipient.substitutions))
            message.add_alternative(personalise(email.html, recipient.substitutions), subtype="html")
            path = self.directory / f"{recipient.message_id:08d}.eml"
            tmp = path.with_suffix(".eml.tmp")
            tmp.write_bytes(bytes(message))
            tmp.replace(path)  # atomic: a reader never sees half a file
        return batch_id


def backend_for(settings: Settings) -> MailBackend:
    if settings.mail_backend == "sendgrid":
        assert settings.sendgrid_api_key, "checked in settings_from_env"
        return SendGridBackend(
            settings.sendgrid_api_key, settings.sendgrid_api_host, settings.sendgrid_timeout_s
        )
    return OutboxBackend(settings.outbox_dir)
