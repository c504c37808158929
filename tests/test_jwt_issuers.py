"""Several token issuers: the token's iss selects one, whose keys alone verify it (issuer
confusion refused), unknown issuers fetch nothing, and each issuer's keys live apart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from joserfc.jwk import ECKey, KeySet

from asgi_guard import ConfigurationError, Decision, JWTAuthMiddleware, MetricsMiddleware, guard
from asgi_guard.check import check

from .conftest import RecordingApp, client_for
from .jwt_helpers import NOW, JWKSServer, forge_hmac, mint

pytestmark = pytest.mark.anyio

A, B = "https://a.example", "https://b.example"
SECRET = "a-shared-secret-of-at-least-32-bytes"


class Keys:
    """Issuer A's and B's keys: both publish a key with kid "k1"; B also has "k2"."""

    def __init__(self) -> None:
        self.a1 = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.b1 = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.b2 = ECKey.generate_key("P-256", parameters={"kid": "k2"})
        self.a_new = ECKey.generate_key("P-256", parameters={"kid": "a-2027"})

    @staticmethod
    def jwks(*keys: ECKey) -> dict[str, Any]:
        return KeySet(list(keys)).as_dict(private=False)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def local(keys: Keys, app: RecordingApp, **options: Any) -> JWTAuthMiddleware:
    """A layer accepting A and B from local key sets, each with its own audience."""
    issuers = [
        {"issuer": A, "audience": "api-a", "jwks": keys.jwks(keys.a1), "algorithms": ["ES256"]},
        {"issuer": B, "audience": "api-b", "jwks": keys.jwks(keys.b1, keys.b2)},
    ]
    return JWTAuthMiddleware(app, issuers=issuers, clock=lambda: NOW, **options)


async def status(mw: Any, token: str) -> tuple[int, str | None, str | None]:
    """Status, refusal code and WWW-Authenticate of one request with ``token``."""
    async with client_for(mw) as client:
        response = await client.get("/", headers={"authorization": f"Bearer {token}"})
    code = orjson.loads(response.content)["code"] if response.status_code != 200 else None
    return response.status_code, code, response.headers.get("www-authenticate")


def invalid(code: str, description: str) -> tuple[int, str, str]:
    return (
        401,
        code,
        f'Bearer realm="api", error="invalid_token", error_description="{description}"',
    )


UNKNOWN_ISSUER = invalid("jwt.invalid_issuer", "The access token's issuer is not accepted.")


async def test_each_issuer_verifies_its_own_tokens(keys: Keys, app: RecordingApp) -> None:
    """A's and B's tokens (both kid k1) are verified each with its issuer's key."""
    mw = local(keys, app)
    assert await status(mw, mint(keys.a1, "ES256", iss=A, aud="api-a")) == (200, None, None)
    assert await status(mw, mint(keys.b1, "ES256", iss=B, aud="api-b")) == (200, None, None)
    assert await status(mw, mint(keys.b2, "ES256", iss=B, aud="api-b")) == (200, None, None)
    assert [scope["auth"]["iss"] for scope in app.scopes] == [A, B, B]


async def test_issuer_confusion_is_refused(keys: Keys, app: RecordingApp) -> None:
    """A token signed by A's key is never verified by B's keys: claiming iss B with a kid B
    publishes fails the signature; naming B's other kid under iss A is an unknown key."""
    mw = local(keys, app)
    as_b = mint(keys.a1, "ES256", iss=B, aud="api-b")  # kid k1: B has a k1 too
    assert await status(mw, as_b) == invalid(
        "jwt.invalid_signature", "The access token's signature is invalid."
    )
    b_kid = mint(keys.a1, "ES256", header={"kid": "k2"}, iss=A, aud="api-a")
    assert await status(mw, b_kid) == invalid(
        "jwt.unknown_key", "The access token was signed by an unknown key."
    )
    assert app.calls == 0


async def test_each_issuer_has_its_own_audience(keys: Keys, app: RecordingApp) -> None:
    """A's token meant for B's API is refused: the audience is the selected issuer's."""
    mw = local(keys, app)
    token = mint(keys.a1, "ES256", iss=A, aud="api-b")
    assert await status(mw, token) == invalid(
        "jwt.invalid_audience", "The access token is not meant for this API."
    )


async def test_each_issuer_has_its_own_algorithms(keys: Keys, app: RecordingApp) -> None:
    """An HS256 token for an issuer of public keys is refused, whichever issuer takes HMAC."""
    issuers: list[dict[str, Any]] = [
        {"issuer": A, "jwks": Keys.jwks(keys.a1)},
        {"issuer": B, "secret": SECRET},
    ]
    mw = JWTAuthMiddleware(RecordingApp(), issuers=issuers, clock=lambda: NOW)
    public = orjson.dumps(keys.a1.as_dict(private=False))
    confused = forge_hmac(public, {"alg": "HS256", "kid": "k1"}, {"iss": A, "exp": NOW + 60})
    bad_alg = invalid("jwt.invalid_algorithm", "The access token's algorithm is not accepted.")
    assert await status(mw, confused) == bad_alg
    hmac = forge_hmac(SECRET.encode(), {"alg": "HS256"}, {"iss": B, "exp": NOW + 60})
    assert (await status(mw, hmac))[0] == 200


@pytest.mark.parametrize(
    "iss", ["https://c.example", A + "/", "", None, ["https://a.example"], 7, {"a": A}]
)
async def test_unknown_missing_or_malformed_iss_is_invalid_token(
    keys: Keys, app: RecordingApp, iss: Any
) -> None:
    """An iss no entry names (or none, or not a string) is 401 invalid_token."""
    mw = local(keys, app)
    claims: dict[str, Any] = {"aud": "api-a"}
    token = mint(keys.a1, "ES256", iss=iss if iss is not None else ..., **claims)
    assert await status(mw, token) == UNKNOWN_ISSUER


@pytest.fixture
def servers(keys: Keys) -> Iterator[tuple[JWKSServer, JWKSServer]]:
    a, b = JWKSServer(), JWKSServer()
    a.jwks = Keys.jwks(keys.a1)
    b.jwks = Keys.jwks(keys.b1, keys.b2)
    yield a, b
    a.close()
    b.close()


def remote(servers: tuple[JWKSServer, JWKSServer], app: Any) -> JWTAuthMiddleware:
    """A by jwks_url, B by OIDC discovery (B's iss is its server's URL)."""
    a, b = servers
    issuers: list[dict[str, Any]] = [
        {"issuer": A, "jwks_url": a.url + "/jwks", "audience": "api-a"},
        {"issuer": b.url, "discovery": True, "audience": "api-b"},
    ]
    return JWTAuthMiddleware(app, issuers=issuers, clock=lambda: NOW)


async def test_unknown_issuer_triggers_no_fetch(
    keys: Keys, app: RecordingApp, servers: tuple[JWKSServer, JWKSServer]
) -> None:
    """Tokens naming unknown issuers (even the key servers' own URLs) fetch nothing."""
    mw = remote(servers, app)
    a, b = servers
    for iss in ("https://evil.example", a.url, b.url + "/", b.url + "/jwks"):
        token = mint(keys.a1, "ES256", iss=iss, aud="api-a")
        assert await status(mw, token) == UNKNOWN_ISSUER
    assert (a.hits, b.hits) == ({}, {})


async def test_each_issuer_fetches_caches_and_rotates_on_its_own(
    keys: Keys, app: RecordingApp, servers: tuple[JWKSServer, JWKSServer]
) -> None:
    """A's token fetches A's keys only, B's token B's only; A rotating in a new key refetches
    A alone and forgets A's old verifications, never B's (which share the kid k1)."""
    a, b = servers
    mw = remote(servers, app)
    token_a = mint(keys.a1, "ES256", iss=A, aud="api-a")
    token_b = mint(keys.b1, "ES256", iss=b.url, aud="api-b")
    assert await status(mw, token_a) == (200, None, None)
    assert (a.hits, b.hits) == ({"/jwks": 1}, {})
    assert await status(mw, token_b) == (200, None, None)
    assert await status(mw, token_a) == (200, None, None)
    assert b.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}
    assert a.hits == {"/jwks": 1}
    assert len(mw._cache) == 2

    a.jwks = Keys.jwks(keys.a_new)  # A rotates: k1 leaves A's set
    rotated = mint(keys.a_new, "ES256", iss=A, aud="api-a")
    assert await status(mw, rotated) == (200, None, None)
    assert a.hits == {"/jwks": 2}
    assert b.hits == {"/.well-known/openid-configuration": 1, "/jwks": 1}
    # A's k1 verification is forgotten; B's k1 verification stays cached.
    assert len(mw._cache) == 2
    assert await status(mw, token_a) == invalid(
        "jwt.unknown_key", "The access token was signed by an unknown key."
    )
    assert await status(mw, token_b) == (200, None, None)
    assert b.hits["/jwks"] == 1


async def test_one_issuer_down_leaves_the_others_served(
    keys: Keys, app: RecordingApp, servers: tuple[JWKSServer, JWKSServer]
) -> None:
    """While A's key server fails, A's tokens are 503 and B's still verify."""
    a, b = servers
    a.status = 500
    mw = remote(servers, app)
    token_a = mint(keys.a1, "ES256", iss=A, aud="api-a")
    token_b = mint(keys.b1, "ES256", iss=b.url, aud="api-b")
    assert (await status(mw, token_a))[:2] == (503, "jwt.keys_unavailable")
    assert await status(mw, token_b) == (200, None, None)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option", "message"),
    [
        ({"issuer": A}, "issuers", "not issuer beside issuers"),
        ({"secret": SECRET}, "issuers", "not secret beside issuers"),
        ({"audience": "x", "discovery": True}, "issuers", "not audience, discovery"),
    ],
)
def test_issuers_and_single_issuer_options_are_exclusive(
    keys: Keys, options: dict[str, Any], option: str, message: str
) -> None:
    """``issuers`` beside a single-issuer option is a ConfigurationError naming both."""
    issuers = [{"issuer": B, "jwks": Keys.jwks(keys.b1)}]
    with pytest.raises(ConfigurationError) as excinfo:
        JWTAuthMiddleware(RecordingApp(), issuers=issuers, **options)
    assert excinfo.value.option == option
    assert message in excinfo.value.message


@pytest.mark.parametrize(
    ("issuers", "option", "message"),
    [
        ([], "issuers", "at least one"),
        ({"issuer": A, "secret": SECRET}, "issuers", "must be a list"),
        (["https://a.example"], "issuers[0]", "a table"),
        ([{"secret": SECRET}], "issuers[0].issuer", "is required"),
        ([{"issuer": "", "secret": SECRET}], "issuers[0].issuer", "is required"),
        (
            [{"issuer": A, "secret": SECRET}, {"issuer": A, "secret": SECRET}],
            "issuers[1].issuer",
            "listed twice",
        ),
        ([{"issuer": A}], "issuers[0].jwks", "exactly one"),
        ([{"issuer": A, "secret": SECRET, "jwks_url": "https://x"}], "issuers[0].jwks", "one"),
        ([{"issuer": A, "secret": SECRET, "algorithms": ["RS256"]}], "issuers[0].algorithms", ""),
        ([{"issuer": A, "secret": SECRET, "scopes": []}], "issuers[0]", "unknown options"),
        ([{"issuer": A, "secret": ""}], "issuers[0].secret", "empty"),
        ([{"issuer": A, "discovery": "yes"}], "issuers[0].discovery", "true or false"),
        ([{"issuer": A, "jwks_url": 123}], "issuers[0].jwks_url", "https://"),
        ([{"issuer": A, "jwks_url": "ftp://a.example/k"}], "issuers[0].jwks_url", "https://"),
        ([{"issuer": A, "secret": 5}], "issuers[0].secret", "string or bytes"),
        ([{"issuer": A, "secret": SECRET, "audience": 5}], "issuers[0].audience", "string"),
        ([{"issuer": A, "secret": SECRET, "audience": ["a", 5]}], "issuers[0].audience", "str"),
        ([{"issuer": A, "secret": SECRET, "audience": ""}], "issuers[0].audience", "string"),
        ([{"issuer": A, "secret": SECRET, "algorithms": []}], "issuers[0].algorithms", "one"),
    ],
)
def test_bad_issuers(issuers: Any, option: str, message: str) -> None:
    """Malformed entries fail at construction, naming the entry and option."""
    with pytest.raises(ConfigurationError) as excinfo:
        JWTAuthMiddleware(RecordingApp(), issuers=issuers)
    assert excinfo.value.option == option
    assert message in excinfo.value.message


async def test_toml_issuers(keys: Keys, tmp_path: Any) -> None:
    """``[[jwt.issuers]]`` tables in a TOML file build the same layer through guard()."""
    jwks = tmp_path / "a.json"
    jwks.write_bytes(orjson.dumps(Keys.jwks(keys.a1)))
    path = tmp_path / "guard.toml"
    path.write_text(
        f"""
[jwt]
leeway = 30

[[jwt.issuers]]
issuer = "{A}"
audience = "api-a"
jwks = "{jwks}"

[[jwt.issuers]]
issuer = "{B}"
audience = "api-b"
secret = "{SECRET}"
"""
    )
    app = RecordingApp()
    stack = guard(app, path, environ={})
    assert isinstance(stack, JWTAuthMiddleware)
    stack.clock = lambda: NOW
    assert await status(stack, mint(keys.a1, "ES256", iss=A, aud="api-a")) == (200, None, None)
    refused = await status(stack, mint(keys.a1, "ES256", iss=B, aud="api-b"))
    assert refused[1] == "jwt.invalid_algorithm"
    with pytest.raises(ConfigurationError) as excinfo:
        guard(app, path, environ={"ASGI_GUARD_JWT__SECRET": SECRET})
    assert excinfo.value.option == "jwt.issuers"


def test_check_reads_every_issuer() -> None:
    """``asgi-guard check`` looks at each entry: a missing audience, a short secret, and
    keys over plain http are found in any of them."""
    config = {
        "jwt": {
            "issuers": [
                {"issuer": A, "audience": "api", "jwks_url": "https://a.example/jwks"},
                {"issuer": B, "secret": "short"},
                {"issuer": "http://c.example", "discovery": True, "audience": "api"},
            ]
        }
    }
    codes = {finding.code for finding in check(config, environ={})}
    assert {"AG004", "AG006", "AG021"} <= codes
    assert "AG005" not in codes


async def test_issuers_from_the_environment(keys: Keys) -> None:
    """``ASGI_GUARD_JWT__ISSUERS`` (JSON) supplies the list, secrets included, outside files."""
    issuers = [{"issuer": A, "secret": SECRET}, {"issuer": B, "jwks": Keys.jwks(keys.b1)}]
    environ = {"ASGI_GUARD_JWT__ISSUERS": orjson.dumps(issuers).decode()}
    stack = guard(RecordingApp(), {"jwt": {"default": "authenticated"}}, environ=environ)
    assert isinstance(stack, JWTAuthMiddleware)
    stack.clock = lambda: NOW
    hmac = forge_hmac(SECRET.encode(), {"alg": "HS256"}, {"iss": A, "exp": NOW + 60})
    assert await status(stack, hmac) == (200, None, None)
    assert await status(stack, mint(keys.b1, "ES256", iss=B)) == (200, None, None)


async def test_unknown_issuer_is_counted_as_a_jwt_refusal(keys: Keys, app: RecordingApp) -> None:
    """The metrics layer counts an unknown issuer's refusal under ``jwt.invalid_issuer``."""
    decisions: list[Decision] = []
    mw = MetricsMiddleware(
        local(keys, app), layers=["jwt"], otel=False, on_decision=decisions.append
    )
    await status(mw, mint(keys.a1, "ES256", iss="https://c.example", aud="api-a"))
    await status(mw, mint(keys.a1, "ES256", iss=A, aud="api-a"))
    assert [
        Decision("jwt", "jwt.invalid_issuer", "*", False),
        Decision("jwt", "ok", "*", False),
    ] == (decisions)


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "3", True, 61])
def test_a_jwks_timeout_that_cannot_bound_a_fetch_is_refused(timeout: Any) -> None:
    """``jwks_timeout`` must be a number of seconds in (0, 60]: zero failed every fetch and
    NaN, a string or infinity left each fetch without the deadline it promises."""
    with pytest.raises(ConfigurationError) as excinfo:
        JWTAuthMiddleware(RecordingApp(), jwks_url="https://a.example/k", jwks_timeout=timeout)
    assert excinfo.value.option == "jwks_timeout"


def test_an_empty_algorithm_list_is_refused() -> None:
    """``algorithms=[]`` would refuse every token: a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError) as excinfo:
        JWTAuthMiddleware(RecordingApp(), secret=SECRET, algorithms=[])
    assert (excinfo.value.option, excinfo.value.message) == (
        "algorithms",
        "must name at least one algorithm",
    )
