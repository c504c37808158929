"""ProxyHeadersMiddleware: trusted peers only, rightmost-untrusted client, malformed input ignored."""

from __future__ import annotations

import pytest

from asgi_guard import ConfigurationError, ProxyHeadersMiddleware
from asgi_guard._asgi import Receive, Scope, Send
from asgi_guard.proxy import _parse_forwarded

from .conftest import RecordingApp, client_for, run_websocket

pytestmark = pytest.mark.anyio

PROXY = "10.0.0.1"


def make(app: RecordingApp, **options: object) -> ProxyHeadersMiddleware:
    options.setdefault("trusted", ["10.0.0.0/8", "127.0.0.1", "::1"])
    return ProxyHeadersMiddleware(app, **options)  # type: ignore[arg-type]


async def seen(
    app: RecordingApp, peer: str, headers: list[tuple[str, str]], **options: object
) -> tuple[tuple[str, int], str, str | None]:
    """Send one request; returns the client, scheme and Host the app saw."""
    async with client_for(make(app, **options), peer=peer, base_url="http://testserver") as client:
        response = await client.get("/", headers=headers)
    assert response.status_code == 200
    scope = app.scopes[-1]
    host = dict(scope["headers"]).get(b"host")
    return tuple(scope["client"]), scope["scheme"], host.decode() if host else None


@pytest.mark.parametrize(
    ("peer", "headers", "client", "scheme"),
    [
        # untrusted peers: headers ignored entirely
        (
            "203.0.113.9",
            [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
            ("203.0.113.9", 51000),
            "http",
        ),
        # trusted peer: rightmost untrusted address wins
        (PROXY, [("x-forwarded-for", "1.2.3.4")], ("1.2.3.4", 0), "http"),
        (PROXY, [("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")], ("1.2.3.4", 0), "http"),
        # repeated header lines are joined in order
        (
            PROXY,
            [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "1.2.3.4")],
            ("1.2.3.4", 0),
            "http",
        ),
        # all hops trusted: the leftmost
        (PROXY, [("x-forwarded-for", "10.1.1.1, 10.2.2.2")], ("10.1.1.1", 0), "http"),
        # ports and IPv6 forms
        (PROXY, [("x-forwarded-for", "1.2.3.4:5678")], ("1.2.3.4", 5678), "http"),
        (PROXY, [("x-forwarded-for", "[2001:db8::1]:443")], ("2001:db8::1", 443), "http"),
        (PROXY, [("x-forwarded-for", "2001:db8::1")], ("2001:db8::1", 0), "http"),
        # proto: the last value (our proxy's) when lists do not line up
        (
            PROXY,
            [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
            ("1.2.3.4", 0),
            "https",
        ),
        (PROXY, [("x-forwarded-proto", "HTTPS")], (PROXY, 51000), "https"),
        (
            PROXY,
            [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https, http")],
            ("1.2.3.4", 0),
            "http",
        ),
        # proto from the same hop as the client when every proxy appended to both lists
        (
            PROXY,
            [("x-forwarded-for", "1.2.3.4, 10.0.0.5"), ("x-forwarded-proto", "https, http")],
            ("1.2.3.4", 0),
            "https",
        ),
        (
            PROXY,
            [("x-forwarded-for", "6.6.6.6, 1.2.3.4"), ("x-forwarded-proto", "https, http")],
            ("1.2.3.4", 0),
            "http",
        ),
        # garbage proto ignored
        (PROXY, [("x-forwarded-proto", "javascript")], (PROXY, 51000), "http"),
    ],
)
async def test_x_forwarded(
    app: RecordingApp,
    peer: str,
    headers: list[tuple[str, str]],
    client: tuple[str, int],
    scheme: str,
) -> None:
    """The client and scheme follow X-Forwarded-* only as far as the trust chain goes."""
    assert (await seen(app, peer, headers))[:2] == (client, scheme)


@pytest.mark.parametrize(
    "xff",
    [
        "unknown",
        "_hidden",
        "not-an-ip",
        "1.2.3.4, garbage",
        "",
        " , ",
        "1.2.3.4, [::1",
        "999.1.1.1",
        "1.2.3.4\x00",
    ],
)
async def test_malformed_x_forwarded_for_keeps_peer(app: RecordingApp, xff: str) -> None:
    """A chain that cannot be read up to the client leaves the peer as the client."""
    assert (await seen(app, PROXY, [("x-forwarded-for", xff)]))[0] == (PROXY, 51000)


async def test_overlong_hops_are_malformed_and_never_memoized(app: RecordingApp) -> None:
    """A hop longer than any address ends the chain (the peer stays the client), and the
    per-address memo never holds such attacker-chosen strings."""
    mw = make(app, trusted="*")
    async with client_for(mw, peer=PROXY) as client:
        for i in range(20):
            long_hop = f"{i}" + "1" * 5000
            response = await client.get("/", headers={"x-forwarded-for": f"{long_hop}, 10.0.0.2"})
            assert response.status_code == 200
            assert tuple(app.scopes[-1]["client"]) == (PROXY, 51000)
    assert mw._classify.cache_info().currsize == 2  # the peer and 10.0.0.2


async def test_garbage_left_of_client_is_irrelevant(app: RecordingApp) -> None:
    """Only the hops from the right up to the client need to parse."""
    assert (await seen(app, PROXY, [("x-forwarded-for", "garbage, 1.2.3.4")]))[0] == ("1.2.3.4", 0)


async def test_rotating_spoofed_addresses_from_untrusted_peer_are_ignored(
    app: RecordingApp,
) -> None:
    """A client cannot choose its address by sending X-Forwarded-For itself."""
    for i in range(5):
        assert (await seen(app, "198.51.100.7", [("x-forwarded-for", f"1.1.1.{i}")]))[0] == (
            "198.51.100.7",
            51000,
        )


async def test_x_forwarded_host(app: RecordingApp) -> None:
    """A valid X-Forwarded-Host from a trusted proxy replaces Host; an invalid one is ignored."""
    assert (await seen(app, PROXY, [("x-forwarded-host", "api.example.com")]))[
        2
    ] == "api.example.com"
    assert (await seen(app, PROXY, [("x-forwarded-host", "evil.com/path")]))[2] == "testserver"
    assert (await seen(app, "203.0.113.1", [("x-forwarded-host", "api.example.com")]))[
        2
    ] == "testserver"


@pytest.mark.parametrize(
    ("forwarded", "client", "scheme", "host"),
    [
        (
            "for=1.2.3.4;proto=https;host=api.example.com",
            ("1.2.3.4", 0),
            "https",
            "api.example.com",
        ),
        ('For="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", 4711), "http", "testserver"),
        ("for=1.2.3.4;proto=https, for=10.0.0.9;proto=http", ("1.2.3.4", 0), "https", "testserver"),
        ("for=6.6.6.6;proto=https, for=1.2.3.4;proto=http", ("1.2.3.4", 0), "http", "testserver"),
        ("for=1.2.3.4:80;by=10.0.0.1", ("1.2.3.4", 80), "http", "testserver"),
        ('for="1.2.3.4";proto="https"', ("1.2.3.4", 0), "https", "testserver"),
    ],
)
async def test_forwarded(
    app: RecordingApp, forwarded: str, client: tuple[str, int], scheme: str, host: str
) -> None:
    """RFC 7239: client, proto and host are read from the rightmost untrusted element."""
    assert await seen(app, PROXY, [("forwarded", forwarded)], mode="forwarded") == (
        client,
        scheme,
        host,
    )


@pytest.mark.parametrize(
    "forwarded",
    [
        "for=unknown",
        "for=_hidden",
        "for=1.2.3.4;for=5.6.7.8",
        'for="1.2.3.4',
        "for=1.2.3.4;proto",
        "proto=https",
        "for=",
        "garbage",
        "for=1.2.3.4;=x",
        'for=1.2"3',
        "for=1.2.3.4 x",
    ],
)
async def test_malformed_forwarded_is_ignored(app: RecordingApp, forwarded: str) -> None:
    """Duplicate parameters, unbalanced quotes, obfuscated or unknown nodes: the peer stays the client."""
    assert await seen(app, PROXY, [("forwarded", forwarded)], mode="forwarded") == (
        (PROXY, 51000),
        "http",
        "testserver",
    )


async def test_forwarded_mode_ignores_x_forwarded(app: RecordingApp) -> None:
    """Only the headers of the chosen mode are read."""
    got = await seen(
        app,
        PROXY,
        [("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "https")],
        mode="forwarded",
    )
    assert got == ((PROXY, 51000), "http", "testserver")


def test_parse_forwarded_elements() -> None:
    """Quoted strings may hold commas and semicolons; escapes are undone."""
    assert _parse_forwarded('for="a,b;c";proto=https, for=x') == [
        {"for": "a,b;c", "proto": "https"},
        {"for": "x"},
    ]
    assert _parse_forwarded('for="\\"q"') == [{"for": '"q'}]
    assert _parse_forwarded(";;,") == []


async def test_wildcard_trusts_every_peer(app: RecordingApp) -> None:
    """trusted='*' honours the headers from anyone (documented as dangerous)."""
    got = await seen(app, "203.0.113.1", [("x-forwarded-for", "1.2.3.4, 5.6.7.8")], trusted="*")
    assert got[0] == ("1.2.3.4", 0)


async def test_ipv4_mapped_peer_matches_ipv4_network(app: RecordingApp) -> None:
    """A dual-stack socket's ::ffff:10.0.0.1 is the trusted 10.0.0.1."""
    assert (await seen(app, "::ffff:10.0.0.1", [("x-forwarded-for", "1.2.3.4")]))[0] == (
        "1.2.3.4",
        0,
    )


async def test_websocket_scheme_maps_to_wss(app: RecordingApp) -> None:
    """https from the proxy becomes wss for a websocket scope."""
    mw = make(app)
    await run_websocket(
        mw,
        {"scheme": "ws", "client": (PROXY, 1)},
        headers=[
            (b"host", b"x"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-for", b"1.2.3.4"),
        ],
    )
    assert app.scopes[0]["scheme"] == "wss"
    assert app.scopes[0]["client"] == ("1.2.3.4", 0)


async def test_lifespan_and_missing_client_pass_through(app: RecordingApp) -> None:
    """Scopes without a client, and lifespan, reach the app untouched."""
    mw = make(app)
    calls: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope)

    mw.app = inner
    # receive and send are None on purpose: a layer that touched them here would fail.
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await mw(
        {"type": "http", "headers": [(b"x-forwarded-for", b"1.2.3.4")], "client": None},
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    assert calls == [
        {"type": "lifespan"},
        {"type": "http", "headers": [(b"x-forwarded-for", b"1.2.3.4")], "client": None},
    ]


@pytest.mark.parametrize(
    ("option", "value"),
    [("trusted", ["10.0.0.0/33"]), ("trusted", ["proxy.local"]), ("mode", "both")],
)
def test_bad_options(option: str, value: object) -> None:
    """Invalid options fail at construction, naming the option."""
    with pytest.raises(ConfigurationError, match=f"^{option}: "):
        ProxyHeadersMiddleware(RecordingApp(), **{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        ("1.2.3.4:" + "9" * 5000, ("1.2.3.4", 0)),
        ("[2001:db8::1]:" + "9" * 5000, ("2001:db8::1", 0)),
        ("1.2.3.4:99999", ("1.2.3.4", 0)),
        ("1.2.3.4:_obf", ("1.2.3.4", 0)),
    ],
)
async def test_absurd_ports_are_ignored(
    app: RecordingApp, xff: str, client: tuple[str, int]
) -> None:
    """A port too long for int() or out of range never raises; the address is still used."""
    assert (await seen(app, PROXY, [("x-forwarded-for", xff)]))[0] == client
