"""The request context: per-request facts with merge rules, and one response hook for every layer."""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from asgi_guard import (
    AccessLogMiddleware,
    HTTPSRedirectMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    guard,
)
from asgi_guard._asgi import ASGIApp, Message, Receive, Scope, Send
from asgi_guard.context import RequestContext, request_context

from .conftest import Channel, http_scope, run_websocket

pytestmark = pytest.mark.anyio

HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
RATELIMIT = [
    (b"ratelimit-policy", b'"10-per-60s";q=10;w=60'),
    (b"ratelimit", b'"10-per-60s";r=9;t=61'),
]
RID = (b"x-request-id", b"abc-123")

Layer = Callable[[ASGIApp], ASGIApp]


def _quiet_logger(name: str) -> None:
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False


_quiet_logger("test.context")

LAYERS: dict[str, Layer] = {
    "https": lambda app: HTTPSRedirectMiddleware(app),
    "headers": lambda app: SecurityHeadersMiddleware(app),
    "ratelimit": lambda app: RateLimitMiddleware(app, limit="10/minute", clock=lambda: 0.0),
    "accesslog": lambda app: AccessLogMiddleware(app, logger="test.context"),
}
ADDS: dict[str, list[tuple[bytes, bytes]]] = {
    "https": [HSTS],
    "headers": SECURITY,
    "ratelimit": RATELIMIT,
    "accesslog": [RID],
}


def app_with(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    """A raw app answering 200 with ``headers``."""

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    return asgi


async def response_headers(asgi: ASGIApp) -> list[tuple[bytes, bytes]]:
    """The headers of the response start ``asgi`` sends for one GET / with a request id."""
    sent = await Channel().run(asgi, http_scope("/", headers=[RID]))
    assert sent[0]["type"] == "http.response.start"
    headers: list[tuple[bytes, bytes]] = sent[0]["headers"]
    return headers


@pytest.mark.parametrize("name", sorted(LAYERS))
async def test_each_layer_alone_writes_its_headers(name: str) -> None:
    """A layer used alone installs the response hook itself and adds exactly its headers."""
    headers = await response_headers(LAYERS[name](app_with([(b"content-type", b"text/plain")])))
    assert headers == [(b"content-type", b"text/plain"), *ADDS[name]]


@pytest.mark.parametrize("order", list(itertools.permutations(sorted(LAYERS))))
async def test_layers_in_any_order_add_each_header_once(order: tuple[str, ...]) -> None:
    """Stacked in any order, the four header-adding layers give every header once, and the
    innermost layer's first, as separate wrappers did."""
    asgi = app_with([(b"content-type", b"text/plain")])
    for name in reversed(order):  # order is outermost first
        asgi = LAYERS[name](asgi)
    headers = await response_headers(asgi)
    expected = [(b"content-type", b"text/plain")]
    for name in reversed(order):
        expected += ADDS[name]
    assert headers == expected


@pytest.mark.parametrize("order", list(itertools.permutations(sorted(LAYERS))))
async def test_headers_the_app_set_itself_are_kept_in_any_order(order: tuple[str, ...]) -> None:
    """An app's own HSTS, security header and request id are never doubled nor replaced,
    whichever layer installed the hook."""
    own = [
        (b"Strict-Transport-Security", b"max-age=60"),
        (b"X-Frame-Options", b"SAMEORIGIN"),
        (b"x-request-id", b"from-app"),
    ]
    asgi = app_with(own)
    for name in reversed(order):
        asgi = LAYERS[name](asgi)
    headers = await response_headers(asgi)
    names = [key.lower() for key, _ in headers]
    assert headers[:3] == own
    assert names.count(b"strict-transport-security") == 1
    assert names.count(b"x-frame-options") == 1
    assert names.count(b"x-request-id") == 1
    assert (b"x-content-type-options", b"nosniff") in headers
    assert [pair for pair in headers if pair[0] == b"ratelimit"] == [RATELIMIT[1]]


def _depth() -> int:
    return len(inspect.stack(0))


async def test_guard_stack_writes_the_response_start_through_one_wrapper() -> None:
    """Under guard() with HSTS, security headers, a rate limit and the access log, the app's
    response start reaches the server through one send wrapper (the access log's), with every
    layer's headers written in that one pass."""
    depths: dict[str, int] = {}

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        depths["app"] = _depth()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guarded = guard(
        asgi,
        {
            "https": {},
            "headers": {},
            "rate_limit": {"limit": "10/minute"},
            "access_log": {"logger": "test.context"},
        },
    )
    sent: list[Message] = []

    async def server_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            depths["server"] = _depth()
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await guarded(http_scope("/", headers=[RID]), receive, server_send)
    assert depths["server"] - depths["app"] == 1  # the server's own frame: no wrapper between
    names = [key for key, _ in sent[0]["headers"]]
    assert names == [
        b"ratelimit-policy",
        b"ratelimit",
        *(key for key, _ in SECURITY),
        b"strict-transport-security",
        b"x-request-id",
    ]


async def test_websocket_refusal_carries_security_headers_and_request_id() -> None:
    """A websocket refused through websocket.http.response.start gets the security headers
    and the request-id echo from the one hook, as an http response would."""

    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b""})

    asgi = AccessLogMiddleware(SecurityHeadersMiddleware(refuse), logger="test.context")
    sent = await run_websocket(
        asgi,
        {"extensions": {"websocket.http.response": {}}},
        headers=[(b"host", b"testserver"), RID],
    )
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["headers"] == [*SECURITY, RID]


def test_note_limit_keeps_the_tightest_and_a_refusal_wins() -> None:
    """The limit recorded is the one with the fewest remaining (the longer wait among equals),
    and a refusal's limit replaces any admitted one."""
    context = RequestContext()
    context.note_limit(100, 90, 60, refused=False)
    context.note_limit(10, 5, 30, refused=False)
    assert context.ratelimit == (10, 5, 30)
    context.note_limit(1000, 500, 1, refused=False)
    assert context.ratelimit == (10, 5, 30)
    context.note_limit(20, 5, 50, refused=False)
    assert context.ratelimit == (20, 5, 50)
    context.note_limit(1000, 0, 2, refused=True)
    assert context.ratelimit == (1000, 0, 2)


def test_request_context_is_made_once_per_request() -> None:
    """request_context() makes the context on first use, in scope["state"], and returns the
    same one afterwards, leaving a framework's own state alone."""
    scope: dict[str, Any] = {"state": {"framework": 1}}
    context = request_context(scope)
    assert request_context(scope) is context
    assert scope["state"] == {"framework": 1, "asgi_guard": context}


async def test_logged_request_echoes_its_id_when_an_outer_layer_holds_the_hook() -> None:
    """With records on and a header-adding layer outside the access log, that layer's hook
    writes the echo: HSTS and the request id once each, the inner layer's line first."""
    logger = logging.getLogger("test.context.records")
    logger.handlers[:] = [logging.NullHandler()]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    inner = AccessLogMiddleware(app_with([(b"content-type", b"text/plain")]), logger=logger.name)
    assert await response_headers(HTTPSRedirectMiddleware(inner)) == [
        (b"content-type", b"text/plain"),
        RID,
        HSTS,
    ]
    # The access log alone writes the echo itself, after the app's headers.
    assert await response_headers(inner) == [(b"content-type", b"text/plain"), RID]
