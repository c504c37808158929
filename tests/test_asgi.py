"""The shared ASGI core: header helpers, problem responses, header injection, request info."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from asgi_guard._asgi import (
    ASGIApp,
    Message,
    Problem,
    append_headers,
    get_header,
    header_values,
    parse_host,
    request_info,
    send_response,
    split_comma,
    with_headers,
)

from .conftest import Channel, http_scope

pytestmark = pytest.mark.anyio

HEADERS = [(b"host", b"a"), (b"x-list", b"1, 2"), (b"x-list", b" 3 ,,4 "), (b"accept", b"*/*")]


def test_get_header_and_values() -> None:
    """The first value, every value in order, and None when absent."""
    assert get_header(HEADERS, b"x-list") == b"1, 2"
    assert get_header(HEADERS, b"missing") is None
    assert header_values(HEADERS, b"x-list") == [b"1, 2", b" 3 ,,4 "]
    assert header_values(HEADERS, b"missing") == []


def test_split_comma_joins_lines_and_drops_empty_items() -> None:
    """RFC 9110 list syntax: repeated lines joined, whitespace and empty items dropped."""
    assert split_comma(header_values(HEADERS, b"x-list")) == [b"1", b"2", b"3", b"4"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.COM", ("example.com", None)),
        ("example.com.", ("example.com.", None)),
        ("a-b.c_d:65535", ("a-b.c_d", 65535)),
        ("[::1]", ("[::1]", None)),
        ("[::1]:8080", ("[::1]", 8080)),
        # an empty port is no port (RFC 3986 section 6.2.3)
        ("[::1]:", ("[::1]", None)),
        ("a.com:", ("a.com", None)),
        ("a.com::", None),
        (":80", None),
        ("[::1]x", None),
        ("[nope]:80", None),
        ("-a.com", None),
        ("a..com", None),
        ("a.com:0", None),
        ("a.com:\uff11\uff12", None),
        ("a.com:123456", None),
        ("a.com:+80", None),
        ("", None),
        ("a" * 64 + ".com", None),
        ("[2001:DB8::1]", ("[2001:db8::1]", None)),
        ("[::ffff:192.0.2.1]:443", ("[::ffff:192.0.2.1]", 443)),
        # zone ids: ipaddress takes anything after "%", a Host takes none of it
        ("[fe80::1%eth0]", None),
        ("[fe80::1%25eth0]", None),
        ("[fe80::1%\r\nSet-Cookie: a=b]", None),
        ("[fe80::1%a@evil.example]:443", None),
        ("[fe80::1% ]", None),
        ("[]", None),
    ],
)
def test_parse_host(value: str, expected: tuple[str, int | None] | None) -> None:
    """Only syntactically valid host[:port] values are accepted."""
    assert parse_host(value) == expected


async def test_problem_http_response() -> None:
    """A problem is problem+json with the RFC 9457 members, a code, and extra headers."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http"}
    problem = Problem(429, "ratelimit.exceeded", "Too Many Requests", "Slow down.")
    await problem.send(scope, None, send, [(b"retry-after", b"3")], extra={"limit": 5})  # type: ignore[arg-type]
    assert sent[0] == {
        "type": "http.response.start",
        "status": 429,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"retry-after", b"3"),
            (b"content-length", str(len(sent[1]["body"])).encode()),
        ],
    }
    assert orjson.loads(sent[1]["body"]) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Slow down.",
        "code": "ratelimit.exceeded",
        "limit": 5,
    }
    assert scope["state"]["asgi_guard"].code == "ratelimit.exceeded"


async def test_problem_websocket_disconnected_before_connect_sends_nothing() -> None:
    """If the client is already gone, a websocket refusal sends nothing."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        sent.append(message)

    await Problem(403, "x", "Forbidden", "no").send({"type": "websocket"}, receive, send)
    assert sent == []


async def test_with_headers_injects_once_and_passes_bodies() -> None:
    """Extra headers go into the start message only; bodies are the same objects."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    wrapped = with_headers(send, [(b"x-a", b"1")], unless=b"x-a")
    body = {"type": "http.response.body", "body": b"data"}
    await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"x-b", b"2")]})
    await wrapped(body)
    assert sent[0]["headers"] == [(b"x-b", b"2"), (b"x-a", b"1")]
    assert sent[1] is body

    sent.clear()
    await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"X-A", b"mine")]})
    assert sent[0]["headers"] == [(b"X-A", b"mine")]

    sent.clear()
    await with_headers(send, [(b"x-a", b"1")])({"type": "http.response.start", "status": 204})
    assert sent[0]["headers"] == [(b"x-a", b"1")]


@pytest.mark.parametrize("unless", [None, b"x-a"])
@pytest.mark.parametrize("kind", ["list", "tuple", "generator", "dict items"])
def test_append_headers_reads_any_iterable_once(kind: str, unless: bytes | None) -> None:
    """ASGI allows any iterable of header pairs: a one-shot one keeps every header, and the
    app's own list is never changed in place."""
    mine = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    given: Any = {
        "list": mine,
        "tuple": tuple(mine),
        "generator": (pair for pair in mine),
        "dict items": dict(mine).items(),
    }[kind]
    message = {"type": "http.response.start", "status": 200, "headers": given}
    append_headers(message, [(b"x-a", b"1")], unless=unless)
    assert list(message["headers"]) == [*mine, (b"x-a", b"1")]
    assert mine == [(b"content-type", b"text/plain"), (b"content-length", b"2")]


def test_append_headers_unless_present_in_a_generator() -> None:
    """A one-shot iterable holding the ``unless`` header: read once, kept whole, nothing added."""
    message = {
        "type": "http.response.start",
        "status": 200,
        "headers": (pair for pair in [(b"x-b", b"2"), (b"X-A", b"mine"), (b"x-c", b"3")]),
    }
    append_headers(message, [(b"x-a", b"1")], unless=b"x-a")
    assert message["headers"] == [(b"x-b", b"2"), (b"X-A", b"mine"), (b"x-c", b"3")]


async def test_send_response_sets_content_length() -> None:
    """A plain response carries an exact content-length."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await send_response(send, 200, [], b"hello")
    assert sent == [
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]},
        {"type": "http.response.body", "body": b"hello"},
    ]


def test_request_info_is_created_once_and_keeps_framework_state() -> None:
    """scope['state'] is never replaced; the record is shared by every layer."""
    state = {"framework": 1}
    scope: dict[str, Any] = {"state": state}
    info = request_info(scope)
    assert request_info(scope) is info
    assert scope["state"] is state
    assert state["framework"] == 1
    assert (info.request_id, info.code, info.shadow, info.ratelimit) == (None, None, False, None)


async def _generator_headers_app(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send(
        {"type": "http.response.start", "status": 200, "headers": (pair for pair in headers)}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("layer", ["https", "ratelimit", "accesslog"])
async def test_layers_adding_headers_keep_an_apps_one_shot_headers(layer: str) -> None:
    """Every layer that adds a response header keeps all of an app's headers, given as a
    generator (each used to read it twice: the app's headers were lost)."""
    from asgi_guard import AccessLogMiddleware, HTTPSRedirectMiddleware, RateLimitMiddleware

    logger = logging.getLogger("test.one_shot")
    logger.setLevel(logging.INFO)
    builders: dict[str, Callable[[], ASGIApp]] = {
        "https": lambda: HTTPSRedirectMiddleware(_generator_headers_app),
        "ratelimit": lambda: RateLimitMiddleware(_generator_headers_app, limit="5/minute"),
        "accesslog": lambda: AccessLogMiddleware(_generator_headers_app, logger=logger),
    }
    wrapped = builders[layer]()
    added = {
        "https": b"strict-transport-security",
        "ratelimit": b"ratelimit-policy",
        "accesslog": b"x-request-id",
    }[layer]
    sent = await Channel().run(wrapped, http_scope(headers=[(b"host", b"example.com")]))
    names = [name for name, _ in sent[0]["headers"]]
    assert names[:2] == [b"content-type", b"content-length"]
    assert added in names
