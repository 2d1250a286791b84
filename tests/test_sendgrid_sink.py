"""The SendGrid sink speaks SendGrid v3 mail-send well enough for the real ``sendgrid`` client."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sendgrid
from python_http_client.exceptions import (
    BadRequestsError,
    InternalServerError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)

from campaigns.sink import SendGridSink


@pytest.fixture
def sink() -> Iterator[SendGridSink]:
    with SendGridSink() as s:
        yield s


def _client(sink: SendGridSink, api_key: str = "SG.test") -> sendgrid.SendGridAPIClient:
    return sendgrid.SendGridAPIClient(api_key=api_key, host=sink.url)


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "personalizations": [
            {
                "to": [{"email": "ann@example.com", "name": "Ann"}],
                "custom_args": {"message_id": "1"},
                "substitutions": {"-name-": "Ann"},
            },
            {
                "to": [{"email": "bob@example.com"}],
                "subject": "Just for Bob",
                "custom_args": {"message_id": "2"},
                "substitutions": {"-name-": "Bob"},
            },
        ],
        "from": {"email": "success@northstar.example", "name": "Northstar"},
        "subject": "Hello -name-",
        "custom_args": {"campaign": "onboarding"},
        "content": [
            {"type": "text/plain", "value": "Hi -name-"},
            {"type": "text/html", "value": "<p>Hi -name-</p>"},
        ],
    }
    body.update(overrides)
    return body


def test_send_is_accepted_and_expanded_per_recipient(sink: SendGridSink) -> None:
    response = _client(sink).client.mail.send.post(request_body=_body())

    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert message_id

    assert len(sink.requests) == 1
    req = sink.requests[0]
    assert req.path == "/v3/mail/send"
    assert req.headers["Authorization"] == "Bearer SG.test"
    assert req.body["from"]["email"] == "success@northstar.example"
    assert req.message_id == message_id

    ann, bob = sink.messages()
    assert ann.to == "ann@example.com"
    assert ann.to_name == "Ann"
    assert ann.html == "<p>Hi Ann</p>"
    assert ann.text == "Hi Ann"
    assert ann.subject == "Hello Ann"
    assert ann.custom_args == {"campaign": "onboarding", "message_id": "1"}
    assert ann.substitutions == {"-name-": "Ann"}
    assert ann.from_email == "success@northstar.example"
    assert ann.x_message_id == message_id
    assert bob.to == "bob@example.com"
    assert bob.html == "<p>Hi Bob</p>"
    assert bob.subject == "Just for Bob"
    assert bob.custom_args == {"campaign": "onboarding", "message_id": "2"}
    assert sink.rejected == []


def test_wait_for_returns_messages_sent_from_another_thread(sink: SendGridSink) -> None:
    sender = threading.Thread(target=lambda: _client(sink).client.mail.send.post(request_body=_body()))
    sender.start()
    messages = sink.wait_for(2, timeout=5)
    sender.join()
    assert {m.to for m in messages} == {"ann@example.com", "bob@example.com"}


def test_wait_for_raises_with_what_arrived(sink: SendGridSink) -> None:
    _client(sink).client.mail.send.post(request_body=_body())
    with pytest.raises(AssertionError, match=r"at least 3 .*got 2.*ann@example\.com"):
        sink.wait_for(3, timeout=0.1)


def test_fail_next_429_raises_and_nothing_is_sent(sink: SendGridSink) -> None:
    sink.fail_next(429)
    sg = _client(sink)

    with pytest.raises(TooManyRequestsError) as excinfo:
        sg.client.mail.send.post(request_body=_body())

    assert excinfo.value.status_code == 429
    assert excinfo.value.to_dict["errors"][0]["message"]
    assert sink.requests == []
    assert sink.messages() == []
    assert [r.status for r in sink.rejected] == [429]
    # The script is consumed: the retry goes through.
    assert sg.client.mail.send.post(request_body=_body()).status_code == 202
    assert len(sink.messages()) == 2


def test_fail_next_with_count_and_custom_body(sink: SendGridSink) -> None:
    sink.fail_next(500, count=2, body={"errors": [{"message": "boom", "field": None}]})
    sg = _client(sink)
    for _ in range(2):
        with pytest.raises(InternalServerError) as excinfo:
            sg.client.mail.send.post(request_body=_body())
        assert json.loads(excinfo.value.body) == {"errors": [{"message": "boom", "field": None}]}
    assert sg.client.mail.send.post(request_body=_body()).status_code == 202
    assert [r.status for r in sink.rejected] == [500, 500]


def test_body_without_personalizations_is_400(sink: SendGridSink) -> None:
    body = _body()
    del body["personalizations"]

    with pytest.raises(BadRequestsError) as excinfo:
        _client(sink).client.mail.send.post(request_body=body)

    error = excinfo.value.to_dict["errors"][0]
    assert error["field"] == "personalizations"
    assert "personalizations" in error["message"]
    assert sink.requests == []
    assert [r.status for r in sink.rejected] == [400]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"personalizations": [{"to": []}]}, "personalizations.0.to"),
        (
            {"personalizations": [{"to": [{"email": "not-an-address"}]}]},
            "personalizations.0.to.0.email",
        ),
        ({"from": {"name": "No address"}}, "from.email"),
        ({"content": []}, "content"),
        ({"subject": ""}, "subject"),
        ({"custom_args": {"message_id": 1}}, None),  # SendGrid only takes string custom_args
        ({"personalizations": [{"to": [{"email": "a@example.com"}]}] * 1001}, "personalizations"),
    ],
)
def test_invalid_bodies_are_rejected_like_sendgrid(
    sink: SendGridSink, overrides: dict[str, Any], field: str | None
) -> None:
    with pytest.raises(BadRequestsError) as excinfo:
        _client(sink).client.mail.send.post(request_body=_body(**overrides))
    assert excinfo.value.to_dict["errors"][0]["field"] == field
    assert sink.requests == []


def test_template_id_stands_in_for_content_and_subject(sink: SendGridSink) -> None:
    body = _body(template_id="d-123")
    del body["content"], body["subject"]
    assert _client(sink).client.mail.send.post(request_body=body).status_code == 202
    assert sink.messages()[0].template_id == "d-123"


def test_unset_api_key_is_401(sink: SendGridSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    with pytest.raises(UnauthorizedError):
        _client(sink, api_key="").client.mail.send.post(request_body=_body())
    assert sink.requests == []
    assert [r.status for r in sink.rejected] == [401]


def test_other_paths_are_404(sink: SendGridSink) -> None:
    with pytest.raises(NotFoundError):
        _client(sink).client.marketing.contacts.get()


def test_delay_next_times_the_client_out_but_the_mail_was_sent(sink: SendGridSink) -> None:
    sink.delay_next(2.0)
    sg = _client(sink)

    # A read timeout surfaces from urllib as the bare builtin TimeoutError (socket.timeout);
    # python_http_client does not wrap it.
    with pytest.raises(TimeoutError):
        sg.client.mail.send.post(request_body=_body(), timeout=0.2)

    # Ambiguous outcome: the client never heard the 202, but SendGrid accepted the mail.
    assert len(sink.requests) == 1
    assert [m.to for m in sink.messages()] == ["ann@example.com", "bob@example.com"]
    assert sg.client.mail.send.post(request_body=_body(), timeout=5).status_code == 202


def test_clear_forgets_everything(sink: SendGridSink) -> None:
    sg = _client(sink)
    sg.client.mail.send.post(request_body=_body())
    sink.fail_next(503)
    sink.clear()
    assert sink.requests == [] and sink.rejected == [] and sink.messages() == []
    assert sg.client.mail.send.post(request_body=_body()).status_code == 202
    assert sink.message_count == 2


def test_drop_next_accepts_the_mail_then_breaks_the_connection(sink: SendGridSink) -> None:
    sink.drop_next()
    sg = _client(sink)

    with pytest.raises((http.client.HTTPException, ConnectionError)):
        sg.client.mail.send.post(request_body=_body(), timeout=5)

    assert [m.to for m in sink.messages()] == ["ann@example.com", "bob@example.com"]
    assert sg.client.mail.send.post(request_body=_body(), timeout=5).status_code == 202
