"""Remote JWKS and OIDC discovery against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from asgi_guard import JWTAuthMiddleware

from .conftest import RecordingApp, client_for
from .jwt_helpers import AUDIENCE, ISSUER, NOW, JWKSServer, Keys, mint

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture
def server(keys: Keys) -> Iterator[JWKSServer]:
    srv = JWKSServer()
    srv.jwks = keys.jwks("rsa", "ec")
    yield srv
    srv.close()


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    app: RecordingApp, server: JWKSServer, **options: Any
) -> tuple[JWTAuthMiddleware, Monotonic]:
    options.setdefault("jwks_url", server.url + "/jwks")
    mw = JWTAuthMiddleware(app, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW, **options)
    assert mw._remote is not None
    mono = Monotonic()
    mw._remote.clock = mono
    return mw, mono


async def status(mw: Any, token: str) -> tuple[int, str | None]:
    async with client_for(mw) as client:
        response = await client.get("/", headers={"authorization": f"Bearer {token}"})
    code = orjson.loads(response.content)["code"] if response.status_code != 200 else None
    return response.status_code, code


async def test_fetches_once_and_caches(app: RecordingApp, keys: Keys, server: JWKSServer) -> None:
    """The first request fetches the JWKS; later ones (and other tokens) reuse it."""
    mw, _ = make(app, server)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    assert await status(mw, mint(keys.ec, "ES256")) == (200, None)
    assert await status(mw, mint(keys.rsa, sub="bob")) == (200, None)
    assert server.jwks_hits == 1


async def test_discovery(app: RecordingApp, keys: Keys, server: JWKSServer) -> None:
    """discovery=True reads {issuer}/.well-known/openid-configuration for jwks_uri."""
    mw = JWTAuthMiddleware(
        app, issuer=server.url, audience=AUDIENCE, discovery=True, clock=lambda: NOW
    )
    assert await status(mw, mint(keys.rsa, iss=server.url)) == (200, None)
    assert server.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}


async def test_random_kid_flood_causes_one_refetch(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """Concurrent tokens with random kids share one refetch; more within 30 s cause none."""
    mw, mono = make(app, server)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    mono.now += 31
    tokens = [mint(keys.attacker, header={"kid": f"random-{i}"}) for i in range(40)]
    results = await asyncio.gather(*(status(mw, t) for t in tokens))
    assert set(results) == {(401, "jwt.unknown_key")}
    assert server.jwks_hits == 2
    mono.now += 10
    assert await status(mw, mint(keys.attacker, header={"kid": "again"})) == (
        401,
        "jwt.unknown_key",
    )
    assert server.jwks_hits == 2


async def test_key_rotation(app: RecordingApp, keys: Keys, server: JWKSServer) -> None:
    """A new kid is accepted after one refetch; a removed key's cached tokens are dropped."""
    mw, mono = make(app, server)
    old_token = mint(keys.rsa)
    assert await status(mw, old_token) == (200, None)
    server.jwks = keys.jwks("ed")
    mono.now += 31
    assert await status(mw, mint(keys.ed, "EdDSA")) == (200, None)
    assert server.jwks_hits == 2
    assert len(mw._cache) == 1  # the rsa-1 verification was forgotten with its key
    assert await status(mw, old_token) == (401, "jwt.unknown_key")


async def test_a_kid_given_new_key_material_forgets_its_cached_tokens(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """A key replaced under the same kid (a compromised key swapped out) drops the tokens the
    old key verified, as a removed kid does: they were served from the cache for 5 minutes."""
    mw, mono = make(app, server)
    old_token = mint(keys.rsa)
    assert await status(mw, old_token) == (200, None)
    server.jwks = keys.jwks("attacker", "ed")  # "rsa-1" is now another RSA key
    mono.now += 31
    assert await status(mw, mint(keys.ed, "EdDSA")) == (200, None)  # an unknown kid: refetch
    assert server.jwks_hits == 2
    assert await status(mw, old_token) == (401, "jwt.invalid_signature")
    assert await status(mw, mint(keys.attacker)) == (200, None)


async def test_server_down_warm_cache_keeps_serving(
    app: RecordingApp, keys: Keys, server: JWKSServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Fetch failures keep the last good key set (stale-if-error), with a warning."""
    mw, mono = make(app, server, cache_size=0)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    server.status = 500
    mono.now += 600  # past expiry: a refresh is attempted and fails
    with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
        assert await status(mw, mint(keys.rsa)) == (200, None)
        await asyncio.sleep(0.2)
    assert server.jwks_hits == 2
    assert await status(mw, mint(keys.rsa)) == (200, None)
    assert [r.getMessage() for r in caplog.records if r.name == "asgi_guard.jwt"] == [
        "JWKS fetch failed: ValueError: status 500"
    ]
    mono.now += 3700  # beyond the stale bound: keys are dropped, requests get 503
    assert await status(mw, mint(keys.rsa)) == (503, "jwt.keys_unavailable")


async def test_server_down_cold_is_503_and_recovers(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """With no key set at all: 503 problem+json with Retry-After, never 500; then recovery."""
    server.status = 503
    mw, mono = make(app, server)
    async with client_for(mw) as client:
        response = await client.get("/", headers={"authorization": f"Bearer {mint(keys.rsa)}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert orjson.loads(response.content)["code"] == "jwt.keys_unavailable"
    assert await status(mw, mint(keys.rsa)) == (503, "jwt.keys_unavailable")
    assert server.jwks_hits == 1  # no retry storm
    server.status = 200
    mono.now += 6
    assert await status(mw, mint(keys.rsa)) == (200, None)


async def test_connection_refused_cold(app: RecordingApp, keys: Keys) -> None:
    """A JWKS URL where nothing listens gives 503, not 500."""
    srv = JWKSServer()
    url = srv.url
    srv.close()
    mw = JWTAuthMiddleware(
        app, jwks_url=url + "/jwks", audience=AUDIENCE, issuer=ISSUER, clock=lambda: NOW
    )
    assert await status(mw, mint(keys.rsa)) == (503, "jwt.keys_unavailable")


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda s: setattr(s, "body", b"{" + b" " * 70000 + b"}"), "response over 64 KiB"),
        (lambda s: setattr(s, "body", b"not json"), "JSONDecodeError"),
        (
            lambda s: setattr(s, "jwks", {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            "no usable signing key",
        ),
        (lambda s: setattr(s, "redirect_to", "http://127.0.0.1:1/jwks"), "status 302"),
    ],
)
async def test_refused_responses(
    app: RecordingApp,
    keys: Keys,
    server: JWKSServer,
    setup: Any,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Oversized, non-JSON, keyless and redirecting responses are refused."""
    setup(server)
    mw, _ = make(app, server)
    with caplog.at_level(logging.WARNING, "asgi_guard.jwt"):
        assert await status(mw, mint(keys.rsa)) == (503, "jwt.keys_unavailable")
    [record] = [r for r in caplog.records if r.name == "asgi_guard.jwt"]
    assert reason in record.getMessage()


async def test_cache_control_sets_ttl_and_refresh_is_in_background(
    app: RecordingApp, keys: Keys, server: JWKSServer
) -> None:
    """max-age is clamped to 5-60 minutes; a request near expiry triggers a background refresh."""
    server.cache_control = "public, max-age=10"
    mw, mono = make(app, server, cache_size=0)
    assert await status(mw, mint(keys.rsa)) == (200, None)
    assert mw._remote is not None
    assert mw._remote._ttl == 300
    mono.now += 250  # within the last fifth of 300 s
    assert await status(mw, mint(keys.rsa)) == (200, None)
    await asyncio.sleep(0.2)
    assert server.jwks_hits == 2
    server.cache_control = "max-age=999999"
    mono.now += 300
    await status(mw, mint(keys.rsa))
    await asyncio.sleep(0.2)
    assert mw._remote._ttl == 3600


@pytest.mark.parametrize(
    ("cache_control", "ttl"),
    [
        (None, 600.0),
        ("", 600.0),
        ("max-age=abc", 600.0),
        ("max-age=-5", 600.0),
        ("s-maxage=9999", 600.0),
        ("no-cache, MAX-AGE=120", 300.0),
        ("max-age=" + "9" * 5000, 600.0),
        ("public, max-age=900, must-revalidate", 900.0),
        ("max-age=86400", 3600.0),
    ],
)
def test_cache_control_parsing(cache_control: str | None, ttl: float) -> None:
    """max-age is read only from well-formed values and clamped to 5-60 minutes; garbage is the default."""
    from asgi_guard.jwt.keys import _ttl

    assert _ttl(cache_control) == ttl
