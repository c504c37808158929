"""HTTPSRedirectMiddleware: safe redirects, Host validation, HSTS exactly once on https."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from asgi_guard import ConfigurationError, HTTPSRedirectMiddleware

from .conftest import Channel, RecordingApp, client_for, http_scope, run_websocket

pytestmark = pytest.mark.anyio

HSTS = "max-age=31536000; includeSubDomains"


async def get(
    asgi: Any, url: str, method: str = "GET", headers: dict[str, Any] | None = None, **kw: Any
) -> httpx.Response:
    async with client_for(asgi, base_url="http://testserver") as client:
        return await client.request(method, url, headers=headers, follow_redirects=False, **kw)


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
async def test_redirect_keeps_method_path_query(app: RecordingApp, method: str) -> None:
    """http becomes https with the same path and query, 308 by default, the app not called."""
    response = await get(
        HTTPSRedirectMiddleware(app),
        "http://example.com/a/b%20c?x=1&y=%2F",
        method=method,
        content=b"body",
    )
    assert response.status_code == 308
    assert response.headers["location"] == "https://example.com/a/b%20c?x=1&y=%2F"
    assert response.headers["content-length"] == "0"
    assert "strict-transport-security" not in response.headers
    assert app.calls == 0


@pytest.mark.parametrize("code", [301, 302, 303, 307])
async def test_status_code_option(app: RecordingApp, code: int) -> None:
    """Each allowed redirect status can be chosen."""
    response = await get(HTTPSRedirectMiddleware(app, status_code=code), "http://example.com/")
    assert response.status_code == code
    assert response.headers["location"] == "https://example.com/"


@pytest.mark.parametrize(
    ("host", "location"),
    [
        ("example.com:80", "https://example.com/p"),
        ("example.com:8080", "https://example.com/p"),
        ("EXAMPLE.com", "https://example.com/p"),
        ("[2001:db8::1]:80", "https://[2001:db8::1]/p"),
        ("192.0.2.1", "https://192.0.2.1/p"),
        ("example.com:", "https://example.com/p"),
    ],
)
async def test_host_forms(app: RecordingApp, host: str, location: str) -> None:
    """Ports are replaced by the https port; IPv6 literals keep brackets."""
    response = await get(HTTPSRedirectMiddleware(app), "http://x/p", headers={"host": host})
    assert (response.status_code, response.headers["location"]) == (308, location)


async def test_https_port(app: RecordingApp) -> None:
    """A non-default https_port is written into the Location."""
    response = await get(HTTPSRedirectMiddleware(app, https_port=8443), "http://example.com:8000/p")
    assert response.headers["location"] == "https://example.com:8443/p"


@pytest.mark.parametrize(
    "host",
    [
        "user@evil.com",
        "evil.com/path",
        "evil.com\\x",
        "evil .com",
        "evil.com:99999",
        "evil.com::",
        "[::1",
        "",
        "\u00e9vil.com".encode().decode("latin-1"),
        "a" * 300,
        "evil.com:8o",
        "[fe80::1%a@evil.com]",
        "[fe80::1%eth0]:443",
    ],
)
async def test_bad_host_is_400_without_location(app: RecordingApp, host: str) -> None:
    """A Host that is not a valid host[:port] gets problem+json and never a Location."""
    response = await get(
        HTTPSRedirectMiddleware(app), "http://x/", headers={"host": host.encode("latin-1")}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"] == "application/problem+json"
    assert orjson.loads(response.content) == {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The Host header is missing, invalid or not allowed.",
        "code": "https.bad_host",
    }
    assert app.calls == 0


@pytest.mark.parametrize(
    "hosts", [[b"example.com", b"example.com"], [b"example.com", b"evil.com"], [b"", b"evil.com"]]
)
async def test_several_host_lines_are_400(app: RecordingApp, hosts: list[bytes]) -> None:
    """More than one Host line is refused (RFC 9112 section 3.2), even when they agree: the
    app's framework may read another line than the one checked."""
    scope = http_scope(scheme="http", headers=[(b"host", host) for host in hosts])
    sent = await Channel().run(HTTPSRedirectMiddleware(app), scope)
    assert (sent[0]["status"], app.calls) == (400, 0)
    assert all(name != b"location" for name, _ in sent[0]["headers"])
    assert orjson.loads(sent[1]["body"])["code"] == "https.bad_host"


async def test_missing_host_is_400(app: RecordingApp) -> None:
    """Without any Host there is nothing safe to redirect to."""
    sent = await Channel().run(HTTPSRedirectMiddleware(app), http_scope(scheme="http"))
    assert sent[0]["status"] == 400


@pytest.mark.parametrize(
    ("host", "status", "location"),
    [
        ("example.com", 308, "https://example.com/"),
        ("api.example.com", 308, "https://api.example.com/"),
        ("a.b.example.com", 308, "https://a.b.example.com/"),
        ("evil.com", 400, None),
        ("notexample.com", 400, None),
        ("example.com.evil.com", 400, None),
        ("example.com.", 308, "https://example.com/"),  # fully qualified: the same host
        ("API.Example.com.:80", 308, "https://api.example.com/"),
        ("example.com..", 400, None),
        (".example.com", 400, None),
    ],
)
async def test_allowed_hosts(
    app: RecordingApp, host: str, status: int, location: str | None
) -> None:
    """Only listed hosts (exact or *.suffix) become redirect targets."""
    mw = HTTPSRedirectMiddleware(app, allowed_hosts=["example.com", "*.example.com"])
    response = await get(mw, "http://x/", headers={"host": host})
    assert response.status_code == status
    assert response.headers.get("location") == location


async def test_fully_qualified_names_are_the_same_host(app: RecordingApp) -> None:
    """A trailing dot, in Host or in allowed_hosts, names the same host; redirects drop it."""
    listed = HTTPSRedirectMiddleware(app, allowed_hosts=["Example.com."])
    anyone = HTTPSRedirectMiddleware(app)
    locations = [
        (await get(mw, "http://x/p", headers={"host": host})).headers.get("location")
        for mw, host in ((listed, "example.com"), (listed, "example.com."), (anyone, "a.io."))
    ]
    assert locations == ["https://example.com/p", "https://example.com/p", "https://a.io/p"]


async def test_fixed_host_ignores_request_host(app: RecordingApp) -> None:
    """host= makes every redirect point at the canonical host, whatever Host says."""
    response = await get(
        HTTPSRedirectMiddleware(app, host="www.example.com"),
        "http://x/p",
        headers={"host": "evil.com"},
    )
    assert response.headers["location"] == "https://www.example.com/p"


@pytest.mark.parametrize(
    ("raw_path", "location"),
    [
        (b"//evil.com/x", "https://example.com//evil.com/x"),
        (b"/\\evil.com", "https://example.com/%5Cevil.com"),
        (b"/a\r\nSet-Cookie: x", "https://example.com/a%0D%0ASet-Cookie:%20x"),
        (b"/caf\xc3\xa9", "https://example.com/caf%C3%A9"),
    ],
)
async def test_hostile_paths_stay_on_host(
    app: RecordingApp, raw_path: bytes, location: str
) -> None:
    """Paths starting with // or /\\ and control bytes never change the Location's host."""
    scope = http_scope(
        raw_path.decode("latin-1"),
        headers=[(b"host", b"example.com")],
        scheme="http",
        raw_path=raw_path,
    )
    sent = await Channel().run(HTTPSRedirectMiddleware(app), scope)
    assert dict(sent[0]["headers"])[b"location"].decode() == location


async def test_decoded_path_with_lone_surrogates_without_raw_path(app: RecordingApp) -> None:
    """No raw_path, and a path a server decoded with surrogateescape: still a redirect, the
    odd character percent-encoded, never a 500."""
    scope = http_scope("/", headers=[(b"host", b"example.com")], scheme="http")
    scope["path"] = "/caf\udce9"
    del scope["raw_path"]
    sent = await Channel().run(HTTPSRedirectMiddleware(app), scope)
    assert sent[0]["status"] == 308
    assert dict(sent[0]["headers"])[b"location"] == b"https://example.com/caf%ED%B3%A9"
    assert app.calls == 0


async def test_root_path_is_kept(app: RecordingApp) -> None:
    """A mounted app's root_path is part of the redirect."""
    scope = http_scope(
        "/x",
        headers=[(b"host", b"example.com")],
        scheme="http",
        root_path="/api",
        query_string=b"q=1",
    )
    sent = await Channel().run(HTTPSRedirectMiddleware(app), scope)
    assert dict(sent[0]["headers"])[b"location"] == b"https://example.com/api/x?q=1"


async def test_hsts_added_on_https(app: RecordingApp) -> None:
    """Every https response carries HSTS exactly once."""
    async with client_for(HTTPSRedirectMiddleware(app)) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers.get_list("strict-transport-security") == [HSTS]
    assert app.calls == 1


async def test_hsts_not_duplicated_when_app_sets_one() -> None:
    """An app's own HSTS header wins and is not duplicated."""
    app = RecordingApp(headers=[(b"Strict-Transport-Security", b"max-age=60")])
    async with client_for(HTTPSRedirectMiddleware(app)) as client:
        response = await client.get("/")
    assert response.headers.get_list("strict-transport-security") == ["max-age=60"]


async def test_hsts_on_inner_rejections() -> None:
    """A 4xx from an inner layer still gets HSTS."""

    async def reject(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client_for(
        HTTPSRedirectMiddleware(reject, hsts_max_age=0, hsts_include_subdomains=False)
    ) as client:
        response = await client.get("/")
    assert response.status_code == 401
    assert response.headers.get_list("strict-transport-security") == ["max-age=0"]


async def test_hsts_preload(app: RecordingApp) -> None:
    """preload is written when enabled with a valid policy."""
    async with client_for(
        HTTPSRedirectMiddleware(app, hsts_preload=True, hsts_max_age=63072000)
    ) as client:
        response = await client.get("/")
    assert (
        response.headers["strict-transport-security"]
        == "max-age=63072000; includeSubDomains; preload"
    )


async def test_exempt_routes_served_over_http(app: RecordingApp) -> None:
    """Exempt patterns reach the app over http, without HSTS."""
    mw = HTTPSRedirectMiddleware(app, exempt=["/health", "GET /.well-known/acme-challenge/{token}"])
    for path in ["/health", "/.well-known/acme-challenge/abc"]:
        response = await get(mw, f"http://example.com{path}")
        assert response.status_code == 200
        assert "strict-transport-security" not in response.headers
    assert (
        await get(mw, "http://example.com/.well-known/acme-challenge/abc", method="POST")
    ).status_code == 308
    assert app.calls == 2


async def test_insecure_websocket_refused_before_accept(app: RecordingApp) -> None:
    """ws:// is closed with 1008 (it cannot be redirected); the app never runs."""
    sent = await run_websocket(HTTPSRedirectMiddleware(app), {"scheme": "ws"})
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 0


async def test_insecure_websocket_http_response_extension(app: RecordingApp) -> None:
    """With the websocket.http.response extension, a 403 problem is sent instead."""
    sent = await run_websocket(
        HTTPSRedirectMiddleware(app),
        {"scheme": "ws", "extensions": {"websocket.http.response": {}}},
    )
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 403
    assert orjson.loads(sent[1]["body"])["code"] == "https.insecure_websocket"


async def test_secure_websocket_and_lifespan_pass(app: RecordingApp) -> None:
    """wss and exempt ws reach the app; lifespan passes through."""
    sent = await run_websocket(HTTPSRedirectMiddleware(app), {"scheme": "wss"})
    assert sent[0] == {"type": "websocket.accept"}
    await run_websocket(HTTPSRedirectMiddleware(app, exempt=["/ws"]), {"scheme": "ws"})
    assert app.calls == 2
    calls = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    await HTTPSRedirectMiddleware(inner)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert calls == ["lifespan"]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"status_code": 200}, "status_code"),
        ({"hsts_max_age": -1}, "hsts_max_age"),
        ({"hsts_preload": True, "hsts_max_age": 100}, "hsts_preload"),
        ({"hsts_preload": True, "hsts_include_subdomains": False}, "hsts_preload"),
        ({"https_port": 0}, "https_port"),
        ({"host": "evil.com/x"}, "host"),
        ({"allowed_hosts": ["a b"]}, "allowed_hosts"),
        ({"allowed_hosts": ["example.com:80"]}, "allowed_hosts"),
        ({"exempt": ["bad"]}, "exempt"),
    ],
)
def test_bad_options(options: dict[str, Any], option: str) -> None:
    """Bad options raise ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match=f"^{option}: "):
        HTTPSRedirectMiddleware(RecordingApp(), **options)
