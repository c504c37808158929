"""Remote JWKS as deployed: trickling, hanging and gzip-bombing servers, and key rotation timing."""

from __future__ import annotations

import asyncio
import gzip
import logging
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from asgi_guard import JWTAuthMiddleware

from .conftest import RecordingApp
from .jwt_helpers import AUDIENCE, ISSUER, NOW, JWKSServer, Keys, mint
from .test_jwt_remote import Monotonic, status

pytestmark = pytest.mark.anyio

#: A 60 MB JSON document in 58 KiB of gzip: under the 64 KiB cap until it is inflated.
BOMB_SIZE = 60_000_000


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip.compress(b'{"keys": [' + b" " * BOMB_SIZE + b"]}", compresslevel=9)


@pytest.fixture
def server(keys: Keys) -> Iterator[JWKSServer]:
    srv = JWKSServer()
    srv.jwks = keys.jwks("rsa")
    yield srv
    srv.close()


def make(
    app: RecordingApp, server: JWKSServer, **options: Any
) -> tuple[JWTAuthMiddleware, Monotonic]:
    if not options.pop("discovery", False):
        options["jwks_url"] = server.url + "/jwks"
        options["issuer"] = ISSUER
    else:
        options.update(discovery=True, issuer=server.url)
    mw = JWTAuthMiddleware(app, audience=AUDIENCE, clock=lambda: NOW, **options)
    assert mw._remote is not None
    mono = Monotonic()
    mw._remote.clock = mono
    return mw, mono


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "asgi_guard.jwt"]


# -- one deadline for the whole fetch --------------------------------------------------------


@pytest.mark.parametrize("discovery", [False, True])
async def test_trickling_server_cold_start_ends_at_the_deadline(
    app: RecordingApp,
    keys: Keys,
    server: JWKSServer,
    discovery: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """20 requests on a cold cache against a server sending a byte every 50 ms all get 503."""
    server.trickle = 0.05  # under the per-read timeout: only a whole-fetch deadline ends it
    mw, _ = make(app, server, jwks_timeout=0.5, discovery=discovery)
    token = mint(keys.rsa, iss=server.url if discovery else ISSUER)
    with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
        results = await asyncio.wait_for(
            asyncio.gather(*(status(mw, token) for _ in range(20))), 20
        )
    assert results == [(503, "jwt.keys_unavailable")] * 20
    assert sum(server.hits.values()) == 1  # one shared fetch, cut at its deadline
    assert messages(caplog) == ["JWKS fetch failed: no complete answer within 0.5 s"]
    assert app.calls == 0


async def test_trickling_server_warm_cache_unknown_kid_ends_at_the_deadline(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """With keys cached, an unknown kid's refetch from a trickling server ends at the deadline."""
    mw, _ = make(app, server, jwks_timeout=0.5)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    server.trickle = 0.05
    server.jwks = keys.jwks("rsa", "ec")
    unknown = mint(keys.ec, "ES256")
    assert await asyncio.wait_for(status(mw, unknown), 20) == (401, "jwt.unknown_key")
    assert await status(mw, mint(keys.rsa, sub="bob")) == (200, None)  # the old set serves on
    assert server.jwks_hits == 2


async def test_hanging_server_is_503(app: RecordingApp, keys: Keys, server: JWKSServer) -> None:
    """A server that accepts and never answers gives 503 at the deadline, never a hang."""
    server.hang = True
    mw, _ = make(app, server, jwks_timeout=0.5)
    assert await asyncio.wait_for(status(mw, mint(keys.rsa)), 20) == (
        503,
        "jwt.keys_unavailable",
    )


# -- the size cap applies to decoded bytes, while reading ------------------------------------


async def test_gzip_bomb_is_refused_without_inflating_it(
    app: RecordingApp,
    keys: Keys,
    server: JWKSServer,
    bomb: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 58 KiB gzip body inflating to 60 MB is refused at 64 KiB decoded, peak memory small."""
    assert len(bomb) < 64 * 1024
    server.body = bomb
    server.content_encoding = "gzip"
    mw, _ = make(app, server)
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
            result = await status(mw, mint(keys.rsa))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result == (503, "jwt.keys_unavailable")
    assert messages(caplog) == ["JWKS fetch failed: ValueError: response over 64 KiB"]
    assert peak < 8 * 1024 * 1024, peak  # the bomb would take 60 MB (137 MB peak before)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", None),
        ("GZIP", None),
        ("x-gzip", None),
        ("deflate", "zlib"),
        ("gzip", "two members"),
    ],
)
async def test_compressed_jwks_is_read(
    app: RecordingApp, keys: Keys, server: JWKSServer, encoding: str, body: str | None
) -> None:
    """gzip, x-gzip and deflate answers (one or several gzip members) are decoded and used."""
    import json
    import zlib

    raw = json.dumps(keys.jwks("rsa")).encode()
    if body == "zlib":
        server.body = zlib.compress(raw)
    elif body == "two members":
        server.body = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    else:
        server.body = gzip.compress(raw)
    server.content_encoding = encoding
    mw, _ = make(app, server)
    assert await status(mw, mint(keys.rsa)) == (200, None)


@pytest.mark.parametrize(
    ("encoding", "body", "reason"),
    [
        ("br", b"\x0b\x02\x80{}\x03", "ValueError: content-encoding 'br' not supported"),
        ("gzip, gzip", b"", "ValueError: content-encoding 'gzip, gzip' not supported"),
        ("gzip", None, "ValueError: truncated compressed body"),
        (
            "gzip",
            b"not gzip at all",
            "ValueError: corrupt compressed body",
        ),
    ],
)
async def test_bad_encodings_are_refused(
    app: RecordingApp,
    keys: Keys,
    server: JWKSServer,
    encoding: str,
    body: bytes | None,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Codings not asked for, truncated and corrupt compressed bodies are refused, never a 500."""
    import json

    server.body = body if body is not None else gzip.compress(json.dumps(keys.jwks()).encode())[:-9]
    server.content_encoding = encoding
    mw, _ = make(app, server)
    with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
        assert await status(mw, mint(keys.rsa)) == (503, "jwt.keys_unavailable")
    assert messages(caplog) == [f"JWKS fetch failed: {reason}"]


async def test_discovery_naming_a_non_http_jwks_uri_is_refused(
    app: RecordingApp, keys: Keys, server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A discovery document pointing jwks_uri at file:// (or any non-http scheme) is refused."""
    server.jwks_uri = "file:///etc/passwd"
    mw, _ = make(app, server, discovery=True)
    with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
        assert await status(mw, mint(keys.rsa, iss=server.url)) == (503, "jwt.keys_unavailable")
    assert messages(caplog) == ["JWKS fetch failed: ValueError: key URL must be http(s)"]


# -- the unknown-kid cooldown counts unknown-kid refetches only ------------------------------


async def test_key_rotated_right_after_start_up_is_accepted(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """A kid published a second after the start-up fetch is fetched by the first token naming it."""
    mw, mono = make(app, server)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    server.jwks = keys.jwks("rsa", "ec")
    mono.now += 1
    assert await status(mw, mint(keys.ec, "ES256")) == (200, None)
    assert server.jwks_hits == 2


async def test_key_rotated_right_after_a_scheduled_refresh_is_accepted(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """A kid published a second after a background refresh is fetched by the first token naming it."""
    mw, mono = make(app, server)
    assert mw._remote is not None
    assert await status(mw, mint(keys.rsa)) == (200, None)
    mono.now += 500  # the last fifth of the 600 s TTL: a background refresh starts
    assert await status(mw, mint(keys.rsa, sub="bob")) == (200, None)
    assert mw._remote._inflight is not None
    await mw._remote._inflight
    assert server.jwks_hits == 2
    server.jwks = keys.jwks("rsa", "ec")
    mono.now += 1
    assert await status(mw, mint(keys.ec, "ES256")) == (200, None)
    assert server.jwks_hits == 3


async def test_unknown_kid_refetches_stay_bounded(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """After an unknown-kid refetch, further unknown kids wait min_refetch (30 s) for the next."""
    mw, mono = make(app, server)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    bogus = [mint(keys.attacker, header={"kid": f"bogus-{i}"}) for i in range(4)]
    assert await status(mw, bogus[0]) == (401, "jwt.unknown_key")
    assert server.jwks_hits == 2
    mono.now += 29.9
    assert await status(mw, bogus[1]) == (401, "jwt.unknown_key")
    assert server.jwks_hits == 2
    mono.now += 0.1
    assert await status(mw, bogus[2]) == (401, "jwt.unknown_key")
    assert server.jwks_hits == 3
    assert await status(mw, bogus[3]) == (401, "jwt.unknown_key")
    assert server.jwks_hits == 3
