"""The verified-token cache is bounded by the bytes it holds; large tokens are never cached."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from asgi_guard import ConfigurationError, JWTAuthMiddleware, guard
from asgi_guard.jwt.cache import MAX_CACHED_TOKEN, deep_size

from .conftest import Channel, RecordingApp, http_scope
from .jwt_helpers import AUDIENCE, ISSUER, NOW, forge_hmac

pytestmark = pytest.mark.anyio

SECRET = b"s" * 40


def token(sub: str, **extra: Any) -> bytes:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "exp": int(NOW) + 600,
        "scope": "orders:read",
        **extra,
    }
    return forge_hmac(SECRET, {"alg": "HS256", "typ": "JWT"}, claims).encode()


def groups(count: int, seed: int = 0) -> list[str]:
    """Group ids as Entra ID puts them in a token: one GUID each."""
    return [f"{seed:08x}-{j:04x}-4c6b-9d3a-1f1f1f1f1f1f" for j in range(count)]


def middleware(app: Any, **options: Any) -> JWTAuthMiddleware:
    return JWTAuthMiddleware(
        app, secret=SECRET, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW, **options
    )


async def bare_app(scope: Any, receive: Any, send: Any) -> None:
    """An app that keeps nothing of the requests it answers."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def call(mw: JWTAuthMiddleware, raw: bytes) -> int:
    sent = await Channel().run(mw, http_scope(headers=[(b"authorization", b"Bearer " + raw)]))
    return int(sent[0]["status"])


async def test_a_15_kb_token_is_verified_but_not_cached(app: RecordingApp) -> None:
    """A token over 8 KiB (the issue's 15 KB ones) is accepted and never stored."""
    big = token("alice", groups=groups(290))
    assert 14_000 < len(big) < 16_384
    mw = middleware(app)
    assert [await call(mw, big) for _ in range(3)] == [200, 200, 200]
    assert len(mw._cache) == 0
    assert mw._cache.bytes == 0
    small = token("bob")
    assert await call(mw, small) == 200
    assert len(mw._cache) == 1


async def test_the_cache_stays_within_its_bytes(app: RecordingApp) -> None:
    """With a 256 KiB budget, 100 tokens of about 6 KB keep the newest that fit, no more."""
    mw = middleware(app, cache_max_bytes=256 * 1024)
    sent = [token(f"user-{i}", groups=groups(140, i)) for i in range(100)]
    assert all(4_000 < len(raw) <= MAX_CACHED_TOKEN for raw in sent)
    for raw in sent:
        assert await call(mw, raw) == 200
    cache = mw._cache
    assert 0 < cache.bytes <= 256 * 1024
    assert 10 < len(cache) < 100
    assert cache.bytes == sum(entry.size for entry in cache._entries.values())
    # The least recently used went first: the newest tokens are the ones kept.
    kept = {entry.user.sub for entry in cache._entries.values()}
    assert kept == {f"user-{i}" for i in range(100 - len(cache), 100)}


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"groups": groups(120)},
        {"x": [[] for _ in range(1500)]},  # 4 token bytes a list: the most memory per byte
        {"scope": " ".join(f"s{j}:x" for j in range(800))},
    ],
    ids=["plain", "groups", "empty-lists", "many-scopes"],
)
async def test_counted_bytes_cover_the_memory_held(extra: Any) -> None:
    """What the cache counts is at least the memory its entries really keep alive."""
    mw = middleware(bare_app, cache_size=100_000, cache_max_bytes=1 << 40)
    sent = [token(f"user-{i}", **extra) for i in range(60)]
    assert all(len(raw) <= MAX_CACHED_TOKEN for raw in sent)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for raw in sent:
            assert await call(mw, raw) == 200
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(mw._cache) == 60
    assert held <= mw._cache.bytes * 1.05, (held, mw._cache.bytes)


async def test_bytes_follow_removals(app: RecordingApp) -> None:
    """Expired entries and forgotten keys give their bytes back."""
    now = [NOW]
    mw = JWTAuthMiddleware(
        app, secret=SECRET, issuer=ISSUER, audience=AUDIENCE, clock=lambda: now[0]
    )
    short = token("a", exp=int(NOW) + 10)
    assert await call(mw, short) == 200
    assert await call(mw, token("b")) == 200
    assert len(mw._cache) == 2
    now[0] = NOW + 100
    assert await call(mw, short) == 401
    assert len(mw._cache) == 1
    assert mw._cache.bytes == sum(entry.size for entry in mw._cache._entries.values())
    mw._forget_kids({"unknown"})
    assert len(mw._cache) == 1
    mw._cache.forget_kids({None})  # type: ignore[arg-type]  # the secret's key has no kid
    assert (len(mw._cache), mw._cache.bytes) == (0, 0)


def test_store_edges() -> None:
    """An entry over the whole budget is not stored; storing a digest again replaces it."""
    from asgi_guard.jwt.cache import TokenCache
    from asgi_guard.jwt.user import AuthenticatedUser

    user = AuthenticatedUser("a", frozenset(), {"sub": "a", "exp": NOW + 60})
    tiny = TokenCache(10, max_bytes=100)
    tiny.store(b"d" * 32, 100, user, None, NOW)
    assert (len(tiny), tiny.bytes) == (0, 0)
    cache = TokenCache(10)
    cache.store(b"d" * 32, 100, user, None, NOW)
    once = cache.bytes
    cache.store(b"d" * 32, 100, user, "k", NOW)  # two concurrent misses of one token
    assert (len(cache), cache.bytes) == (1, once)
    assert cache.lookup(b"d" * 32, NOW, 0) is user


def test_deep_size_counts_nested_values() -> None:
    """deep_size sums every object of a decoded JSON tree, containers and leaves."""
    import sys

    inner: dict[str, Any] = {"b": None}
    items: list[Any] = ["xy", 1, 2.5, inner]
    scopes = frozenset({"s"})
    value = {"a": items, "c": scopes}
    parts = [value, "a", items, "xy", 1, 2.5, inner, "b", None, "c", scopes, "s"]
    assert deep_size(value) == sum(sys.getsizeof(part) for part in parts)


def test_cache_max_bytes_option() -> None:
    """cache_max_bytes is a whole number >= 0, also from a config."""
    with pytest.raises(ConfigurationError, match=r"^cache_max_bytes: "):
        middleware(RecordingApp(), cache_max_bytes=-1)
    stack = guard(
        RecordingApp(),
        {"jwt": {"secret": SECRET.decode(), "cache_max_bytes": 1024, "audience": AUDIENCE}},
    )
    while not isinstance(stack, JWTAuthMiddleware):
        stack = stack.app  # type: ignore[attr-defined]
    assert stack._cache.max_bytes == 1024
