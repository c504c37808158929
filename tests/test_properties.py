"""Property-based tests over the parsers that see attacker input: no exception escapes, invariants hold."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import string
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_guard import HTTPSRedirectMiddleware, JWTAuthMiddleware, ProxyHeadersMiddleware
from asgi_guard.accesslog import redact_query
from asgi_guard.proxy import _parse_forwarded

from .conftest import Channel, RecordingApp, http_scope

pytestmark = pytest.mark.anyio
#: `nox -s security` raises this for a longer search.
EXAMPLES = int(os.environ.get("ASGI_GUARD_PROPERTY_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

header_bytes = st.binary(max_size=200)
header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=120)
fragments = st.sampled_from(
    [
        "for=",
        "proto=",
        "host=",
        ";",
        ",",
        '"',
        "\\",
        "[",
        "]",
        ":",
        " ",
        "1.2.3.4",
        "::1",
        "unknown",
        "_x",
        "https",
        "10.0.0.2",
    ]
)
forwarded_like = st.lists(fragments, max_size=20).map("".join)


@SETTINGS
@given(header_text | forwarded_like)
def test_forwarded_parser_never_raises(value: str) -> None:
    """Any Forwarded value parses to elements of string pairs, or None."""
    result = _parse_forwarded(value)
    assert result is None or all(
        isinstance(k, str) and isinstance(v, str) for e in result for k, v in e.items()
    )


@SETTINGS
@given(
    st.sampled_from(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]),
    header_bytes | forwarded_like.map(str.encode),
    st.sampled_from(["x-forwarded", "forwarded"]),
    st.booleans(),
)
async def test_proxy_headers_invariants(
    name: str, value: bytes, mode: str, trusted_peer: bool
) -> None:
    """Never raises; an untrusted peer changes nothing; a rewritten client is a real IP address."""
    app = RecordingApp()
    peer = "10.0.0.1" if trusted_peer else "203.0.113.9"
    mw = ProxyHeadersMiddleware(app, trusted=["10.0.0.0/8"], mode=mode)  # type: ignore[arg-type]
    await Channel().run(
        mw,
        http_scope(headers=[(name.encode(), value), (b"host", b"h")], client=peer, scheme="http"),
    )
    seen = app.scopes[0]
    if not trusted_peer:
        assert (seen["client"], seen["scheme"]) == ((peer, 1234), "http")
    else:
        ipaddress.ip_address(seen["client"][0])
        assert seen["scheme"] in ("http", "https")


@SETTINGS
@given(header_bytes, st.binary(max_size=60), st.binary(max_size=60))
async def test_redirect_location_never_leaves_allowed_hosts(
    host: bytes, path: bytes, query: bytes
) -> None:
    """Whatever Host, path and query say, a Location is absolute https on an allowed host."""
    mw = HTTPSRedirectMiddleware(RecordingApp(), allowed_hosts=["example.com", "*.example.com"])
    scope = http_scope(
        "/" + path.decode("latin-1"),
        headers=[(b"host", host)],
        scheme="http",
        raw_path=b"/" + path,
        query_string=query,
    )
    sent = await Channel().run(mw, scope)
    headers = dict(sent[0]["headers"])
    if sent[0]["status"] == 308:
        location = headers[b"location"].decode("ascii")
        parts = urlsplit(location)
        assert parts.scheme == "https"
        assert parts.hostname == "example.com" or (parts.hostname or "").endswith(".example.com")
        assert all(0x21 <= b <= 0x7E for b in headers[b"location"])
    else:
        assert sent[0]["status"] == 400
        assert b"location" not in headers


@SETTINGS
@given(header_bytes)
async def test_any_authorization_header_is_refused_cleanly(value: bytes) -> None:
    """Garbage credentials give 400 or 401 with a challenge, never an exception or a call."""
    app = RecordingApp()
    mw = JWTAuthMiddleware(app, secret="s" * 32)
    sent = await Channel().run(mw, http_scope(headers=[(b"authorization", value)]))
    assert sent[0]["status"] in (400, 401)
    assert any(k == b"www-authenticate" for k, _ in sent[0]["headers"])
    assert app.calls == 0


secrets = st.text(
    alphabet=string.ascii_letters + string.digits + "!$%*()_+-=[]{}|:,.<>/?~ ",
    min_size=8,
    max_size=40,
)
key_spellings = st.sampled_from(
    [
        "token",
        "TOKEN",
        "Access_Token",
        "acc%65ss_token",
        "pass%77ord",
        "client_secret",
        "api%5Fkey",
        "secret",
    ]
)


@SETTINGS
@given(
    secrets, key_spellings, st.lists(st.sampled_from(["a=1", "page=2", "x", "=", "&"]), max_size=4)
)
def test_query_redaction_never_leaks(secret: str, key: str, noise: list[str]) -> None:
    """A sensitive parameter's value never survives redaction, however it is spelled or encoded."""
    query = "&".join([*noise, f"{key}={quote(secret, safe='')}", *noise])
    redacted = redact_query(query)
    assert quote(secret, safe="") not in redacted or len(quote(secret, safe="")) < 8
    assert f"{key}=[REDACTED]" in redacted


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet='[]{}"\\ab,:', max_size=6),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet="[]{}ab", max_size=3), children, max_size=3)
    ),
    max_leaves=40,
)


@SETTINGS
@given(json_values, st.integers(min_value=1, max_value=8))
def test_nesting_scan_matches_the_real_depth(value: object, limit: int) -> None:
    """The validation layer's pre-decode depth scan agrees with the parsed value's depth,
    brackets inside strings (escaped quotes included) never counting."""
    import orjson

    from asgi_guard.validation.body import too_deep as _too_deep

    assert _too_deep(orjson.dumps(value), limit) is (_depth(value) > limit)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "HS256", "none"]) | json_values},
        optional={
            "crit": json_values,
            "typ": st.sampled_from(["at+jwt", "JWT"]) | json_values,
            "kid": json_values,
        },
    ),
    st.dictionaries(
        st.sampled_from(["exp", "nbf", "iat", "iss", "sub", "aud", "scope", "scp"]), json_values
    ),
)
def test_token_checks_only_ever_refuse(
    header: dict[str, object], claims: dict[str, object]
) -> None:
    """Any JSON in a token's header or claims is refused as TokenError, never another error."""
    from asgi_guard.jwt import tokens

    for check in (
        lambda: tokens.check_header(header, {"RS256", "HS256"}, "at+jwt"),
        lambda: tokens.check_times(claims, 1_700_000_000.0, 30),
        lambda: tokens.check_claims(claims, "https://issuer", frozenset({"api"})),
        lambda: tokens.granted_scopes(claims, ("scope", "scp")),
    ):
        with contextlib.suppress(tokens.TokenError):
            check()


def _stack() -> tuple[object, str]:
    """The demo's whole guard stack (every layer on) around a recording app, and a token."""
    from asgi_guard import guard
    from asgi_guard.demo import demo_config
    from asgi_guard.devkeys import generate_keys, mint_token

    keys = generate_keys()
    config = demo_config(keys)
    config["rate_limit"]["limit"] = "1000000/minute"
    config["access_log"] = {"logger": "tests.properties.access"}
    for route in config["routes"]:
        route.pop("limit", None)
    token = mint_token(keys, sub="prop", scopes=["orders:read", "orders:write"])
    return guard(RecordingApp(), config, environ={}), token


STACK, TOKEN = _stack()
header_names = st.sampled_from(
    [
        b"host",
        b"authorization",
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-request-id",
        b"user-agent",
        b"referer",
        b"cookie",
    ]
)
header_values = header_bytes | st.sampled_from(
    [
        b"Bearer " + TOKEN.encode(),
        b"application/json",
        b"https",
        b"api.example.com",
        b"[fe80::1%x]",
        b"for=1.2.3.4;proto=https",
        b"9" * 30,
        b"gzip",
    ]
)
bodies = st.binary(max_size=200) | st.sampled_from(
    [b'{"product_id": 1, "quantity": 2}', b"[" * 100, b'{"product_id": "x"}', b""]
)


@SETTINGS
@given(
    st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    st.sampled_from(["/orders", "/orders/1", "/products", "/health", "/openapi.json", "/x"])
    | st.text(max_size=40).map(lambda t: "/" + t),
    st.binary(max_size=80),
    st.lists(st.tuples(header_names, header_values), max_size=6),
    st.lists(bodies, min_size=1, max_size=3),
    st.sampled_from(["http", "https"]),
    st.lists(st.booleans(), min_size=3, max_size=3),
)
async def test_whole_stack_answers_hostile_requests_without_error(
    method: str,
    path: str,
    query: bytes,
    extra: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    scheme: str,
    usual: list[bool],
) -> None:
    """Any method, path, query, headers and body through every layer at once: one complete
    answer, never a 5xx, never an exception, whatever is refused where."""
    # Mostly well-formed requests with hostile parts, so that every layer gets its turn.
    headers = [
        header
        for header, wanted in zip(
            [
                (b"host", b"api.example.com"),
                (b"authorization", b"Bearer " + TOKEN.encode()),
                (b"content-type", b"application/json"),
            ],
            usual,
            strict=True,
        )
        if wanted
    ] + extra
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "scheme": scheme,
        "client": ("127.0.0.1", 1234),
    }
    sent = await Channel(messages).run(STACK, scope)  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start"
    assert 200 <= sent[0]["status"] < 500
    assert sent[-1]["type"] == "http.response.body"
    assert not sent[-1].get("more_body", False)
