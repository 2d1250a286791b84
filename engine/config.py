"""Settings: read once from the environment, typed, validated, with safe laptop defaults."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from limits import parse_many
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from engine.errors import ConfigurationError

MAIL_BACKENDS = ("sendgrid", "outbox")
DEFAULT_SQLITE = "sqlite:///northstar.sqlite3"
DEV_SECRET = "dev-insecure-secret-change-me"
MAX_JOB_LINGER_MS = 10_000
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes "²"
REDIS_DB = re.compile(r"/?([0-9]{1,5})?/?")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_SQLITE
    redis_url: str | None = None
    secret_key: str = DEV_SECRET
    mail_backend: str = "outbox"
    outbox_dir: Path = Path("outbox")
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_timeout_s: float = 10.0
    # SendGrid's "Signed Event Webhook" verification key (base64 DER, as the dashboard shows it);
    # without it the event webhook refuses every request.
    sendgrid_webhook_public_key: str | None = None
    mail_from: str = "Northstar <success@northstar.example>"
    postal_address: str = "Northstar Inc., 1 Harbour Street, Portland, ME 04101, USA"
    public_url: str = "http://127.0.0.1:5000"
    # Where customer changes to a plan are reported when the account has no `owner_email` trait.
    ops_email: str | None = None
    max_request_bytes: int = 1_000_000
    rate_limits_enabled: bool = True
    response_limit_per_ip: str = "120/minute"
    response_limit_per_contact: str = "20/minute"
    old_secret_keys: tuple[str, ...] = ()
    # Frequency caps across email and in-app over the trailing 7 days (0: no cap): nudges (campaign
    # steps) per account, messages per contact.
    cap_account_per_week: int = 3
    cap_contact_per_week: int = 3
    # The demo may run jobs in-process when Redis is not configured; servers never do.
    allow_sync_jobs: bool = False
    # How long a coalesced job (the `rules` job, the reports' summary refresh) waits after it was
    # queued before it starts, so the commits of that moment join it (engine.queue, ADR 0012).
    job_linger_ms: int = 250
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from NORTHSTAR_* variables; raise ConfigurationError naming the bad one."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if url := env.get("NORTHSTAR_DATABASE_URL"):
        values["database_url"] = normalise_database_url(url)
    if url := env.get("NORTHSTAR_REDIS_URL"):
        values["redis_url"] = redis_url(url)
    if secret := env.get("NORTHSTAR_SECRET_KEY"):
        if len(secret) < 16:
            raise ConfigurationError("NORTHSTAR_SECRET_KEY must be at least 16 characters long")
        values["secret_key"] = secret
    backend = env.get("NORTHSTAR_MAIL_BACKEND")
    if backend:
        if backend not in MAIL_BACKENDS:
            raise ConfigurationError(
                f"NORTHSTAR_MAIL_BACKEND={backend!r} is not one of: {', '.join(MAIL_BACKENDS)}"
            )
        values["mail_backend"] = backend
    if key := env.get("SENDGRID_API_KEY"):
        values["sendgrid_api_key"] = key
    if host := env.get("NORTHSTAR_SENDGRID_API_HOST"):
        if urlparse(host).scheme not in ("http", "https"):
            raise ConfigurationError(f"NORTHSTAR_SENDGRID_API_HOST={host!r} must be an http(s) URL")
        values["sendgrid_api_host"] = host.rstrip("/")
    if key := env.get("NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        webhook_public_key(key)  # refuse to start with a key that could never verify anything
        values["sendgrid_webhook_public_key"] = key.strip()
    if old := env.get("NORTHSTAR_OLD_SECRET_KEYS"):
        values["old_secret_keys"] = tuple(k.strip() for k in old.split(",") if k.strip())
    for name, field_name in (
        ("NORTHSTAR_RESPONSE_LIMIT_PER_IP", "response_limit_per_ip"),
        ("NORTHSTAR_RESPONSE_LIMIT_PER_CONTACT", "response_limit_per_contact"),
    ):
        if limit := env.get(name):
            try:
                parsed = parse_many(limit)
            except ValueError:
                parsed = []
            if not parsed:
                raise ConfigurationError(f"{name}={limit!r} is not a rate like 120/minute")
            values[field_name] = limit
    if env.get("NORTHSTAR_RATE_LIMITS", "").lower() in ("off", "0", "false"):
        values["rate_limits_enabled"] = False
    for name, field_name in (
        ("NORTHSTAR_CAP_ACCOUNT_PER_WEEK", "cap_account_per_week"),
        ("NORTHSTAR_CAP_CONTACT_PER_WEEK", "cap_contact_per_week"),
    ):
        if (raw := env.get(name)) is not None:
            if not WHOLE_NUMBER.fullmatch(raw) or int(raw) > 1000:
                raise ConfigurationError(f"{name}={raw!r} must be a whole number from 0 (no cap) to 1000")
            values[field_name] = int(raw)
    if (raw := env.get("NORTHSTAR_JOB_LINGER_MS")) is not None:
        if not WHOLE_NUMBER.fullmatch(raw) or int(raw) > MAX_JOB_LINGER_MS:
            raise ConfigurationError(
                f"NORTHSTAR_JOB_LINGER_MS={raw!r} must be a whole number of milliseconds from 0 to "
                f"{MAX_JOB_LINGER_MS}"
            )
        values["job_linger_ms"] = int(raw)
    if outbox := env.get("NORTHSTAR_OUTBOX_DIR"):
        if Path(outbox).exists() and not Path(outbox).is_dir():
            raise ConfigurationError(f"NORTHSTAR_OUTBOX_DIR={outbox!r} is a file, not a directory")
        values["outbox_dir"] = Path(outbox)
    if sender := env.get("NORTHSTAR_MAIL_FROM"):
        values["mail_from"] = sender
    if ops := env.get("NORTHSTAR_OPS_EMAIL"):
        if "@" not in ops or len(ops) > 320:
            raise ConfigurationError(f"NORTHSTAR_OPS_EMAIL={ops!r} is not an email address")
        values["ops_email"] = ops.strip()
    if public_url := env.get("NORTHSTAR_PUBLIC_URL"):
        values["public_url"] = public_url.rstrip("/")
    settings = Settings(**values)
    if settings.mail_backend == "sendgrid" and not settings.sendgrid_api_key:
        raise ConfigurationError("NORTHSTAR_MAIL_BACKEND=sendgrid needs SENDGRID_API_KEY to be set")
    return settings


def normalise_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and use the psycopg 3 driver;
    refuse, naming the variable, a URL SQLAlchemy cannot parse or whose driver is not installed."""
    usage = "use postgresql://… (psycopg 3) or sqlite:///path"
    try:
        scheme = urlparse(url).scheme
    except ValueError:
        scheme = ""
    if scheme in ("postgres", "postgresql"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    elif not (scheme.startswith("postgresql+") or scheme.startswith("sqlite")):
        raise ConfigurationError(f"NORTHSTAR_DATABASE_URL={masked(url)!r}: {usage}")
    try:
        make_url(url).get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        raise ConfigurationError(
            f"NORTHSTAR_DATABASE_URL={masked(url)!r} needs a driver that is not installed: {usage}"
        ) from None
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(f"NORTHSTAR_DATABASE_URL is not a valid URL ({exc}): {usage}") from None
    return url


def masked(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def redis_url(url: str) -> str:
    """A redis://host:port/db URL redis-py will use as written (it quietly falls back to db 0 when
    the db is not a number), or ConfigurationError naming NORTHSTAR_REDIS_URL."""
    example = "e.g. redis://127.0.0.1:6379/0"
    parsed = urlparse(url)
    try:
        port_ok = parsed.port is None or parsed.port > 0
    except ValueError:
        port_ok = False
    if parsed.scheme == "unix" and parsed.path:
        return url
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ConfigurationError(f"NORTHSTAR_REDIS_URL={masked(url)!r} is not a redis:// URL ({example})")
    if not port_ok:
        raise ConfigurationError(f"NORTHSTAR_REDIS_URL={masked(url)!r}: the port is not a number ({example})")
    if not REDIS_DB.fullmatch(parsed.path):
        raise ConfigurationError(
            f"NORTHSTAR_REDIS_URL={masked(url)!r}: the database after the port is a number ({example})"
        )
    return url


def webhook_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's event-webhook verification key as the library's EventWebhook helper loads it;
    PEM armour and line breaks pasted along with it are tolerated."""
    lines = (line.strip() for line in value.strip().splitlines())
    body = "".join(line for line in lines if line and not line.startswith("-----"))
    try:
        key = EventWebhook().convert_public_key_to_ecdsa(body)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigurationError(
            "NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY is not a valid public key: paste the verification key"
            " from SendGrid (Settings > Mail Settings > Event Webhook > Signature Verification)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigurationError(
            "NORTHSTAR_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key: SendGrid signs events"
            " with P-256; paste the verification key from the Event Webhook settings"
        )
    return key
