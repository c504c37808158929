"""AllowedHostsMiddleware: only listed hosts reach the app, on every request and handshake."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from asgi_guard import (
    AllowedHostsMiddleware,
    ConfigurationError,
    HTTPSRedirectMiddleware,
    ProxyHeadersMiddleware,
    guard,
)

from .conftest import Channel, RecordingApp, http_scope, run_websocket

pytestmark = pytest.mark.anyio

ALLOWED = ["api.example.com", "*.apps.example.com", "[::1]", "bücher.example", "straße.example"]
REFUSAL = {
    "type": "about:blank",
    "title": "Bad Request",
    "status": 400,
    "detail": "The Host header is missing, invalid or names a host this service does not serve.",
    "code": "host.not_allowed",
}


async def answer(asgi: Any, headers: list[tuple[bytes, bytes]], **extra: Any) -> list[Any]:
    return await Channel().run(asgi, http_scope("/orders", headers=headers, **extra))


@pytest.mark.parametrize(
    "host",
    [
        b"api.example.com",
        b"API.Example.COM",
        b"api.example.com.",  # a fully qualified name (RFC 1034 section 3.1)
        b"api.example.com:8443",
        b"api.example.com.:443",
        b"api.example.com:",  # an empty port is no port (RFC 3986 section 3.2.3)
        b"a.apps.example.com",
        b"a.b.apps.example.com",
        b"[::1]:8000",
        b"xn--bcher-kva.example",  # bücher.example as a browser sends it
        b"XN--BCHER-KVA.example",
        b"xn--strae-oqa.example",  # straße.example under UTS 46 nontransitional, as browsers
    ],
)
async def test_allowed_hosts_pass(host: bytes) -> None:
    """A listed host reaches the app whatever its case, port or trailing dot."""
    app = RecordingApp()
    sent = await answer(AllowedHostsMiddleware(app, allowed=ALLOWED), [(b"host", host)])
    assert sent[0]["status"] == 200
    assert app.calls == 1


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"evil.example")],
        [],  # no Host at all (RFC 9112 section 3.2)
        [(b"host", b"")],
        [(b"host", b"api.example.com"), (b"host", b"evil.example")],  # two Host lines
        [(b"host", b"api.example.com"), (b"host", b"api.example.com")],
        [(b"host", b"apps.example.com")],  # a wildcard covers subdomains only
        [(b"host", b"evilapps.example.com")],
        [(b"host", b"api.example.com.evil.example")],
        [(b"host", b"api.example.com@evil.example")],
        [(b"host", b"evil.example#api.example.com")],
        [(b"host", b"api.example.com/x")],
        [(b"host", b"api.example.com:99999")],
        [(b"host", b"api.example.com:x")],
        [(b"host", b" api.example.com")],
        [(b"host", b"api.example.com..")],
        [(b"host", "bücher.example".encode())],  # raw UTF-8: not what a client sends
        [(b"host", b"xn--strasse.example")],
        [(b"host", b"strasse.example")],  # IDNA 2003's mapping of straße: another name
        [(b"host", b"[::2]")],
        [(b"host", b"[::1%25eth0]")],
        [(b"host", b"127.0.0.1")],
    ],
)
async def test_other_hosts_refused(headers: list[tuple[bytes, bytes]]) -> None:
    """Any other, missing, repeated or malformed Host is 400 host.not_allowed; the app is not called."""
    app = RecordingApp()
    sent = await answer(AllowedHostsMiddleware(app, allowed=ALLOWED), headers)
    assert sent[0]["status"] == 400
    assert sent[0]["headers"][0] == (b"content-type", b"application/problem+json")
    assert orjson.loads(sent[1]["body"]) == REFUSAL
    assert app.calls == 0


async def test_forwarded_host_is_the_one_checked() -> None:
    """Behind a trusted proxy, the X-Forwarded-Host is checked, not the proxy's own Host."""
    app = RecordingApp()
    stack = ProxyHeadersMiddleware(
        AllowedHostsMiddleware(app, allowed=["api.example.com"]), trusted=["10.0.0.0/8"]
    )
    good = [(b"host", b"backend:8000"), (b"x-forwarded-host", b"api.example.com")]
    evil = [(b"host", b"api.example.com"), (b"x-forwarded-host", b"evil.example")]
    assert (await answer(stack, good, client="10.0.0.1"))[0]["status"] == 200
    assert (await answer(stack, evil, client="10.0.0.1"))[0]["status"] == 400
    # From a client that is no proxy, X-Forwarded-Host is ignored and Host is checked.
    assert (await answer(stack, evil, client="203.0.113.9"))[0]["status"] == 200
    assert (await answer(stack, good, client="203.0.113.9"))[0]["status"] == 400
    assert app.calls == 2


async def test_websocket_refused_before_accept() -> None:
    """A websocket to a foreign host is refused before accept, with the extension or 1008."""
    app = RecordingApp()
    guarded = AllowedHostsMiddleware(app, allowed=["api.example.com"])
    evil = [(b"host", b"evil.example")]
    sent = await run_websocket(
        guarded, {"extensions": {"websocket.http.response": {}}}, headers=evil
    )
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["code"] == "host.not_allowed"
    assert await run_websocket(guarded, headers=evil) == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 0
    sent = await run_websocket(guarded, headers=[(b"host", b"api.example.com")])
    assert sent[0] == {"type": "websocket.accept"}
    assert app.calls == 1


async def test_exempt_route_answers_any_host() -> None:
    """An exempt route (a health check addressed by IP) is served whatever the Host."""
    app = RecordingApp()
    guarded = AllowedHostsMiddleware(app, allowed=["api.example.com"], exempt=["GET /health"])
    ip = [(b"host", b"10.0.0.5:8000")]
    assert (await Channel().run(guarded, http_scope("/health", headers=ip)))[0]["status"] == 200
    assert (await Channel().run(guarded, http_scope("/orders", headers=ip)))[0]["status"] == 400
    post = http_scope("/health", method="POST", headers=ip)
    assert (await Channel().run(guarded, post))[0]["status"] == 400
    assert app.calls == 1


async def test_lifespan_passes_through() -> None:
    """Lifespan scopes reach the app untouched."""
    app = RecordingApp()
    await AllowedHostsMiddleware(app, allowed=["a.example"])({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert app.scopes == [{"type": "lifespan"}]


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (["*"], "'*' is not a host name"),
        (["api.example.com:443"], "ports are not part of an entry"),
        (["[::1]:443"], "ports are not part of an entry"),
        (["api.example.com:"], "ports are not part of an entry"),
        ([""], "'' is not a host name"),
        (["http://api.example.com"], "is not a host name"),
        (["*.10.0.0.1"], "is not a host name"),
        (["api.*.example.com"], "is not a host name"),
        ([3], "3 is not a host name"),
        (["xn--.example", "a..b"], "is not a host name"),
        (["bü\u200dcher.example"], "is not a valid host name"),
        ([], "is empty: every request would be refused"),
    ],
)
def test_bad_allow_lists_refused(allowed: list[Any], message: str) -> None:
    """An allow-list entry that cannot mean what it says fails at construction."""
    with pytest.raises(ConfigurationError, match="allowed") as info:
        AllowedHostsMiddleware(RecordingApp(), allowed=allowed)
    assert message in str(info.value)


def test_check_warns_without_a_host_list_behind_a_proxy() -> None:
    """check: AG024 behind a proxy with neither [hosts] nor https.allowed_hosts, else silent."""
    from asgi_guard import check

    def codes(config: dict[str, Any]) -> list[str]:
        return [f.code for f in check(config, environ={}) if f.code == "AG024"]

    assert codes({"proxy": {}, "https": {}}) == ["AG024"]
    assert codes({"proxy": {}, "https": {"allowed_hosts": ["a.example"]}}) == []
    assert codes({"proxy": {}, "hosts": {"allowed": ["a.example"]}}) == []
    assert codes({"https": {}}) == []


def test_one_string_is_one_host() -> None:
    """A single string is one host name, not a list of characters."""
    allowed = AllowedHostsMiddleware(RecordingApp(), allowed="api.example.com").allowed
    assert "api.example.com" in allowed
    assert "a" not in allowed
    assert b"api.example.com" not in allowed  # only decoded names are compared


async def test_guard_places_hosts_inside_the_log_and_defaults_redirect_hosts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """guard(): refusals are logged with their code, and redirects use [hosts].allowed."""
    app = RecordingApp()
    config = {
        "proxy": {"trusted": ["10.0.0.0/8"]},
        "access_log": {"logger": "tests.hosts.access"},
        "hosts": {"allowed": ["api.example.com"], "exempt": ["GET /health"]},
        "https": {},
    }
    stack = guard(app, config, environ={})
    with caplog.at_level(logging.INFO, logger="tests.hosts.access"):
        sent = await answer(stack, [(b"host", b"evil.example")], client="203.0.113.9")
    assert sent[0]["status"] == 400
    [record] = [r for r in caplog.records if r.name == "tests.hosts.access"]
    assert (record.status, record.code) == (400, "host.not_allowed")  # type: ignore[attr-defined]
    # /health is exempt from the Host check, but a redirect may point only to an allowed host.
    ip = [(b"host", b"10.0.0.5")]
    sent = await Channel().run(stack, http_scope("/health", headers=ip, scheme="http"))
    assert sent[0]["status"] == 400
    assert orjson.loads(sent[1]["body"])["code"] == "https.bad_host"
    good = [(b"host", b"api.example.com")]
    sent = await Channel().run(stack, http_scope("/health", headers=good, scheme="http"))
    assert (sent[0]["status"], dict(sent[0]["headers"])[b"location"]) == (
        308,
        b"https://api.example.com/health",
    )
    # An explicit https.allowed_hosts still wins.
    own = guard(app, {**config, "https": {"allowed_hosts": ["10.0.0.5"]}}, environ={})
    sent = await Channel().run(own, http_scope("/health", headers=ip, scheme="http"))
    assert dict(sent[0]["headers"])[b"location"] == b"https://10.0.0.5/health"
    assert app.calls == 0


def test_https_allowed_hosts_share_the_normalisation() -> None:
    """https.allowed_hosts reads entries as [hosts] does: IDNA, trailing dot, no ports."""
    with pytest.raises(ConfigurationError, match="allowed_hosts"):
        HTTPSRedirectMiddleware(RecordingApp(), allowed_hosts=["api.example.com:443"])
    redirect = HTTPSRedirectMiddleware(RecordingApp(), allowed_hosts=["bücher.example."])
    assert redirect._allowed is not None
    assert "xn--bcher-kva.example" in redirect._allowed


def _exchange(port: int, request: bytes) -> bytes:
    """Send one raw request over a fresh connection; the whole answer (the server closes)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


#: Raw requests, and the status each server gives through the layer.
RAW_REQUESTS = [
    (b"GET /where HTTP/1.1\r\nHost: api.example.com\r\n", 200, 200),
    (b"GET /where HTTP/1.1\r\nHost: API.example.com.:8443\r\n", 200, 200),
    (b"GET /where HTTP/1.1\r\nHost: a.apps.example.com\r\n", 200, 200),
    (b"GET /where HTTP/1.1\r\nHost: api.example.com \r\n", 200, 400),
    (b"GET /where HTTP/1.1\r\nHost: evil.example\r\n", 400, 400),
    (b"GET /where HTTP/1.1\r\nHost: api.example.com\r\nHost: evil.example\r\n", 400, 400),
    (b"GET /where HTTP/1.1\r\nHost: evil.example\r\nHost: api.example.com\r\n", 400, 400),
    (b"GET /where HTTP/1.1\r\nHost: api.example.com, evil.example\r\n", 400, 400),
    (b"GET /where HTTP/1.1\r\nHost: api.example.com@evil.example\r\n", 400, 400),
    (b"GET /where HTTP/1.1\r\nHost: evil.example:80@api.example.com\r\n", 400, 400),
    # h11 hands the absolute form on as the path (no route: 404); httptools keeps the path.
    (b"GET http://evil.example/where HTTP/1.1\r\nHost: api.example.com\r\n", 404, 200),
    (b"GET http://api.example.com/where HTTP/1.1\r\nHost: evil.example\r\n", 400, 400),
    (b"GET /where HTTP/1.0\r\n", 400, 400),
    (
        b"GET /where HTTP/1.1\r\nX-Forwarded-Host: api.example.com\r\nHost: evil.example\r\n",
        400,
        400,
    ),
]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_the_host_checked_is_the_host_the_app_uses(http: str) -> None:
    """Through real uvicorn, whenever a Starlette app answers, the host it builds URLs from is
    an allowed one; every request with a foreign host is refused before the app.

    h11 strips the whitespace around a field value (RFC 9110 section 5.5); httptools passes
    ``"api.example.com "`` on as it came, which the app would put in its URLs: refused."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from .conftest import uvicorn_server

    async def where(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.url.hostname}|{request.url_for('where')}")

    app = Starlette(routes=[Route("/where", where)])
    stack = AllowedHostsMiddleware(app, allowed=["api.example.com", "*.apps.example.com"])
    statuses = []
    with uvicorn_server(stack, http) as port:
        for raw, *_ in RAW_REQUESTS:
            response = _exchange(port, raw + b"Connection: close\r\n\r\n")
            statuses.append(int(response.split(b" ", 2)[1]))
            if statuses[-1] == 200:
                hostname, url = response.rpartition(b"\r\n\r\n")[2].decode().split("|")
                linked = urlsplit(url).hostname or ""
                for name in (hostname.lower(), linked):
                    assert name.removesuffix(".") in ("api.example.com", "a.apps.example.com")
    column = 1 if http == "h11" else 2
    assert statuses == [row[column] for row in RAW_REQUESTS]


#: Decisions the metrics layer reports in the test below (its on_decision hook).
DECISIONS: list[Any] = []


async def test_metrics_count_host_refusals_as_the_host_layers() -> None:
    """Under guard() with [metrics], a foreign Host is the host layer's decision; no later
    layer is counted, and an allowed Host counts as admitted by it."""
    config = {
        "hosts": {"allowed": ["api.example.com"]},
        "https": {},
        "metrics": {"otel": False, "on_decision": "tests.test_hosts:DECISIONS.append"},
    }
    stack = guard(RecordingApp(), config, environ={})
    DECISIONS.clear()
    await answer(stack, [(b"host", b"evil.example")])
    assert [(d.layer, d.code) for d in DECISIONS] == [("host", "host.not_allowed")]
    DECISIONS.clear()
    await answer(stack, [(b"host", b"api.example.com")])
    assert [(d.layer, d.code) for d in DECISIONS] == [("host", "ok"), ("https", "ok")]


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_websocket_to_a_foreign_host_refused_by_real_uvicorn(http: str) -> None:
    """Through real uvicorn, an upgrade naming a foreign host is answered 400 host.not_allowed
    before any handshake; one naming the allowed host is switched to a websocket."""
    import socket

    from .conftest import uvicorn_server

    app = RecordingApp()
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with uvicorn_server(AllowedHostsMiddleware(app, allowed=["api.example.com"]), http) as port:
        refused = _exchange(port, upgrade % b"evil.example")
        assert app.calls == 0
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(upgrade % b"api.example.com")
            accepted = sock.recv(65536)  # the 101 (the server then waits for a close frame)
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert orjson.loads(body) == REFUSAL
    assert accepted.startswith(b"HTTP/1.1 101 ")
    assert app.calls == 1
