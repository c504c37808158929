"""Rate-limit figures a client can trust: Retry-After and t= are the exact whole seconds after
which a retry is admitted, 429s carry the RateLimit fields, and two layers show one pair."""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson
import pytest

from asgi_guard import RateLimitMiddleware
from asgi_guard._asgi import Scope
from asgi_guard.ratelimit.windows import sliding_count, sliding_wait

from . import test_ratelimit as _shared
from .conftest import Channel, RecordingApp
from .conftest import http_scope as make_scope

pytestmark = pytest.mark.anyio

limiter = _shared.limiter  # the layer factory and the memory/Redis storage fixtures
storage = _shared.storage

STRATEGIES = ["sliding-window", "moving-window", "fixed-window"]


class Clock:
    """A settable Unix clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def drive(mw: Any, scope: Scope | None = None) -> tuple[int, dict[bytes, bytes]]:
    """One request through the layer: status and headers."""
    scope = scope or make_scope("/items", client="203.0.113.7")
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope)
    return sent[0]["status"], dict(sent[0]["headers"])


def t_of(headers: dict[bytes, bytes]) -> int:
    return int(headers[b"ratelimit"].rsplit(b";t=", 1)[1])


async def check_retry_after_is_exact(mw: Any, clock: Clock, rng: random.Random) -> None:
    """Hit until refused at random instants; then the retry R seconds later is admitted and
    the one at R - 1 seconds is not; t= of the 429 is R too."""
    for _ in range(60):
        status, headers = await drive(mw)
        if status == 429:
            break
        clock.now += rng.choice([0.0, 0.25, 1.0, rng.randrange(1024) / 1024])
    else:
        raise AssertionError("never refused")
    retry = int(headers[b"retry-after"])
    assert retry >= 1
    assert t_of(headers) == retry
    assert headers[b"ratelimit"].split(b";")[1] == b"r=0"
    refused_at = clock.now
    if retry > 1:
        clock.now = refused_at + retry - 1
        assert (await drive(mw))[0] == 429
    clock.now = refused_at + retry
    assert (await drive(mw))[0] == 200


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("start", ["whole", "fraction"])
async def test_waiting_exactly_retry_after_is_admitted(
    limiter: Any, storage: str, strategy: str, start: str
) -> None:
    """At whole-second instants and random fractional ones, Retry-After is exact: a retry
    after it is admitted, one a second earlier is refused (every strategy, memory and Redis)."""
    rng = random.Random(f"{strategy}-{start}-{storage[:5]}")
    for _ in range(12):
        base = 1_800_000_000 + rng.randrange(100_000)
        clock = Clock(float(base) if start == "whole" else base + rng.randrange(1024) / 1024)
        limit = rng.choice(["2/second", "3/10 seconds", "5/minute", "2/minute; 4/hour"])
        mw = limiter(
            RecordingApp(),
            limit=limit,
            strategy=strategy,
            storage=storage,
            clock=clock,
            key=lambda _s, k=uuid.uuid4().hex: k,  # noqa: B008 - one fresh identity per layer
        )
        await check_retry_after_is_exact(mw, clock, rng)


async def test_one_step_sliding_window_figures_at_whole_seconds(limiter: Any) -> None:
    """A 10/minute sliding window full at :40 frees a request 1 ms after :60 (the previous
    window's 10 hits weigh 10 until then), so Retry-After is 21, not 20, and no float error
    moves it either way."""
    clock = Clock(1_800_000_040.0)  # 40 s into a minute window
    mw = limiter(RecordingApp(), limit="10/minute", clock=clock)
    for _ in range(10):
        status, headers = await drive(mw)
        assert status == 200
    status, headers = await drive(mw)
    assert status == 429
    assert (headers[b"retry-after"], t_of(headers)) == (b"21", 21)
    clock.now += 20
    assert (await drive(mw))[0] == 429
    clock.now += 1
    status, headers = await drive(mw)
    assert status == 200
    assert headers[b"ratelimit"] == b'"10-per-60s";r=0;t=6'  # 9 weighted + this one


@pytest.mark.parametrize(
    ("prev", "curr", "target", "window"),
    [
        (p, c, t, w)
        for p in (0, 1, 3, 10)
        for c in (0, 2, 5)
        for t in (-1, 0, 2, 7)
        for w in (1000, 60000)
    ],
)
def test_sliding_wait_is_the_earliest_instant(
    prev: int, curr: int, target: int, window: int
) -> None:
    """sliding_wait returns the first millisecond at which the weighted count is <= target."""
    rng = random.Random(prev * 1000 + curr * 100 + target + window)
    for _ in range(20):
        now = 1_800_000_000_000 + rng.randrange(2 * window)
        wait = sliding_wait(prev, curr, target, now, window)
        if target < 0:
            assert wait == window
            continue

        def count(at: int, now: int = now) -> int:
            # the counters as they stand at `at`, rolled from `now` with no new hits
            shift = at // window - now // window
            p, c = (prev, curr) if shift == 0 else ((curr, 0) if shift == 1 else (0, 0))
            return sliding_count(p, c, at, window)

        assert count(now + wait) <= target
        if wait > 0:
            assert count(now + wait - 1) > target


async def test_refusal_carries_ratelimit_fields(limiter: Any) -> None:
    """A 429 carries RateLimit-Policy and RateLimit (r=0, t= the Retry-After)."""
    clock = Clock(1_800_000_000.5)
    mw = limiter(RecordingApp(), limit="1/minute", strategy="moving-window", clock=clock)
    assert (await drive(mw))[0] == 200
    clock.now += 10
    status, headers = await drive(mw)
    assert status == 429
    assert headers[b"ratelimit-policy"] == b'"1-per-60s";q=1;w=60'
    assert headers[b"ratelimit"] == b'"1-per-60s";r=0;t=50'
    assert headers[b"retry-after"] == b"50"


# --- two layers on one route -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected", "record"),
    [
        # the identity limit is tighter: its figures win
        ("5/minute", "2/minute", b'"2-per-60s";r=1;t=60', (2, 1, 60)),
        # the IP limit is tighter
        ("2/minute", "5/minute", b'"2-per-60s";r=1;t=60', (2, 1, 60)),
        # equal remaining: the longer reset wins
        ("2/minute", "2/hour", b'"2-per-3600s";r=1;t=3600', (2, 1, 3600)),
        ("2/hour", "2/minute", b'"2-per-3600s";r=1;t=3600', (2, 1, 3600)),
    ],
)
async def test_two_layers_show_one_pair_for_the_tightest_limit(
    outer: str, inner: str, expected: bytes, record: tuple[int, int, int]
) -> None:
    """An IP limit and an identity limit on one route: one RateLimit pair, the tightest's
    (fewest remaining, then longest reset), and the same figures in the access-log record."""
    clock = Clock(1_800_000_000.0)
    app = RecordingApp()
    mw = RateLimitMiddleware(
        RateLimitMiddleware(app, limit=inner, key="sub", clock=clock, strategy="moving-window"),
        limit=outer,
        clock=clock,
        strategy="moving-window",
    )
    scope = make_scope("/items", client="203.0.113.9", auth={"sub": "alice"})
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope)
    headers = sent[0]["headers"]
    assert [v for k, v in headers if k == b"ratelimit"] == [expected]
    assert len([v for k, v in headers if k == b"ratelimit-policy"]) == 1
    assert scope["state"]["asgi_guard"].ratelimit == record


async def test_inner_refusal_shows_the_refusing_limit_once() -> None:
    """When the identity limit refuses, the 429 carries one pair: the refusing limit's."""
    clock = Clock(1_800_000_000.0)
    app = RecordingApp()
    mw = RateLimitMiddleware(
        RateLimitMiddleware(app, limit="1/minute", key="sub", clock=clock, strategy="fixed-window"),
        limit="100/minute",
        clock=clock,
    )

    def scope() -> Scope:
        return make_scope("/items", client="203.0.113.9", auth={"sub": "bob"})

    assert (await drive(mw, scope()))[0] == 200
    refused = scope()
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, refused)
    headers = sent[0]["headers"]
    assert sent[0]["status"] == 429
    assert [v for k, v in headers if k == b"ratelimit"] == [b'"1-per-60s";r=0;t=60']
    assert [v for k, v in headers if k == b"ratelimit-policy"] == [b'"1-per-60s";q=1;w=60']
    assert orjson.loads(sent[1]["body"])["code"] == "ratelimit.exceeded"
    assert refused["state"]["asgi_guard"].ratelimit == (1, 0, 60)
    assert app.calls == 1


async def test_guard_stack_shows_one_pair_for_the_tightest_limit() -> None:
    """guard() with an IP limit and an identity limit: each response carries one RateLimit
    pair, the tightest's, and the access-log record holds the same figures."""
    import logging

    from asgi_guard import guard
    from asgi_guard.devkeys import (
        DEV_AUDIENCE,
        DEV_ISSUER,
        generate_keys,
        mint_token,
        public_jwks,
    )

    from .conftest import client_for

    keys = generate_keys()
    config = {
        "access_log": {"logger": "test.ratelimit.access"},
        "rate_limit": {
            "limit": "5/minute",
            "identity_limit": "2/hour",
            "strategy": "moving-window",
        },
        "jwt": {"jwks": public_jwks(keys), "issuer": DEV_ISSUER, "audience": DEV_AUDIENCE},
    }
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("test.ratelimit.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    headers = {"authorization": f"Bearer {mint_token(keys, sub='carol')}"}
    try:
        async with client_for(guard(RecordingApp(), config, environ={})) as client:
            responses = [await client.get("/items", headers=headers) for _ in range(3)]
    finally:
        logger.removeHandler(handler)
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r.headers.get_list("ratelimit") for r in responses] == [
        ['"2-per-3600s";r=1;t=3600'],  # identity: 1 left of 2, IP: 4 of 5
        ['"2-per-3600s";r=0;t=3600'],
        ['"2-per-3600s";r=0;t=3600'],  # refused by the identity limit
    ]
    assert [len(r.headers.get_list("ratelimit-policy")) for r in responses] == [1, 1, 1]
    logged = [orjson.loads(r.getMessage())["ratelimit"] for r in records]
    assert logged == [[2, 1, 3600], [2, 0, 3600], [2, 0, 3600]]
