"""Per-caller policies: a claim-chosen or callable rate limit beside a static one, and a
multi-issuer JWT layer beside a single-issuer one."""

from __future__ import annotations

from typing import Any

from asgi_guard import AuthenticatedUser, JWTAuthMiddleware, RateLimitMiddleware
from asgi_guard._asgi import Scope as ASGIScope

from .groups import BIG_LIMIT, raw_app, scope_factory
from .harness import Case, Group, Scope

PLANS = {"claim": "plan", "values": {"free": "1000/minute", "pro": BIG_LIMIT}, "default": "1/hour"}


def _as_user(claims: dict[str, Any]) -> Any:
    """Fresh scopes carrying a verified user (as the JWT layer leaves them)."""
    make = scope_factory()
    user = AuthenticatedUser(claims["sub"], frozenset(), claims)

    def scope() -> Scope:
        made = make()
        made["user"] = user
        made["auth"] = claims
        return made

    return scope


def ratelimit_groups() -> Group:
    pro = _as_user({"sub": "alice", "plan": "pro"})

    def sync_limit(scope: ASGIScope) -> str:
        return BIG_LIMIT

    async def async_limit(scope: ASGIScope) -> str:
        return BIG_LIMIT

    def cost(scope: ASGIScope) -> int:
        return 1

    return Group(
        "layer:percaller-ratelimit",
        [
            Case("raw ASGI app", raw_app, pro),
            Case(
                "RateLimit static limit (key sub)",
                RateLimitMiddleware(raw_app, limit=BIG_LIMIT, key="sub"),
                pro,
            ),
            Case(
                "RateLimit limit chosen by claim (key sub)",
                RateLimitMiddleware(raw_app, limit=PLANS, key="sub"),
                pro,
            ),
            Case(
                "RateLimit sync callable limit",
                RateLimitMiddleware(raw_app, limit=sync_limit, key="sub"),
                pro,
            ),
            Case(
                "RateLimit async callable limit",
                RateLimitMiddleware(raw_app, limit=async_limit, key="sub"),
                pro,
            ),
            Case(
                "RateLimit static limit + cost callable",
                RateLimitMiddleware(raw_app, limit=BIG_LIMIT, cost=cost, key="sub"),
                pro,
            ),
        ],
        "The same limit, static or chosen per caller, for a verified caller on memory://.",
    )


def jwt_groups() -> Group:
    from joserfc import jwt
    from joserfc.jwk import ECKey, KeySet

    from .groups import jwt_material

    m = jwt_material()
    ec = m["ec"]
    jwks = KeySet([ec]).as_dict(private=False)
    claims = dict(m["claims"])
    token = m["es256"]

    def others(n: int) -> list[dict[str, Any]]:
        return [
            {
                "issuer": f"https://tenant-{i}.example",
                "audience": "api",
                "jwks": KeySet([ECKey.generate_key("P-256", parameters={"kid": "e1"})]).as_dict(
                    private=False
                ),
            }
            for i in range(n)
        ]

    ours = {"issuer": claims["iss"], "audience": "api", "jwks": jwks}
    single = {"issuer": claims["iss"], "audience": "api", "jwks": jwks}
    headers = [(b"authorization", b"Bearer " + token.encode())]
    get = scope_factory(headers)
    assert jwt.decode(token, ec).claims["iss"] == claims["iss"]
    cases = [Case("raw ASGI app", raw_app, get)]
    for cached, size in (("cached", 10_000), ("uncached", 0)):
        cases += [
            Case(
                f"JWTAuth single issuer, {cached} ES256",
                JWTAuthMiddleware(raw_app, cache_size=size, **single),
                get,
            ),
            Case(
                f"JWTAuth 2 issuers, {cached} ES256",
                JWTAuthMiddleware(raw_app, cache_size=size, issuers=[*others(1), ours]),
                get,
            ),
            Case(
                f"JWTAuth 20 issuers, {cached} ES256",
                JWTAuthMiddleware(raw_app, cache_size=size, issuers=[*others(19), ours]),
                get,
            ),
        ]
    return Group(
        "layer:percaller-jwt",
        cases,
        "One issuer's token, verified by a single-issuer layer and by layers listing several.",
    )


def build() -> list[Group]:
    return [ratelimit_groups(), jwt_groups()]
