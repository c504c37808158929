"""Tokens without a ``kid`` are tried only against the few keys that can match, or refused."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from asgi_guard import JWTAuthMiddleware
from asgi_guard.jwt import tokens

from .conftest import RecordingApp
from .jwt_helpers import AUDIENCE, ISSUER, NOW, JWKSServer, mint
from .test_jwt_remote import status

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ec_keys() -> list[ECKey]:
    """401 EC P-256 keys with kids: their public JWKS fits the 64 KiB cap."""
    return [ECKey.generate_key("P-256", parameters={"kid": f"ec-{i}"}) for i in range(401)]


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture
def tries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The algorithm of each signature check made, in order (a spy on the real checks)."""
    made: list[str] = []
    for alg in ("ES256", "RS256"):
        model = tokens._ALG_MODELS[alg]
        original = model.verify

        def verify(*args: Any, _alg: str = alg, _original: Any = original) -> Any:
            made.append(_alg)
            return _original(*args)

        monkeypatch.setattr(model, "verify", verify)
    return made


def public(keys: list[Any]) -> dict[str, Any]:
    """The public JWKS of ``keys``, each with its own kid or none (KeySet would add some)."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def middleware(app: RecordingApp, jwks: dict[str, Any], **options: Any) -> JWTAuthMiddleware:
    options.setdefault("algorithms", ["ES256", "RS256"])
    return JWTAuthMiddleware(
        app, jwks=jwks, issuer=ISSUER, audience=AUDIENCE, clock=lambda: NOW, **options
    )


def kidless(key: Any, alg: str = "ES256") -> str:
    """A token signed by ``key`` whose header names no kid."""
    bare = type(key).import_key(key.as_dict(private=True))
    bare_dict = {k: v for k, v in bare.as_dict(private=True).items() if k != "kid"}
    return mint(type(key).import_key(bare_dict), alg)


async def test_bogus_kidless_token_against_401_keys_is_refused_unchecked(
    app: RecordingApp, ec_keys: list[ECKey], tries: list[str]
) -> None:
    """With 401 keys that fit, a kid-less token is refused as jwt.unknown_key with no check."""
    mw = middleware(app, public(ec_keys), cache_size=0)
    stranger = ECKey.generate_key("P-256")
    assert await status(mw, kidless(stranger)) == (401, "jwt.unknown_key")
    assert await status(mw, kidless(ec_keys[7])) == (401, "jwt.unknown_key")
    assert tries == []
    assert app.calls == 0


async def test_remote_401_key_set_within_the_cap(
    app: RecordingApp, ec_keys: list[ECKey], tries: list[str]
) -> None:
    """The same from a served 401-key JWKS (under 64 KiB); named tokens still verify with one check."""
    server = JWKSServer()
    try:
        server.jwks = public(ec_keys)
        mw = JWTAuthMiddleware(
            app,
            jwks_url=server.url + "/jwks",
            issuer=ISSUER,
            audience=AUDIENCE,
            algorithms=["ES256"],
            clock=lambda: NOW,
        )
        assert await status(mw, kidless(ECKey.generate_key("P-256"))) == (401, "jwt.unknown_key")
        assert tries == []
        assert await status(mw, mint(ec_keys[200], "ES256")) == (200, None)
        assert tries == ["ES256"]
    finally:
        server.close()


async def test_kidless_token_with_a_small_set_is_verified(
    app: RecordingApp, ec_keys: list[ECKey], tries: list[str]
) -> None:
    """A kid-less token is tried against a set of at most 4 fitting keys (issuers omitting kid)."""
    mw = middleware(app, public(ec_keys[:4]), cache_size=0)
    assert await status(mw, kidless(ec_keys[3])) == (200, None)
    assert tries == ["ES256"] * 4
    tries.clear()
    assert await status(mw, kidless(ECKey.generate_key("P-256"))) == (
        401,
        "jwt.invalid_signature",
    )
    assert tries == ["ES256"] * 4


async def test_five_fitting_named_keys_refuse_a_kidless_token(
    app: RecordingApp, ec_keys: list[ECKey], tries: list[str]
) -> None:
    """Past 4 fitting keys, even an honest kid-less token is refused: it must name its key."""
    mw = middleware(app, public(ec_keys[:5]))
    assert await status(mw, kidless(ec_keys[0])) == (401, "jwt.unknown_key")
    assert tries == []


async def test_only_the_algorithm_family_is_tried(
    app: RecordingApp, ec_keys: list[ECKey], rsa_key: RSAKey, tries: list[str]
) -> None:
    """Keys of another family never count or get tried: 100 RSA keys beside one EC key."""
    one = public([rsa_key])["keys"][0]
    rsa = [{**one, "kid": f"rsa-{i}"} for i in range(100)]
    mw = middleware(app, {"keys": rsa + public(ec_keys[:1])["keys"]})
    assert await status(mw, kidless(ec_keys[0])) == (200, None)
    assert tries == ["ES256"]


async def test_kidless_keys_are_tried_first_and_alone(
    app: RecordingApp, ec_keys: list[ECKey], tries: list[str]
) -> None:
    """With keys that have no kid, a kid-less token is tried against those only."""
    unnamed = ECKey.generate_key("P-256")
    mw = middleware(app, {"keys": public(ec_keys[:50])["keys"] + public([unnamed])["keys"]})
    assert await status(mw, mint(unnamed, "ES256")) == (200, None)
    assert tries == ["ES256"]
    tries.clear()
    assert await status(mw, kidless(ec_keys[1])) == (401, "jwt.invalid_signature")
    assert tries == ["ES256"]


async def test_kidless_token_with_no_fitting_key_is_a_bad_algorithm(
    app: RecordingApp, ec_keys: list[ECKey], rsa_key: RSAKey
) -> None:
    """No key of the token's family at all stays jwt.invalid_algorithm."""
    mw = middleware(app, public([rsa_key]))
    assert await status(mw, kidless(ec_keys[0])) == (401, "jwt.invalid_algorithm")
