"""HS256 tokens for the example apps."""

from __future__ import annotations

import time
from typing import Any

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


def get_orders_policy(audience: str, limit: str) -> dict[str, Any]:
    """A guard config whose only rule is for ``GET /orders``: a scope, a limit, a query schema
    (no parameters). Requests the app serves with that handler must all be held to it."""
    return {
        "jwt": {"secret": SECRET, "audience": audience},
        "rate_limit": {"limit": "100/minute"},
        "validation": {},
        "routes": [
            {
                "path": "GET /orders",
                "scopes": ["orders:read"],
                "limit": limit,
                "query": {"type": "object", "additionalProperties": False},
            }
        ],
    }
