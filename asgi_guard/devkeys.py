"""Development keys and tokens: never for production (the private key sits in a file)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey

__all__ = ["generate_keys", "mint_secret_token", "mint_token", "public_jwks"]

DEV_ISSUER = "asgi-guard-dev"
DEV_AUDIENCE = "asgi-guard-dev-api"


def generate_keys() -> dict[str, Any]:
    """A private JWKS with one fresh ES256 (P-256) signing key."""
    key = ECKey.generate_key(
        "P-256", parameters={"kid": f"dev-{uuid.uuid4().hex[:8]}", "alg": "ES256", "use": "sig"}
    )
    return {"keys": [key.as_dict(private=True)]}


def public_jwks(private: dict[str, Any]) -> dict[str, Any]:
    """The public half of a JWKS, safe to publish."""
    return dict(KeySet.import_key_set(private).as_dict(private=False))  # type: ignore[arg-type]


def _claims(
    sub: str,
    scopes: Iterable[str],
    ttl: int,
    issuer: str | None,
    audience: str | None,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "scope": " ".join(scopes),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return {**claims, **(extra or {})}


def mint_token(
    private: dict[str, Any],
    *,
    sub: str,
    scopes: Iterable[str] = (),
    ttl: int = 3600,
    issuer: str | None = DEV_ISSUER,
    audience: str | None = DEV_AUDIENCE,
    extra: dict[str, Any] | None = None,
) -> str:
    """An ES256 access token (``typ: at+jwt``, RFC 9068) signed with the JWKS's first key.

    Raises ValueError when that key is not a private EC key.
    """
    key = ECKey.import_key(private["keys"][0])
    if not key.is_private:
        raise ValueError("the key set holds a public key only")
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    claims = _claims(sub, scopes, ttl, issuer, audience, extra)
    return jwt.encode(header, claims, key, algorithms=["ES256"])


def mint_secret_token(
    secret: str,
    *,
    sub: str,
    scopes: Iterable[str] = (),
    ttl: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """An HS256 access token (``typ: at+jwt``) for a ``jwt.secret`` config (RFC 7518 section 3.2)."""
    key = OctKey.import_key(secret.encode())
    claims = _claims(sub, scopes, ttl, issuer, audience, extra)
    return jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, key, algorithms=["HS256"])
