"""HS256 tokens for the example apps."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import OctKey

SECRET = "development-only-secret-32-bytes!!"


def token(audience: str, scopes: str = "", sub: str = "alice", secret: str = SECRET) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://issuer.example",
        "aud": audience,
        "sub": sub,
        "iat": now,
        "exp": now + 300,
        "scope": scopes,
    }
    return jwt.encode(
        {"alg": "HS256"}, claims, OctKey.import_key(secret.encode()), algorithms=["HS256"]
    )


def bearer(audience: str, scopes: str = "", sub: str = "alice") -> dict[str, str]:
    return {"authorization": f"Bearer {token(audience, scopes, sub)}"}
