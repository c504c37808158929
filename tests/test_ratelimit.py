"""RateLimitMiddleware: exact limits under concurrency (memory and real Redis), headers, keys, outages."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from asgi_guard import ConfigurationError, ProxyHeadersMiddleware, RateLimitMiddleware
from asgi_guard._asgi import Scope

from .conftest import Channel, RecordingApp, client_for, free_port, run_websocket
from .conftest import http_scope as make_scope

pytestmark = pytest.mark.anyio


def http_scope(
    path: str = "/items",
    client: str = "203.0.113.1",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    **extra: Any,
) -> Scope:
    return make_scope(path, method, headers, client, **extra)


async def drive(mw: Any, scope: Scope) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight through the ASGI callable: status, headers, body."""
    sent = await Channel([{"type": "http.request", "body": b"", "more_body": False}]).run(mw, scope)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


@pytest.fixture
async def limiter() -> Any:
    """Builds RateLimitMiddleware instances and closes their storages after the test."""
    made: list[RateLimitMiddleware] = []

    def build(app: Any, **options: Any) -> RateLimitMiddleware:
        mw = RateLimitMiddleware(app, **options)
        made.append(mw)
        return mw

    yield build
    for mw in made:
        await mw.aclose()


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


def unique() -> str:
    return uuid.uuid4().hex[:8]


# --- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window", "moving-window", "fixed-window"])
async def test_concurrent_requests_admit_exactly_the_limit(
    limiter: Any, app: RecordingApp, storage: str, strategy: str
) -> None:
    """100 concurrent requests on one key against 5/hour admit exactly 5."""
    mw = limiter(app, limit="5/hour", storage=storage, strategy=strategy)
    client = f"198.51.100.{uuid.uuid4().int % 250}"
    key_scope = {"client": client}
    results = await asyncio.gather(
        *(drive(mw, http_scope(client=key_scope["client"])) for _ in range(100))
    )
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 5
    assert statuses.count(429) == 95
    assert app.calls == 5


async def test_two_app_instances_share_one_redis_limit(limiter: Any, redis_url: str) -> None:
    """Two app instances (as two workers would be) on one Redis enforce one combined limit."""
    apps = [RecordingApp(), RecordingApp()]
    mws = [limiter(a, limit="6/minute", storage=redis_url) for a in apps]
    client = f"192.0.2.{uuid.uuid4().int % 250}"
    results = await asyncio.gather(
        *(drive(mws[i % 2], http_scope(client=client)) for i in range(40))
    )
    assert [s for s, _, _ in results].count(200) == 6
    assert apps[0].calls + apps[1].calls == 6


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["sliding-window", "moving-window", "fixed-window"])
async def test_window_frees_after_expiry(limiter: Any, app: RecordingApp, strategy: str) -> None:
    """After the window passes, requests are admitted again."""
    mw = limiter(app, limit="2/second", strategy=strategy)
    assert [(await drive(mw, http_scope()))[0] for _ in range(3)] == [200, 200, 429]
    await asyncio.sleep(2.05)
    assert (await drive(mw, http_scope()))[0] == 200


async def test_moving_window_is_exact(limiter: Any, app: RecordingApp) -> None:
    """The moving window forgets each hit exactly one window after it was made."""
    mw = limiter(app, limit="2/second", strategy="moving-window")
    assert (await drive(mw, http_scope()))[0] == 200
    await asyncio.sleep(0.6)
    assert (await drive(mw, http_scope()))[0] == 200
    assert (await drive(mw, http_scope()))[0] == 429
    await asyncio.sleep(0.5)  # the first hit is now older than 1 s
    assert (await drive(mw, http_scope()))[0] == 200
    assert (await drive(mw, http_scope()))[0] == 429


# --- responses and headers -------------------------------------------------------------------


async def test_headers_and_refusal(limiter: Any, app: RecordingApp) -> None:
    """Admitted: IETF RateLimit headers; refused: 429 problem+json with Retry-After, app not called."""
    mw = limiter(app, limit="2/minute", strategy="moving-window", clock=lambda: time.time())
    status, headers, _ = await drive(mw, http_scope())
    assert status == 200
    assert headers[b"ratelimit-policy"] == b'"2-per-60s";q=2;w=60'
    assert headers[b"ratelimit"] == b'"2-per-60s";r=1;t=60'
    status, headers, _ = await drive(mw, http_scope())
    assert headers[b"ratelimit"] == b'"2-per-60s";r=0;t=60'
    status, headers, body = await drive(mw, http_scope())
    assert status == 429
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"60"
    assert orjson.loads(body) == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "The rate limit for this route was exceeded.",
        "code": "ratelimit.exceeded",
    }
    assert app.calls == 2


async def test_legacy_and_no_headers(limiter: Any, app: RecordingApp) -> None:
    """headers='legacy' adds X-RateLimit-*; headers=False adds none."""
    legacy = limiter(app, limit="3/minute", headers="legacy", strategy="moving-window")
    _, headers, _ = await drive(legacy, http_scope())
    assert (
        headers[b"x-ratelimit-limit"],
        headers[b"x-ratelimit-remaining"],
        headers[b"x-ratelimit-reset"],
    ) == (b"3", b"2", b"60")
    _, headers, _ = await drive(limiter(app, limit="3/minute", headers=False), http_scope())
    assert not any(k.startswith((b"ratelimit", b"x-ratelimit")) for k in headers)


async def test_refused_requests_consume_nothing(limiter: Any, app: RecordingApp) -> None:
    """Refusals do not count: the remaining figure is unchanged after many refusals."""
    # An injected clock at a minute's start: on the wall clock, a minute turning during the
    # test reset the 3/minute window and failed it.
    clock = [1_800_000_000.0]
    mw = limiter(app, limit="1/second; 3/minute", strategy="fixed-window", clock=lambda: clock[0])
    assert (await drive(mw, http_scope()))[0] == 200
    for _ in range(10):
        assert (await drive(mw, http_scope()))[0] == 429  # refused by 1/second
    clock[0] += 1.1
    status, headers, _ = await drive(mw, http_scope())
    assert status == 200
    assert headers[b"ratelimit"].startswith(b'"1-per-1s";r=0;')  # the tightest limit
    clock[0] += 1.1
    status, headers, _ = await drive(mw, http_scope())
    assert (status, headers[b"ratelimit"].split(b";")[:2]) == (200, [b'"3-per-60s"', b"r=0"])


async def test_several_limits_all_enforced(limiter: Any, app: RecordingApp) -> None:
    """'2/second; 3/minute': the minute limit refuses even when the second limit would admit."""
    mw = limiter(app, limit="2/second; 3/minute", strategy="moving-window")
    assert [(await drive(mw, http_scope()))[0] for _ in range(3)] == [200, 200, 429]
    await asyncio.sleep(1.05)
    assert [(await drive(mw, http_scope()))[0] for _ in range(2)] == [200, 429]


# --- routes -----------------------------------------------------------------------------------


async def test_rules_exempt_groups_and_cost(limiter: Any, app: RecordingApp) -> None:
    """Routes count separately; 'exempt' is unlimited; a group shares counters; cost weighs hits."""
    mw = limiter(
        app,
        limit=None,
        rules={
            "/a": "1/minute",
            "/b": "1/minute",
            "/health": "exempt",
            "/s1": {"limit": "1/minute", "group": "shared"},
            "/s2": {"limit": "1/minute", "group": "shared"},
            "POST /heavy": {"limit": "4/minute", "cost": 2},
        },
    )
    assert [(await drive(mw, http_scope(p)))[0] for p in ["/a", "/a", "/b", "/b"]] == [
        200,
        429,
        200,
        429,
    ]
    assert [(await drive(mw, http_scope("/health")))[0] for _ in range(5)] == [200] * 5
    assert [(await drive(mw, http_scope("/unlimited")))[0] for _ in range(5)] == [200] * 5
    assert [(await drive(mw, http_scope(p)))[0] for p in ["/s1", "/s2"]] == [200, 429]
    assert [(await drive(mw, http_scope("/heavy", method="POST")))[0] for _ in range(3)] == [
        200,
        200,
        429,
    ]


async def test_default_limit_applies_to_unmatched_routes(limiter: Any, app: RecordingApp) -> None:
    """With limit= and rules, unmatched routes share the default bucket; exempt routes stay free."""
    mw = limiter(app, limit="2/minute", rules={"/health": "exempt"})
    assert [(await drive(mw, http_scope(p)))[0] for p in ["/x", "/y", "/z", "/health"]] == [
        200,
        200,
        429,
        200,
    ]


# --- keys -----------------------------------------------------------------------------------


async def test_rotating_x_forwarded_for_from_untrusted_peer_stays_in_one_bucket(
    limiter: Any, app: RecordingApp
) -> None:
    """Forged X-Forwarded-For from an untrusted peer cannot dodge the limit."""
    mw = ProxyHeadersMiddleware(limiter(app, limit="3/minute"), trusted=["10.0.0.1"])
    async with client_for(mw, peer="203.0.113.50") as client:
        statuses = [
            (await client.get("/", headers={"x-forwarded-for": f"1.1.1.{i}"})).status_code
            for i in range(6)
        ]
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_trusted_proxy_clients_get_their_own_buckets(limiter: Any, app: RecordingApp) -> None:
    """Behind a trusted proxy, each real client is limited separately."""
    mw = ProxyHeadersMiddleware(limiter(app, limit="1/minute"), trusted=["10.0.0.1"])
    async with client_for(mw, peer="10.0.0.1") as client:
        statuses = [
            (await client.get("/", headers={"x-forwarded-for": ip})).status_code
            for ip in ["1.1.1.1", "1.1.1.2", "1.1.1.1"]
        ]
    assert statuses == [200, 200, 429]


async def test_claim_keys_fall_back_to_ip(limiter: Any, app: RecordingApp) -> None:
    """key='sub' limits per subject; unauthenticated requests are keyed by IP."""
    mw = limiter(app, limit="1/minute", key="sub")
    alice = http_scope(auth={"sub": "alice"})
    assert (await drive(mw, alice))[0] == 200
    assert (await drive(mw, http_scope(auth={"sub": "alice"}, client="192.0.2.9")))[0] == 429
    assert (await drive(mw, http_scope(auth={"sub": "bob"})))[0] == 200
    assert (await drive(mw, http_scope(auth=None)))[0] == 200
    assert (await drive(mw, http_scope(auth=None)))[0] == 429
    tenant = limiter(app, limit="1/minute", key="claim:tenant")
    assert (await drive(tenant, http_scope(auth={"tenant": "t1"})))[0] == 200
    assert (await drive(tenant, http_scope(auth={"tenant": "t1"}, client="192.0.2.7")))[0] == 429


async def test_header_and_callable_keys(limiter: Any, app: RecordingApp) -> None:
    """header:<name> and callables pick the identity; identities never collide through '/'."""
    mw = limiter(app, limit="1/minute", key="header:X-API-Key")
    assert (await drive(mw, http_scope(headers=[(b"x-api-key", b"k/1")])))[0] == 200
    assert (await drive(mw, http_scope(headers=[(b"x-api-key", b"k")])))[0] == 200
    assert (await drive(mw, http_scope(headers=[(b"x-api-key", b"=k")])))[0] == 200
    assert (await drive(mw, http_scope(headers=[(b"x-api-key", b"k/1")], client="192.0.2.1")))[
        0
    ] == 429
    fn = limiter(app, limit="1/minute", key=lambda scope: scope["path"].split("/")[1] or None)
    assert [(await drive(fn, http_scope(p)))[0] for p in ["/t1/x", "/t1/y", "/t2/x"]] == [
        200,
        429,
        200,
    ]


async def test_long_identities_are_hashed(limiter: Any, app: RecordingApp) -> None:
    """A huge identifier is hashed to a bounded key."""
    mw = limiter(app, limit="1/minute", key="header:x-api-key")
    assert (await drive(mw, http_scope(headers=[(b"x-api-key", b"a" * 5000)])))[0] == 200
    assert all(len(key) < 120 for key in mw.storage.held_keys())


# --- shadow, websockets, outages ---------------------------------------------------------------


async def test_shadow_mode_counts_but_never_refuses(limiter: Any, app: RecordingApp) -> None:
    """shadow=True admits everything and records the would-be refusal."""
    mw = limiter(app, limit="1/minute", shadow=True, strategy="moving-window")
    scopes = [http_scope() for _ in range(3)]
    assert [(await drive(mw, s))[0] for s in scopes] == [200, 200, 200]
    info = [s["state"]["asgi_guard"] for s in scopes]
    assert [(i.code, i.shadow, i.ratelimit) for i in info] == [
        (None, False, (1, 0, 60)),
        ("ratelimit.exceeded", True, (1, 0, 60)),
        ("ratelimit.exceeded", True, (1, 0, 60)),
    ]


async def test_websocket_handshake_counts_once(limiter: Any, app: RecordingApp) -> None:
    """Each handshake is one hit; over the limit it is closed before accept."""
    mw = limiter(app, limit="1/minute")
    assert (await run_websocket(mw))[0] == {"type": "websocket.accept"}
    assert await run_websocket(mw) == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 1


async def test_lifespan_passes(limiter: Any, app: RecordingApp) -> None:
    """Lifespan is not counted."""
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await limiter(inner, limit="1/minute")({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]


@pytest.fixture
def black_hole() -> Iterator[tuple[str, list[int]]]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[int] = []
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(1)
            conns.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", accepted
    stop.set()
    thread.join()
    for conn in conns:
        conn.close()
    server.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
async def test_storage_down_fail_open_with_breaker(
    limiter: Any,
    app: RecordingApp,
    kind: str,
    black_hole: tuple[str, list[int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fail open: requests pass without headers; the breaker stops calls; one warning per trip."""
    url = f"redis://127.0.0.1:{free_port()}/0" if kind == "refused" else black_hole[0]
    mw = limiter(app, limit="1/minute", storage=url, storage_timeout=0.2)
    with caplog.at_level(logging.WARNING, "asgi_guard.ratelimit"):
        first = await drive(mw, http_scope())
        started = time.monotonic()
        rest = [await drive(mw, http_scope()) for _ in range(20)]
        elapsed = time.monotonic() - started
    assert first[0] == 200
    assert b"ratelimit" not in first[1]
    assert all(r[0] == 200 for r in rest)
    assert elapsed < 0.15  # breaker open: no storage calls, no timeouts
    [record] = [r for r in caplog.records if r.name == "asgi_guard.ratelimit"]
    assert record.getMessage().startswith("rate-limit storage failed (")
    assert app.calls == 21


async def test_storage_down_fail_closed(limiter: Any, app: RecordingApp) -> None:
    """Fail closed: 503 problem+json with Retry-After, never 500, app not called."""
    mw = limiter(
        app,
        limit="1/minute",
        storage=f"redis://127.0.0.1:{free_port()}/0",
        on_storage_error="closed",
        storage_timeout=0.2,
    )
    for _ in range(3):
        status, headers, body = await drive(mw, http_scope())
        assert (status, headers[b"retry-after"], orjson.loads(body)["code"]) == (
            503,
            b"1",
            "ratelimit.unavailable",
        )
    assert app.calls == 0


async def test_breaker_recovers(limiter: Any, app: RecordingApp, redis_url: str) -> None:
    """After the back-off one probe calls the storage again and limiting resumes at once."""
    clock = [time.time()]
    unique_key = unique()
    mw = limiter(
        app, limit="1/minute", storage=redis_url, clock=lambda: clock[0], key=lambda s: unique_key
    )
    mw._breaker.failure(mw._breaker.ticket(clock[0]), clock[0], ConnectionError())
    assert (await drive(mw, http_scope()))[0] == 200  # open breaker: admitted unchecked
    clock[0] += 1.0
    assert (await drive(mw, http_scope()))[0] == 200  # the probe, counted
    assert (await drive(mw, http_scope()))[0] == 429
    assert mw._breaker.closed


async def test_memory_storage_stays_bounded(limiter: Any, app: RecordingApp) -> None:
    """100k idle clients are swept once their windows pass, a bounded number of keys per step."""
    clock = [1_800_000_000.0]
    mw = limiter(app, limit="5/second", headers=False, clock=lambda: clock[0])
    for i in range(100_000):
        await drive(mw, http_scope(client=f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}"))
    assert len(mw.storage) == 100_000
    clock[0] += 3.0
    steps = 0
    while len(mw.storage) > 1:
        await drive(mw, http_scope(client="192.0.2.200"))
        steps += 1
    assert steps == 100  # 1,000 keys a step
    assert mw.storage.largest_step == 1000


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option", "message"),
    [
        ({"limit": "5/fortnight"}, "limit", "invalid rate '5/fortnight'"),
        ({"limit": 5}, "limit", "a rate limit is a string"),
        ({"limit": "0/minute"}, "limit", "invalid rate '0/minute'"),
        ({"rules": {"/a": "x"}}, "rules['/a']", "invalid rate 'x'"),
        ({"rules": {"/a": {"limit": "1/minute", "cost": 0}}}, "rules['/a']", "cost must be"),
        ({"rules": {"/a": {"limit": "1/minute", "bogus": 1}}}, "rules['/a']", "unknown keys"),
        ({"rules": {"/a": {"limit": "1/minute", "group": 3}}}, "rules['/a']", "group must be"),
        ({"rules": {"nope": "1/minute"}}, "rules", "route path must start"),
        ({"strategy": "leaky"}, "strategy", "must be one of"),
        ({"storage": "nothing"}, "storage", "must be a storage URI"),
        ({"storage": "memcached://127.0.0.1:11211"}, "storage", ""),
        ({"storage": "bogus://x"}, "storage", "unknown storage scheme"),
        ({"storage": "redis+cluster://"}, "storage", "cluster node '' is not host:port"),
        ({"storage": "redis+cluster://:7000"}, "storage", "node ':7000' is not"),
        ({"storage": "redis+cluster://a:7000,,b:7001"}, "storage", "node '' is not"),
        ({"storage": "redis+cluster://a:0"}, "storage", "node 'a:0' is not"),
        (
            {"storage": "rediss+cluster://a:7000?ssl_ca_certs=/ca.pem&max_connections=4"},
            "storage",
            "a cluster URI takes only ?max_connections=N, not ['ssl_ca_certs']",
        ),
        ({"storage": "redis+cluster://a:7000/2"}, "storage", "not /2"),
        ({"storage": "redis+cluster://[::1]7000"}, "storage", "node '[::1]7000' is not"),
        ({"key": "cookie"}, "key", "must be 'ip'"),
        ({"key": "claim:"}, "key", "claim: needs"),
        ({"key": "header:"}, "key", "header: needs"),
        ({"key": "header:X API Key"}, "key", "header: needs a header name, not 'x api key'"),
        ({"key": "header:x-api-key:"}, "key", "header: needs"),
        ({"key": "header:clé"}, "key", "header: needs"),
        (
            {"limit": {"claim": "plan", "values": {1: "1/minute"}, "default": "1/second"}},
            "limit.values",
            "claim values are strings",
        ),
        ({"headers": "yes"}, "headers", "must be True"),
        ({"on_storage_error": "maybe"}, "on_storage_error", "must be"),
        ({"processes": 0}, "processes", "whole number"),
        ({"storage_timeout": 0}, "storage_timeout", "seconds > 0"),
    ],
)
def test_bad_options(options: dict[str, Any], option: str, message: str) -> None:
    """Bad options, and storages whose client library is missing, fail at construction."""
    with pytest.raises(ConfigurationError) as info:
        RateLimitMiddleware(RecordingApp(), **options)
    assert info.value.option == option
    assert message in info.value.message


def test_cluster_uri_nodes() -> None:
    """A cluster URI's nodes: host alone (port 6379), host:port and [v6]:port."""
    mw = RateLimitMiddleware(
        RecordingApp(), limit="1/second", storage="redis+cluster://a,b:7001,[::1]:7002"
    )
    nodes = [(node.host, node.port) for node in mw.storage.client.startup_nodes]
    assert nodes == [("a", 6379), ("b", 7001), ("::1", 7002)]


def test_a_mistyped_storage_uri_is_not_echoed_with_its_password() -> None:
    """A storage value that is no URI is named in the error, unless it holds credentials."""
    with pytest.raises(ConfigurationError) as info:
        RateLimitMiddleware(RecordingApp(), storage="redis:/:hunter2@cache:6379")
    assert str(info.value) == "storage: must be a storage URI such as 'memory://', not that"


def test_memory_uri_uses_the_in_process_counters(app: RecordingApp) -> None:
    """memory:// counts in process with the incremental sweep."""
    from asgi_guard.ratelimit import MemoryCounters

    assert isinstance(RateLimitMiddleware(app, limit="1/second").storage, MemoryCounters)


@pytest.mark.parametrize(
    ("clients", "prefix", "statuses"),
    [
        # one /64: every address in it is the same subscriber
        (
            ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::1"],
            64,
            [200, 429, 200],
        ),
        (["2001:db8:1:2::1", "2001:db8:1:2::2"], 128, [200, 200]),
        (["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:1::1"], 80, [200, 429, 200]),
        # written differently, the same address
        (["2001:db8::1", "2001:0DB8:0:0:0:0:0:1"], 128, [200, 429]),
        # zone ids are free text: rotating them gains nothing
        (["fe80::1%1", "fe80::1%eth0", "fe80::1%x"], 64, [200, 429, 429]),
        # an IPv4-mapped address is the IPv4 client
        (["192.0.2.1", "::ffff:192.0.2.1"], 64, [200, 429]),
        # not addresses at all: each string as it is
        (["not:an:address", "not:an:address", "not:another"], 64, [200, 429, 200]),
    ],
)
async def test_ipv6_clients_are_counted_per_network(
    limiter: Any, app: RecordingApp, clients: list[str], prefix: int, statuses: list[int]
) -> None:
    """IPv6 addresses count per /ipv6_prefix network, so rotating within one's own network
    (a /64 per subscriber) does not multiply the limit."""
    mw = limiter(app, limit="1/minute", ipv6_prefix=prefix)
    assert [(await drive(mw, http_scope(client=c)))[0] for c in clients] == statuses


@pytest.mark.parametrize("prefix", [0, 129, True, 64.0])
def test_ipv6_prefix_is_checked(prefix: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        RateLimitMiddleware(RecordingApp(), limit="1/minute", ipv6_prefix=prefix)
    assert info.value.option == "ipv6_prefix"
