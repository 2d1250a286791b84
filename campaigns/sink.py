"""Owns the local SendGrid-v3 mail-send sink: a real HTTP server that captures what would be sent.

Tests, benchmarks and local development point the official ``sendgrid`` client at
``SendGridSink.url`` so the real library is exercised over real HTTP.  The sink validates
``POST /v3/mail/send`` the way SendGrid does (auth, personalizations, from, subject, content,
string-only custom_args/substitutions, 1000-recipient and 30 MB limits), answers ``202`` with an
``X-Message-Id`` header, and records every accepted request.  Failures, slow answers and lost
answers can be scripted with :meth:`SendGridSink.fail_next`, :meth:`SendGridSink.delay_next` and
:meth:`SendGridSink.drop_next`.

Stdlib only; the server is a ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive, and all
per-message expansion (substitutions, merges) happens lazily in :meth:`SendGridSink.messages`, so
the request path stays cheap enough for thousands of recipients per second.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from campaigns.sink_payload import (
    MAIL_SEND_PATH,
    MAX_BODY_BYTES,
    CapturedMessage,
    CapturedRequest,
    JSONDict,
    MailSendError,
    error_body,
    expand_messages,
    validate_mail_send,
)

__all__ = ["CapturedMessage", "CapturedRequest", "SendGridSink"]

_DRAIN_CHUNK = 1024 * 1024
_MSG_BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    body: JSONDict


def _default_failure_body(status: int) -> JSONDict:
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    return {"errors": [{"field": None, "message": phrase}]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], sink: SendGridSink) -> None:
        self.sink = sink
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse-DNS lookup that can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out (see delay_next) hang up before the answer: not an error here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NorthstarSendGridSink/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections are dropped after this many seconds
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing ---------------------------------------------------------------------------

    def _respond(
        self, status: int, payload: JSONDict | None = None, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if data:
                self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        """Read the request body; ``None`` (after draining it) when it exceeds the size limit."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            return b""
        if length > MAX_BODY_BYTES:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(_DRAIN_CHUNK, remaining))
                if not chunk:
                    self.close_connection = True
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _not_found(self) -> None:
        self._read_body()
        self._respond(404, {"errors": [{"field": None, "message": "resource not found"}]})

    def _other(self) -> None:
        if self.path.split("?", 1)[0] != MAIL_SEND_PATH:
            self._not_found()
            return
        self._read_body()
        self._respond(405, {"errors": [{"field": None, "message": "method not allowed"}]}, {"Allow": "POST"})

    do_GET = do_PUT = do_PATCH = do_DELETE = _other

    # -- mail send --------------------------------------------------------------------------

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path != MAIL_SEND_PATH:
            self._not_found()
            return
        sink = self.server.sink
        raw = self._read_body()
        received_at = time.time()
        headers = dict(self.headers.items())
        body: object = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        body_dict: JSONDict = body if isinstance(body, dict) else {}

        def reject(
            status: int, payload: JSONDict, extra: dict[str, str] | None = None, delay: float = 0
        ) -> None:
            sink._record(CapturedRequest(path, headers, body_dict, received_at, status))
            sink._sleep(delay)
            self._respond(status, payload, extra)

        auth = self.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            reject(401, {"errors": [{"field": None, "message": "authorization required"}]})
            return
        if token == "None":  # the sendgrid client sends "Bearer None" when no key is configured
            reject(401, {"errors": [{"field": None, "message": _MSG_BAD_KEY}]})
            return
        delay, failure = sink._take_script()
        if failure is not None:
            extra: dict[str, str] = {}
            if failure.status == 429:
                reset = str(int(time.time()) + 1)
                extra = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0"}
                extra["X-RateLimit-Reset"] = reset
            reject(failure.status, failure.body, extra, delay)
            return
        if raw is None:
            reject(413, {"errors": [{"field": None, "message": "Payload Too Large"}]}, None, delay)
            return
        try:
            n_to = validate_mail_send(body)
        except MailSendError as exc:
            reject(400, error_body(exc.message, exc.field_name), None, delay)
            return
        message_id = secrets.token_urlsafe(16)
        sink._record(CapturedRequest(path, headers, body_dict, received_at, 202, message_id), n_to)
        sink._sleep(delay)
        if sink._take_drop():
            self.close_connection = True  # accepted, then the connection breaks: no answer at all
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._respond(202, None, {"X-Message-Id": message_id})


class SendGridSink:
    """A SendGrid-v3-compatible mail-send server capturing requests (tests, benchmarks, local dev).

    Use as a context manager (``with SendGridSink() as sink:``) or call :meth:`start` and
    :meth:`stop`.  Pass :attr:`url` as ``host=`` to ``sendgrid.SendGridAPIClient``.

    * ``requests`` -- accepted (202) mail-send requests, in arrival order.
    * ``rejected`` -- every mail-send request answered with an error (401, 400, 413, or a
      status scripted with :meth:`fail_next`); these were *not* sent.
    * :meth:`messages` -- the accepted requests expanded to one message per ``to`` recipient.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[CapturedRequest] = []
        self.rejected: list[CapturedRequest] = []
        self._cond = threading.Condition(threading.Lock())
        self._message_count = 0
        self._failures: deque[_Failure] = deque()
        self._delays: deque[float] = deque()
        self._drops = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> SendGridSink:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("SendGridSink is already running")
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sendgrid-sink:{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in delay_next
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SendGridSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the client appends ``/v3/...``)."""
        if self._server is None:
            raise RuntimeError("SendGridSink is not running; call start() first")
        host = self._server.server_name
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._server.server_port}"

    # -- scripting --------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1, body: JSONDict | None = None) -> None:
        """Answer the next ``count`` authorised mail-send requests with ``status`` (and ``body``).

        They are recorded in :attr:`rejected`, never in :attr:`requests`.  A 429 also carries
        SendGrid's ``X-RateLimit-*`` headers.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"fail_next needs an error status (400-599), got {status}")
        if count < 0:
            raise ValueError("count must be >= 0")
        payload = body if body is not None else _default_failure_body(status)
        with self._cond:
            self._failures.extend(_Failure(status, payload) for _ in range(count))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Sleep ``seconds`` before answering the next ``count`` authorised mail-send requests.

        The request is captured *before* the sleep: this models the ambiguous timeout where
        SendGrid accepted the mail but the client gave up before hearing the 202.
        """
        if seconds < 0 or count < 0:
            raise ValueError("seconds and count must be >= 0")
        with self._cond:
            self._delays.extend(float(seconds) for _ in range(count))

    def drop_next(self, count: int = 1) -> None:
        """Accept the next ``count`` valid mail-send requests, then close the connection without
        answering: SendGrid has the mail but the client only sees a broken connection."""
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._cond:
            self._drops += count

    def clear(self) -> None:
        """Forget captured and rejected requests and cancel pending fail_next/delay_next/drop_next."""
        with self._cond:
            self.requests.clear()
            self.rejected.clear()
            self._message_count = 0
            self._failures.clear()
            self._delays.clear()
            self._drops = 0

    # -- inspection -------------------------------------------------------------------------

    def messages(self) -> list[CapturedMessage]:
        """One message per personalization ``to`` recipient across all accepted requests."""
        with self._cond:
            reqs = list(self.requests)
        out: list[CapturedMessage] = []
        for req in reqs:
            out.extend(expand_messages(req))
        return out

    @property
    def message_count(self) -> int:
        """Number of ``to`` recipients accepted so far (cheap; no expansion)."""
        return self._message_count

    def wait_for(self, n_messages: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Block until at least ``n_messages`` are captured; raise AssertionError on timeout."""
        with self._cond:
            arrived = self._cond.wait_for(lambda: self._message_count >= n_messages, timeout=timeout)
            rejected = [r.status for r in self.rejected]
        messages = self.messages()
        if not arrived:
            raise AssertionError(
                f"SendGridSink: expected at least {n_messages} message(s) within {timeout}s,"
                f" got {len(messages)}: {[m.to for m in messages][:50]}"
                f"; rejected request statuses: {rejected[:50]}"
            )
        return messages

    # -- called from handler threads ----------------------------------------------------------

    def _take_script(self) -> tuple[float, _Failure | None]:
        with self._cond:
            delay = self._delays.popleft() if self._delays else 0.0
            failure = self._failures.popleft() if self._failures else None
        return delay, failure

    def _take_drop(self) -> bool:
        with self._cond:
            if self._drops:
                self._drops -= 1
                return True
        return False

    def _record(self, req: CapturedRequest, n_messages: int = 0) -> None:
        with self._cond:
            if req.status == 202:
                self.requests.append(req)
                self._message_count += n_messages
                self._cond.notify_all()
            else:
                self.rejected.append(req)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)
