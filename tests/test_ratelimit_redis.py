"""Rate limiting on a real Redis under bursts, overload and faults: exact, never a 500, and a
short fault stays short."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from asgi_guard import RateLimitMiddleware
from asgi_guard._asgi import Scope
from asgi_guard.ratelimit.breaker import BACKOFF_MAX

from .conftest import Channel, RecordingApp, free_port
from .conftest import http_scope as make_scope
from .redis_servers import RedisServer

pytestmark = pytest.mark.anyio

STRATEGIES = ["sliding-window", "moving-window", "fixed-window"]


def scope() -> Scope:
    return make_scope("/items", client="203.0.113.5")


async def status_of(mw: Any) -> int:
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope())
    status: int = sent[0]["status"]
    return status


async def burst(mws: list[Any], count: int) -> list[int]:
    """``count`` concurrent requests spread over the layers ``mws`` (as over processes)."""
    return list(await asyncio.gather(*(status_of(mws[i % len(mws)]) for i in range(count))))


@pytest.fixture
async def build() -> AsyncIterator[Any]:
    """Builds layers keyed on one fresh identity per test and closes their storages after."""
    made: list[RateLimitMiddleware] = []
    identity = uuid.uuid4().hex

    def make(app: Any = None, **options: Any) -> RateLimitMiddleware:
        options.setdefault("key", lambda _scope: identity)
        mw = RateLimitMiddleware(app or RecordingApp(), **options)
        made.append(mw)
        return mw

    make.identity = identity  # type: ignore[attr-defined]
    yield make
    for mw in made:
        await mw.aclose()


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop, pause and restart."""
    redis = RedisServer().start()
    yield redis
    if redis.proc is not None:
        redis.resume()
    redis.stop()


# --- bursts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_burst_of_1000_admits_exactly_the_limit(
    build: Any, redis_url: str, strategy: str
) -> None:
    """1,000 concurrent requests against 50/day on the URI as the docs write it admit
    exactly 50, with no storage failure (the pool never runs out: calls wait their turn)."""
    app = RecordingApp()
    mw = build(app, limit="50/day", storage=redis_url, strategy=strategy)
    statuses = await burst([mw], 1000)
    assert (statuses.count(200), statuses.count(429)) == (50, 950)
    assert app.calls == 50
    assert mw._breaker.trips == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_two_processes_share_one_exact_limit(
    build: Any, redis_url: str, strategy: str
) -> None:
    """Two layers with their own clients (two processes) on one Redis: 50 of 600, exactly."""
    mws = [build(limit="50/day", storage=redis_url, strategy=strategy) for _ in range(2)]
    statuses = await burst(mws, 600)
    assert statuses.count(200) == 50
    assert statuses.count(429) == 550


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_busy_event_loop_is_not_a_storage_fault(
    build: Any, redis_url: str, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A burst that keeps calls queued far longer than storage_timeout, and a loop blocked for
    four timeouts mid-burst, fail nothing: Redis answered, so nothing is over-admitted."""
    mw = build(limit="50/day", storage=redis_url, strategy=strategy, storage_timeout=0.1)

    async def block() -> None:
        await asyncio.sleep(0.01)
        time.sleep(0.4)  # noqa: ASYNC251 - a handler that blocks the loop, on purpose

    results = await asyncio.gather(burst([mw], 600), block())
    statuses = results[0]
    assert (statuses.count(200), statuses.count(429)) == (50, 550)
    assert mw._breaker.trips == 0
    assert not [r for r in caplog.records if r.name == "asgi_guard.ratelimit"]


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_refused_requests_consume_nothing_with_several_limits(
    build: Any, redis_url: str, strategy: str
) -> None:
    """'100/hour; 50/hour', 500 concurrent: 50 admitted, and the looser limit counted 50."""
    mw = build(limit="100/hour; 50/hour", storage=redis_url, strategy=strategy)
    statuses = await burst([mw], 500)
    assert statuses.count(200) == 50
    client = Redis.from_url(redis_url)
    key = f"ag{strategy[0]}:{{d/fn={build.identity}}}/100/3600"
    if strategy == "moving-window":
        counted = await client.llen(key)
    else:
        counted = int(await client.hget(key, "c" if strategy == "sliding-window" else "n") or 0)
    await client.aclose()
    assert counted == 50


# --- faults -----------------------------------------------------------------------------------


async def test_one_trip_and_one_warning_per_incident(
    build: Any, server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """32 requests in flight when Redis hangs: one trip, one warning, back-off still minimal."""
    mw = build(limit="1000/minute", storage=server.url, storage_timeout=0.2)
    assert await status_of(mw) == 200
    server.pause()
    statuses = await burst([mw], 32)
    assert statuses == [200] * 32  # fail open
    assert mw._breaker.trips == 1
    warnings = [r for r in caplog.records if r.name == "asgi_guard.ratelimit"]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("rate-limit storage failed (TimeoutError)")


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_limiting_resumes_after_a_restart_despite_stale_connections(
    build: Any, server: RedisServer, mode: str
) -> None:
    """Redis restarts (pooled connections now broken): the first probe after the back-off
    discards them and limiting resumes, in both modes."""
    clock = [1_800_000_000.0]
    mw = build(
        limit="3/minute",
        storage=server.url,
        on_storage_error=mode,
        storage_timeout=0.3,
        clock=lambda: clock[0],
    )
    statuses = await burst([mw], 20)  # 20 pooled connections
    assert (statuses.count(200), statuses.count(429)) == (3, 17)
    server.stop()
    down = await status_of(mw)
    assert down == (503 if mode == "closed" else 200)
    server.start()  # same port, empty: the old connections are dead
    clock[0] += BACKOFF_MAX
    assert [await status_of(mw) for _ in range(4)] == [200, 200, 200, 429]
    assert mw._breaker.closed


async def test_a_hang_then_recovery_within_the_back_off_cap(
    build: Any, server: RedisServer
) -> None:
    """A hung Redis answers 503 (closed) after the timeout; once it answers again, the next
    probe (at most BACKOFF_MAX later) closes the breaker and limiting resumes."""
    clock = [1_800_000_000.0]
    mw = build(
        limit="100/minute",
        storage=server.url,
        on_storage_error="closed",
        storage_timeout=0.2,
        clock=lambda: clock[0],
    )
    assert await status_of(mw) == 200
    server.pause()
    for _ in range(3):  # the trip, then failed probes doubling the back-off to the cap
        assert await status_of(mw) == 503
        clock[0] += BACKOFF_MAX
    assert mw._breaker.backoff == BACKOFF_MAX
    server.resume()
    clock[0] += BACKOFF_MAX
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope())
    # A real decision again. The calls that timed out ran when Redis woke: they counted.
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"ratelimit"].startswith(b'"100-per-60s";r=9')
    assert mw._breaker.closed


@pytest.mark.parametrize("error", [RuntimeError, AttributeError, KeyError, ValueError])
async def test_any_client_error_is_a_storage_failure(
    build: Any, redis_url: str, error: type[Exception]
) -> None:
    """Errors a client raises from closed transports (RuntimeError, AttributeError...) are
    storage failures, answered as configured, never a 500."""
    mw = build(limit="1/minute", storage=redis_url, on_storage_error="closed")

    async def broken(**_: Any) -> Any:
        raise error("transport closed")

    mw.storage._script = broken
    sent = await Channel([{"type": "http.request", "body": b""}]).run(mw, scope())
    assert sent[0]["status"] == 503
    assert orjson.loads(sent[1]["body"])["code"] == "ratelimit.unavailable"


async def test_local_fallback_enforces_the_process_share(build: Any) -> None:
    """on_storage_error='local' with processes=2: while Redis is down, each process enforces
    half the limit in memory."""
    mw = build(
        limit="10/minute",
        storage=f"redis://127.0.0.1:{free_port()}/0",
        on_storage_error="local",
        processes=2,
    )
    statuses = [await status_of(mw) for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def test_open_mode_without_storage_logs_once(
    build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection trips the breaker once; requests pass while it stays open."""
    caplog.set_level(logging.WARNING)
    mw = build(limit="1/minute", storage=f"redis://127.0.0.1:{free_port()}/0")
    assert await burst([mw], 10) == [200] * 10
    assert len([r for r in caplog.records if r.name == "asgi_guard.ratelimit"]) == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_redis_scripts_decide_as_the_memory_counters(redis_url: str, strategy: str) -> None:
    """Random decisions (several limits, costs, fractional and whole instants) get the same
    verdicts and figures from the Redis script as from the in-process counters."""
    import random

    from asgi_guard.ratelimit.memory import MemoryCounters
    from asgi_guard.ratelimit.redis import RedisCounters

    rng = random.Random(strategy)
    redis = RedisCounters(redis_url, strategy, 5.0)
    memory = MemoryCounters(strategy)
    stem = f"{redis.prefix}d/{uuid.uuid4().hex}}}"
    now = 1_800_000_000_000 + rng.randrange(60_000)
    try:
        for _ in range(300):
            now += rng.choice([0, 1, 250, 999, 1000, rng.randrange(5000)])
            items = [(stem + "/3/2", 3, 2000), (stem + "/5/10", 5, 10_000)]
            cost = rng.choice([1, 1, 1, 2, 6])
            assert await redis.decide(items, cost, now) == memory.decide(items, cost, now)
    finally:
        await redis.aclose()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_other_storages_go_through_limits_strategies(redis_url: str, strategy: str) -> None:
    """A storage without a script of ours (here limits' own Redis storage) is counted by
    limits' strategies: exact one decision at a time, and a refusal consumes nothing."""
    from limits.storage import storage_from_string

    from asgi_guard.ratelimit.generic import LimitsCounters

    storage = storage_from_string(
        "async+" + redis_url, implementation="redispy", wrap_exceptions=True
    )
    counters = LimitsCounters(storage, strategy)
    key = uuid.uuid4().hex
    items = [(key + "/a", 3, 60_000), (key + "/b", 5, 3_600_000)]
    try:
        verdicts = []
        for _ in range(6):
            admitted, figures = await counters.decide(items, 1, round(time.time() * 1000))
            verdicts.append(admitted)
        assert verdicts == [True] * 3 + [False] * 3
        assert [remaining for remaining, _ in figures] == [0, 2]  # the looser limit counted 3
        # limits' fixed window starts at its own reading of the clock, a little after ours
        assert 0 < figures[0][1] <= 61_000
        await counters.discard_idle()
    finally:
        await counters.aclose()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_request_that_read_the_clock_before_the_window_turned(
    redis_url: str, strategy: str
) -> None:
    """Requests that read the clock just before a window turned but reach the storage after
    requests of the new window are counted in the new window: none is admitted beyond the
    limit, on Redis and in memory alike (a burst of 1,000 over two processes once admitted 126
    of 50 this way)."""
    from asgi_guard.ratelimit.memory import MemoryCounters
    from asgi_guard.ratelimit.redis import RedisCounters

    redis = RedisCounters(redis_url, strategy, 5.0)
    memory = MemoryCounters(strategy)
    stem = f"{redis.prefix}d/{uuid.uuid4().hex}}}"
    items = [(stem + "/5/60", 5, 60_000)]
    before = 1_800_000_060_000 - 1  # the last millisecond of a minute window
    after = before + 2
    try:
        for counters in (redis, memory):
            verdicts = []
            for at in [before] * 5 + [after] * 5 + [before] * 10 + [after] * 5:
                admitted, _ = await _decide(counters, items, at)
                verdicts.append(admitted)
            assert sum(verdicts[:5]) == 5
            assert sum(verdicts[10:]) == 0  # the late ones, and the new window after them
    finally:
        await redis.aclose()


async def _decide(counters: Any, items: Any, at: int) -> tuple[bool, Any]:
    decision = counters.decide(items, 1, at)
    result: tuple[bool, Any] = await decision if asyncio.iscoroutine(decision) else decision
    return result


def test_burst_under_uvloop(redis_url: str) -> None:
    """The same burst on uvloop, the loop asgi-guard serve runs (its handles differ from
    asyncio's): 50 of 1,000, no storage failure."""
    import uvloop

    async def main() -> tuple[list[int], int]:
        mw = RateLimitMiddleware(
            RecordingApp(), limit="50/day", storage=redis_url, key=lambda _scope: identity
        )
        try:
            return await burst([mw], 1000), mw._breaker.trips
        finally:
            await mw.aclose()

    identity = uuid.uuid4().hex
    statuses, trips = uvloop.run(main())
    assert (statuses.count(200), statuses.count(429), trips) == (50, 950, 0)


async def test_a_cancelled_probe_lets_the_next_request_probe(
    build: Any, server: RedisServer
) -> None:
    """A probe whose request is cancelled mid-call (client gone, server shutdown) does not
    leave the breaker half-open for ever: the next request after it probes and closes it."""
    clock = [1_800_000_000.0]
    mw = build(
        limit="100/minute",
        storage=server.url,
        on_storage_error="closed",
        storage_timeout=0.2,
        clock=lambda: clock[0],
    )
    assert await status_of(mw) == 200
    server.pause()
    assert await status_of(mw) == 503  # the trip
    clock[0] += BACKOFF_MAX
    probe = asyncio.ensure_future(status_of(mw))
    for _ in range(50):  # until the probe is waiting on the hung server
        await asyncio.sleep(0.002)
        if mw._breaker.is_probe(mw._breaker.probe):
            break
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    server.resume()
    assert await status_of(mw) == 200
    assert mw._breaker.closed


async def test_storage_timeout_bounds_the_other_storages(build: Any, server: RedisServer) -> None:
    """storage_timeout bounds a storage counted through limits (here Sentinel on a hung
    server): the request is answered as the storage being down, where it waited for ever."""
    mw = build(
        limit="5/minute",
        storage=f"redis+sentinel://127.0.0.1:{server.port}/main",
        on_storage_error="closed",
        storage_timeout=0.2,
    )
    server.pause()
    assert await asyncio.wait_for(status_of(mw), 10) == 503
