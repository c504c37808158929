"""JWTAuthMiddleware with real signed tokens: keys, claims, scopes, RFC 6750 answers, attacks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.authentication import SimpleUser

from asgi_guard import AuthenticatedUser, ConfigurationError, JWTAuthMiddleware, RequireScopes
from asgi_guard.jwt.keys import load_jwks
from asgi_guard.jwt.user import ANONYMOUS

from .conftest import Channel, RecordingApp, client_for, http_scope, run_websocket
from .jwt_helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    Keys,
    b64,
    b64json,
    claims,
    forge_hmac,
    mint,
    unsigned,
)

pytestmark = pytest.mark.anyio

CHALLENGE = 'Bearer realm="api"'


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(app: RecordingApp, keys: Keys, clock: Clock, **options: Any) -> JWTAuthMiddleware:
    options.setdefault("issuer", ISSUER)
    options.setdefault("audience", AUDIENCE)
    if "secret" not in options and "jwks_url" not in options and "discovery" not in options:
        options.setdefault("jwks", keys.jwks())
    return JWTAuthMiddleware(app, clock=clock, **options)


async def call(
    mw: Any,
    token: str | None = None,
    path: str = "/orders",
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
) -> Any:
    hdrs = list(headers or [])
    if token is not None:
        hdrs.append(("authorization", f"Bearer {token}"))
    async with client_for(mw) as client:
        return await client.request(method, path, headers=hdrs)


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = orjson.loads(response.content)
    assert body["status"] == response.status_code
    return body


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "alg"), [("rsa", "RS256"), ("ec", "ES256"), ("ed", "EdDSA")])
async def test_valid_token_reaches_app_with_user(
    app: RecordingApp, keys: Keys, clock: Clock, name: str, alg: str
) -> None:
    """A valid token: the app runs once and sees scope['auth'] and scope['user']."""
    mw = make(app, keys, clock)
    response = await call(mw, mint(getattr(keys, name), alg))
    assert response.status_code == 200
    assert app.calls == 1
    scope = app.scopes[0]
    assert scope["auth"]["sub"] == "alice"
    user = scope["user"]
    assert (user.sub, user.scopes, user.is_authenticated, user.display_name, user.identity) == (
        "alice",
        frozenset({"orders:read", "orders:write"}),
        True,
        "alice",
        "alice",
    )
    assert user.claims is scope["auth"]


async def test_hmac_secret(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """With secret=, HS256 tokens verify and RS256 ones are refused."""
    mw = make(app, keys, clock, secret=keys.secret)
    assert (await call(mw, mint(keys.hmac, "HS256"))).status_code == 200
    response = await call(mw, mint(keys.rsa, "RS256"))
    assert (response.status_code, problem(response)["code"]) == (401, "jwt.invalid_algorithm")


async def test_jwks_from_file(tmp_path: Any, app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """jwks= may be a path to a JWKS JSON file."""
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks("rsa")))
    assert (await call(make(app, keys, clock, jwks=str(path)), mint(keys.rsa))).status_code == 200


# --- RFC 6750 answers ---------------------------------------------------------------------------


async def test_missing_token_is_401_without_error(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """No credentials: 401, a bare Bearer challenge, jwt.missing."""
    for headers in ([], [("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")]):
        response = await call(make(app, keys, clock), headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == CHALLENGE
        assert problem(response) == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "An access token is required.",
            "code": "jwt.missing",
        }
    assert app.calls == 0


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        'Bearer a"b',
        "Bearer a,b",
        "Bearer ab=c",
        "bearer \x01abc",
        "Bearer é",
    ],
)
async def test_malformed_authorization_is_400(
    app: RecordingApp, keys: Keys, clock: Clock, value: str
) -> None:
    """Empty, several, or illegal-character tokens: 400 invalid_request."""
    async with client_for(make(app, keys, clock)) as client:
        response = await client.get("/orders", headers=[(b"authorization", value.encode("utf-8"))])
    assert response.status_code == 400
    assert response.headers["www-authenticate"] == (
        'Bearer realm="api", error="invalid_request", error_description="The Authorization header is malformed."'
    )
    assert problem(response)["code"] == "jwt.invalid_request"
    assert app.calls == 0


async def test_two_authorization_headers_is_400(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """Two Authorization headers are ambiguous: 400, even if both are valid."""
    token = mint(keys.rsa)
    response = await call(
        make(app, keys, clock),
        headers=[("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")],
    )
    assert (response.status_code, problem(response)["code"]) == (400, "jwt.invalid_request")


async def test_scheme_is_case_insensitive(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """'bearer' and 'BEARER' are the same scheme (RFC 9110 section 11.1)."""
    token = mint(keys.rsa)
    for scheme in ("bearer", "BEARER", "BeArEr"):
        assert (
            await call(make(app, keys, clock), headers=[("authorization", f"{scheme} {token}")])
        ).status_code == 200


async def test_token_in_query_or_cookie_is_ignored(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """Tokens are read from the Authorization header only."""
    token = mint(keys.rsa)
    response = await call(
        make(app, keys, clock),
        path=f"/orders?access_token={token}",
        headers=[("cookie", f"access_token={token}")],
    )
    assert (response.status_code, problem(response)["code"]) == (401, "jwt.missing")


def invalid_token_header(description: str) -> str:
    return f'Bearer realm="api", error="invalid_token", error_description="{description}"'


@pytest.mark.parametrize(
    ("overrides", "code", "description"),
    [
        ({"exp": int(NOW) - 31}, "jwt.expired", "The access token expired."),
        ({"exp": ...}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"exp": "1900000000"}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"exp": True}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"exp": None}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"nbf": int(NOW) + 31}, "jwt.not_yet_valid", "The access token is not valid yet."),
        ({"nbf": "soon"}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"iat": int(NOW) + 31}, "jwt.not_yet_valid", "The access token is not valid yet."),
        ({"iat": [1]}, "jwt.invalid_claims", "The access token's claims are malformed."),
        (
            {"iss": "https://evil.example"},
            "jwt.invalid_issuer",
            "The access token's issuer is not accepted.",
        ),
        ({"iss": [ISSUER]}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"iss": ...}, "jwt.invalid_issuer", "The access token's issuer is not accepted."),
        (
            {"aud": "other-api"},
            "jwt.invalid_audience",
            "The access token is not meant for this API.",
        ),
        ({"aud": ...}, "jwt.invalid_audience", "The access token is not meant for this API."),
        (
            {"aud": {"x": AUDIENCE}},
            "jwt.invalid_claims",
            "The access token's claims are malformed.",
        ),
        ({"aud": [AUDIENCE, 3]}, "jwt.invalid_claims", "The access token's claims are malformed."),
        ({"sub": 42}, "jwt.invalid_claims", "The access token's claims are malformed."),
        (
            {"scope": ["orders:read"], "scp": 5},
            "jwt.invalid_claims",
            "The access token's claims are malformed.",
        ),
    ],
)
async def test_invalid_claims(
    app: RecordingApp,
    keys: Keys,
    clock: Clock,
    overrides: dict[str, Any],
    code: str,
    description: str,
) -> None:
    """Expired, premature, wrong issuer/audience and wrongly typed claims: 401 invalid_token."""
    response = await call(make(app, keys, clock), mint(keys.rsa, **overrides))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == invalid_token_header(description)
    assert problem(response)["code"] == code
    assert app.calls == 0


async def test_leeway_boundaries(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """exp is accepted until exp + leeway (exclusive); nbf from nbf - leeway."""
    mw = make(app, keys, clock, leeway=10, cache_size=0)
    token = mint(keys.rsa, exp=int(NOW) + 100, nbf=int(NOW) + 5)
    assert (await call(mw, token)).status_code == 200
    clock.now = NOW + 109.9
    assert (await call(mw, token)).status_code == 200
    clock.now = NOW + 110
    assert problem(await call(mw, token))["code"] == "jwt.expired"
    clock.now = NOW - 5.1
    assert problem(await call(mw, token))["code"] == "jwt.not_yet_valid"


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"exp": 10**400}, 200, None),
        ({"exp": -(10**400)}, 401, "jwt.expired"),
        ({"nbf": 10**400}, 401, "jwt.not_yet_valid"),
        ({"iat": 10**400}, 401, "jwt.not_yet_valid"),
        ({"nbf": -(10**400), "iat": -(10**400)}, 200, None),
        ({"exp": 1.7976931348623157e308}, 200, None),
    ],
)
async def test_huge_time_claims(
    app: RecordingApp,
    keys: Keys,
    clock: Clock,
    overrides: dict[str, Any],
    status: int,
    code: str | None,
) -> None:
    """Signed times far beyond a float's range are compared exactly, first and from the cache:
    never an OverflowError."""
    mw = make(app, keys, clock, leeway=1.5)
    token = mint(keys.rsa, **overrides)
    for _ in range(2):
        response = await call(mw, token)
        assert response.status_code == status
        if code is not None:
            assert problem(response)["code"] == code
    assert app.calls == (2 if status == 200 else 0)


async def test_audience_list_and_several_accepted(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """A token's aud list needs one accepted value; several values may be accepted."""
    mw = make(app, keys, clock, audience=["a", "b"])
    assert (await call(mw, mint(keys.rsa, aud=["x", "b"]))).status_code == 200
    assert (await call(mw, mint(keys.rsa, aud="a"))).status_code == 200
    assert (await call(mw, mint(keys.rsa, aud=["x", "y"]))).status_code == 401


async def test_token_type(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """token_type='at+jwt' (RFC 9068) requires that typ; 'application/' prefix and case are ignored."""
    mw = make(app, keys, clock, token_type="at+jwt")
    assert (await call(mw, mint(keys.rsa, header={"typ": "at+jwt"}))).status_code == 200
    assert (await call(mw, mint(keys.rsa, header={"typ": "application/AT+JWT"}))).status_code == 200
    response = await call(mw, mint(keys.rsa, header={"typ": "JWT"}))
    assert problem(response)["code"] == "jwt.invalid_type"


async def test_unknown_crit_invalidates(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """A crit header naming anything this layer does not understand invalidates the token."""
    crit: object  # each a different JSON shape, most of them invalid on purpose
    for crit in (["exp"], [], "exp", ["b64"], [["b64"]], [{}], [1], [None], {"b64": 1}):
        token = forge_hmac(
            keys.secret.encode(), {"alg": "HS256", "crit": crit, "exp": 1, "b64": True}, claims()
        )
        response = await call(make(app, keys, clock, secret=keys.secret), token)
        assert (response.status_code, problem(response)["code"]) == (401, "jwt.invalid")
    # Checked before any signature: an unsigned token with an unhashable crit item is a 401.
    token = unsigned({"alg": "RS256", "crit": [["x"], {"y": 1}]}, claims(), b"sig")
    response = await call(make(app, keys, clock), token)
    assert (response.status_code, problem(response)["code"]) == (401, "jwt.invalid")
    assert app.calls == 0


async def test_error_description_never_echoes_input(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """A kid full of CR/LF and quotes never reaches a header or body."""
    evil = 'x"\r\nSet-Cookie: a=b'
    token = unsigned({"alg": "RS256", "kid": evil}, claims(), b"sig")
    response = await call(make(app, keys, clock), token)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.text
    assert "set-cookie" not in response.headers
    assert response.headers["www-authenticate"] == invalid_token_header(
        "The access token was signed by an unknown key."
    )


# --- attacks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_refused(app: RecordingApp, keys: Keys, clock: Clock, alg: str) -> None:
    """alg none in any spelling is refused, with or without a signature."""
    for sig in (b"", b"x"):
        response = await call(
            make(app, keys, clock),
            unsigned({"alg": alg}, claims(), sig)
            if sig
            else f"{b64json({'alg': alg})}.{b64json(claims())}.",
        )
        assert response.status_code in (400, 401)
    assert app.calls == 0


@pytest.mark.parametrize("alg", ["none", "None"])
def test_alg_none_refused_at_construction(keys: Keys, alg: str) -> None:
    """'none' can never be configured."""
    with pytest.raises(ConfigurationError, match=r"^algorithms: "):
        JWTAuthMiddleware(RecordingApp(), jwks=keys.jwks(), algorithms=["RS256", alg])


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
async def test_hs256_with_rsa_public_key_refused(
    app: RecordingApp, keys: Keys, clock: Clock, encoding: str
) -> None:
    """Key confusion: an HS256 token 'signed' with the RSA public key in any encoding fails."""
    public = keys.rsa.get_op_key("verify")
    secret = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(keys.rsa.as_dict(private=False)).encode(),
    }[encoding]
    token = forge_hmac(secret, {"alg": "HS256", "kid": "rsa-1"}, claims())
    mw = make(app, keys, clock, algorithms=["RS256", "ES256"])
    assert problem(await call(mw, token))["code"] == "jwt.invalid_algorithm"
    with pytest.raises(ConfigurationError, match=r"^algorithms: HMAC"):
        make(app, keys, clock, algorithms=["RS256", "HS256"])
    assert app.calls == 0


async def test_es256_zero_signature_refused(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """An all-zero ECDSA signature (r = s = 0) never verifies."""
    token = unsigned({"alg": "ES256", "kid": "ec-1"}, claims(), b"\x00" * 64)
    response = await call(make(app, keys, clock), token)
    assert problem(response)["code"] == "jwt.invalid_signature"


async def test_alg_kid_mismatch_refused(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """A token claiming RS256 with the kid of an EC key is refused."""
    token = unsigned({"alg": "RS256", "kid": "ec-1"}, claims(), b"s" * 256)
    assert problem(await call(make(app, keys, clock), token))["code"] == "jwt.invalid_algorithm"


async def test_attacker_key_with_same_kid_fails_signature(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """A token signed by another key that reuses our kid fails the signature check."""
    assert (
        problem(await call(make(app, keys, clock), mint(keys.attacker)))["code"]
        == "jwt.invalid_signature"
    )


async def test_embedded_jwk_and_jku_are_ignored(
    app: RecordingApp, keys: Keys, clock: Clock, jwks_server: Any
) -> None:
    """jwk/jku/x5u/x5c in the token header are never used: no fetch, signature still checked."""
    jwks_server.jwks = keys.jwks("attacker")
    header = {
        "jwk": keys.attacker.as_dict(private=False),
        "jku": jwks_server.url + "/jwks",
        "x5u": jwks_server.url + "/jwks",
        "x5c": ["MIIB"],
        "kid": "attacker-kid",
    }
    response = await call(make(app, keys, clock), mint(keys.attacker, header=header))
    assert problem(response)["code"] == "jwt.unknown_key"
    assert jwks_server.hits == {}


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c.d",
        "....",
        "eyJ.eyJ.sig",
        b64json({"alg": "RS256"}) + ".a+b/." + "abc",
        b64json({"alg": "RS256"}) + ".abcde." + "abc",
        b64(b"[1,2]") + "." + b64json(claims()) + ".abc",
        b64json({"alg": "RS256"}) + "." + b64(b'{"exp": NaN}') + ".abc",
        b64json({"alg": "RS256"}) + "." + b64(b"\xff\xfe") + ".abc",
        b64json({"alg": "RS256"}) + "." + b64(b"[" * 100000) + ".abc",
        b64json({"alg": 5}) + "." + b64json(claims()) + ".abc",
        b64json({"alg": "RS256", "kid": 7}) + "." + b64json(claims()) + ".abc",
        b64json({"alg": "RS256"}) + "." + b64json(claims()) + ".a",
    ],
)
async def test_malformed_tokens_are_401_never_500(
    app: RecordingApp, keys: Keys, clock: Clock, token: str
) -> None:
    """Garbage in every segment gives 401 invalid_token."""
    response = await call(make(app, keys, clock), token)
    assert response.status_code == 401
    assert problem(response)["code"] in {
        "jwt.malformed",
        "jwt.invalid_algorithm",
        "jwt.invalid_signature",
    }
    assert app.calls == 0


async def test_oversized_token(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """A token over 16 KiB is refused without being parsed."""
    response = await call(make(app, keys, clock), "a" * 20000)
    assert (response.status_code, problem(response)["code"]) == (401, "jwt.malformed")


async def test_duplicate_claims_never_widen(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """A payload naming 'scope' twice is malformed, whatever a lenient parser would keep."""
    payload = json.dumps(claims())[:-1] + ', "scope": "admin"}'
    token = forge_hmac(keys.secret.encode(), {"alg": "HS256"}, b64(payload.encode()))
    response = await call(make(app, keys, clock, secret=keys.secret), token)
    assert problem(response)["code"] == "jwt.malformed"


# --- scopes and routes ----------------------------------------------------------------------


RULES = {
    "GET /orders": ["orders:read"],
    "POST /orders": "orders:write orders:read",
    "/health": "public",
    "/admin/{rest:path}": "deny",
    "/me": "authenticated",
}


@pytest.mark.parametrize(
    ("method", "path", "scope_claim", "status"),
    [
        ("GET", "/orders", "orders:read", 200),
        ("POST", "/orders", "orders:read orders:write", 200),
        ("POST", "/orders", "orders:read", 403),
        ("POST", "/orders", "orders:read orders:writer", 403),
        ("POST", "/orders", "orders:read Orders:write", 403),
        ("GET", "/orders", "orders:rea", 403),
        ("GET", "/me", "", 200),
        ("GET", "/other", "", 200),
        ("GET", "/admin/x", "orders:read", 403),
    ],
)
async def test_route_scopes(
    app: RecordingApp,
    keys: Keys,
    clock: Clock,
    method: str,
    path: str,
    scope_claim: str,
    status: int,
) -> None:
    """Scopes are exact and case-sensitive; all listed scopes are required."""
    response = await call(
        make(app, keys, clock, rules=RULES),
        mint(keys.rsa, scope=scope_claim),
        path=path,
        method=method,
    )
    assert response.status_code == status
    assert app.calls == (1 if status == 200 else 0)


async def test_insufficient_scope_answer(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """403 names the required scopes in the challenge (RFC 6750 section 3.1)."""
    response = await call(
        make(app, keys, clock, rules=RULES), mint(keys.rsa, scope="orders:read"), method="POST"
    )
    assert (
        response.headers["www-authenticate"]
        == 'Bearer realm="api", error="insufficient_scope", scope="orders:read orders:write"'
    )
    assert problem(response) == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "The access token lacks a required scope: orders:read orders:write.",
        "code": "jwt.insufficient_scope",
    }


async def test_scp_claim_list(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """scp (list) grants scopes like scope does."""
    token = mint(keys.rsa, scope=..., scp=["orders:read"])
    assert (await call(make(app, keys, clock, rules=RULES), token)).status_code == 200


async def test_public_route(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """Public routes pass anonymously without a token or with an invalid one; a valid token is attached."""
    mw = make(app, keys, clock, rules=RULES)
    for headers in ([], [("authorization", "Bearer garbage")], [("authorization", "Bearer a b")]):
        assert (await call(mw, path="/health", headers=headers)).status_code == 200
        assert app.scopes[-1]["user"].is_authenticated is False
        assert app.scopes[-1]["auth"] is None
    assert (await call(mw, mint(keys.rsa), path="/health")).status_code == 200
    assert app.scopes[-1]["user"].sub == "alice"


async def test_default_policies(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """default='public' opens unmatched routes; default='deny' closes them even with a token."""
    assert (await call(make(app, keys, clock, default="public"), path="/x")).status_code == 200
    response = await call(make(app, keys, clock, default="deny"), mint(keys.rsa), path="/x")
    assert (response.status_code, problem(response)["code"]) == (403, "jwt.denied")


# --- cache ------------------------------------------------------------------------------------


async def test_cache_hit_still_checks_expiry_and_scopes(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """A cached token expires on time and still meets each route's scopes."""
    mw = make(app, keys, clock, rules=RULES)
    token = mint(keys.rsa, exp=int(NOW) + 60, scope="orders:read")
    assert (await call(mw, token)).status_code == 200
    assert len(mw._cache) == 1
    assert (await call(mw, token)).status_code == 200
    assert (await call(mw, token, method="POST")).status_code == 403
    clock.now = NOW + 60 + 30
    assert problem(await call(mw, token))["code"] == "jwt.expired"
    assert len(mw._cache) == 0


async def test_cache_is_bounded_and_can_be_disabled(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """The cache holds at most cache_size entries; cache_size=0 keeps none."""
    mw = make(app, keys, clock, cache_size=2)
    for i in range(4):
        assert (await call(mw, mint(keys.ec, "ES256", sub=f"u{i}"))).status_code == 200
    assert len(mw._cache) == 2
    off = make(app, keys, clock, cache_size=0)
    assert (await call(off, mint(keys.ec, "ES256"))).status_code == 200
    assert len(off._cache) == 0


async def test_failures_are_not_cached(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """Only successful verifications are cached."""
    mw = make(app, keys, clock)
    await call(mw, mint(keys.attacker))
    assert len(mw._cache) == 0


# --- websockets and other scopes ---------------------------------------------------------------


PREFLIGHT = [("origin", "https://app.example"), ("access-control-request-method", "POST")]


@pytest.mark.parametrize(
    ("method", "headers", "options", "status"),
    [
        ("OPTIONS", PREFLIGHT, {}, 200),
        ("OPTIONS", PREFLIGHT, {"rules": {"/orders": ["orders:admin"]}}, 200),
        ("OPTIONS", PREFLIGHT, {"public_preflight": False}, 401),
        ("OPTIONS", PREFLIGHT, {"rules": {"/orders": "deny"}}, 403),
        ("OPTIONS", PREFLIGHT[:1], {}, 401),  # no Access-Control-Request-Method: no preflight
        ("OPTIONS", PREFLIGHT[1:], {}, 401),  # no Origin
        ("OPTIONS", [], {}, 401),
        ("POST", PREFLIGHT, {}, 401),  # preflight headers on another method change nothing
    ],
)
async def test_cors_preflight_is_public(
    app: RecordingApp,
    keys: Keys,
    clock: Clock,
    method: str,
    headers: list[tuple[str, str]],
    options: dict[str, Any],
    status: int,
) -> None:
    """Browsers send CORS preflights without credentials: they reach the app (whose CORS
    middleware answers them) as anonymous callers; deny rules still hold."""
    response = await call(make(app, keys, clock, **options), method=method, headers=headers)
    assert response.status_code == status
    assert app.calls == (1 if status == 200 else 0)
    if status == 200:
        assert (app.scopes[0]["user"], app.scopes[0]["auth"]) == (ANONYMOUS, None)


async def test_websocket_handshake_checked(app: RecordingApp, keys: Keys, clock: Clock) -> None:
    """A websocket without a token is closed before accept; with one it is accepted."""
    mw = make(app, keys, clock)
    assert await run_websocket(mw) == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 0
    sent = await run_websocket(
        mw, headers=[(b"authorization", b"Bearer " + mint(keys.rsa).encode())]
    )
    assert sent[0] == {"type": "websocket.accept"}
    assert app.scopes[0]["user"].sub == "alice"


async def test_lifespan_passes(keys: Keys, clock: Clock) -> None:
    """Lifespan scopes reach the app untouched."""
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await make(inner, keys, clock)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}]


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({}, "jwks"),
        ({"jwks": {"keys": []}}, "jwks"),
        ({"jwks": {"nokeys": 1}}, "jwks"),
        ({"jwks": "/nonexistent.json"}, "jwks"),
        ({"secret": "x", "jwks": {"keys": []}}, "jwks"),
        ({"secret": "x" * 32, "algorithms": ["RS256"]}, "algorithms"),
        ({"secret": "x" * 32, "algorithms": ["XX999"]}, "algorithms"),
        ({"secret": ""}, "secret"),
        ({"secret": "x" * 32, "leeway": 301}, "leeway"),
        ({"secret": "x" * 32, "default": "open"}, "default"),
        ({"secret": "x" * 32, "rules": {"/a": 5}}, "rules['/a']"),
        ({"secret": "x" * 32, "rules": {"/a": ['a"b']}}, "rules['/a']"),
        ({"secret": "x" * 32, "rules": {"bad": "public"}}, "rules"),
        ({"secret": "x" * 32, "cache_size": -1}, "cache_size"),
        ({"secret": "x" * 32, "audience": []}, "audience"),
        ({"secret": "x" * 32, "realm": 'a"b'}, "realm"),
        ({"discovery": True}, "discovery"),
    ],
)
def test_bad_options(options: dict[str, Any], option: str) -> None:
    """Bad options fail at construction and name the option."""
    with pytest.raises(ConfigurationError) as info:
        JWTAuthMiddleware(RecordingApp(), **options)
    assert info.value.option == option


def test_jwks_skips_unusable_keys(keys: Keys) -> None:
    """Encryption keys, HMAC keys and garbage in a JWKS are skipped, not trusted."""
    jwks = keys.jwks("rsa")
    jwks["keys"] += [
        {"kty": "oct", "k": base64.urlsafe_b64encode(b"k" * 32).decode()},
        {**keys.ec.as_dict(private=False), "use": "enc"},
        {**keys.ec.as_dict(private=False), "key_ops": ["encrypt"]},
        {"kty": "RSA", "n": "!!", "e": "AQAB"},
        {"kty": "RSA", "kid": 5},
        {"kty": ["RSA"]},
        {"kty": {"a": 1}, "use": ["sig"]},
        {"kty": "EC", "crv": ["P-256"], "x": 1, "y": None},
        {"kty": "OKP", "crv": "Ed25519", "x": "A" * 10_000},
        "garbage",
    ]
    mw = JWTAuthMiddleware(RecordingApp(), jwks=jwks)
    assert [k.kid for k in mw._keys.keys] == ["rsa-1"]


@pytest.mark.parametrize("source", [b"{not json", b"[]", b'{"keys": {}}'])
def test_jwks_that_is_not_a_key_set_is_a_configuration_error(source: bytes) -> None:
    """JWKS bytes that are not JSON, or not a key set, are refused naming the option."""
    with pytest.raises(ConfigurationError) as info:
        load_jwks(source)
    assert info.value.option == "jwks"


@pytest.fixture
def jwks_server() -> Iterator[Any]:
    from .jwt_helpers import JWKSServer

    server = JWKSServer()
    yield server
    server.close()


async def test_oversized_and_malformed_keep_their_own_descriptions(
    app: RecordingApp, keys: Keys, clock: Clock
) -> None:
    """Two refusals sharing the code jwt.malformed each carry their own description."""
    mw = make(app, keys, clock)
    too_large = await call(mw, "a" * 20000)
    malformed = await call(mw, "abc")
    assert too_large.headers["www-authenticate"] == invalid_token_header(
        "The access token is too large."
    )
    assert malformed.headers["www-authenticate"] == invalid_token_header(
        "The access token is not a well-formed JWT."
    )


@pytest.mark.parametrize(
    ("user", "status"),
    [
        (None, 401),
        (ANONYMOUS, 401),
        (SimpleUser("bob"), 401),  # Starlette's own authentication: no token scopes
        (AuthenticatedUser("alice", frozenset({"a"}), {}), 403),
        (AuthenticatedUser("alice", frozenset({"a", "b"}), {}), 200),
    ],
)
async def test_require_scopes_counts_only_a_tokens_caller(
    app: RecordingApp, user: Any, status: int
) -> None:
    """RequireScopes: anyone but a token's caller is 401 (a framework's own user used to raise
    AttributeError); a caller missing a scope is 403; the app runs only for a full match."""

    async def set_user(scope: Any, receive: Any, send: Any) -> None:
        if user is not None:
            scope["user"] = user
        await RequireScopes(app, scopes=["a", "b"])(scope, receive, send)

    sent = await Channel().run(set_user, http_scope())
    assert (sent[0]["status"], app.calls) == (status, 1 if status == 200 else 0)
