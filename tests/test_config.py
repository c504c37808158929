"""guard() and GuardConfig: parsing with exact error paths, env overrides, and the stack order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from asgi_guard import (
    ConfigurationError,
    GuardConfig,
    RateLimitMiddleware,
    check,
    guard,
    load_config,
)
from asgi_guard.devkeys import DEV_AUDIENCE, DEV_ISSUER, generate_keys, mint_token, public_jwks

from .conftest import RecordingApp, client_for

pytestmark = pytest.mark.anyio


class Note(msgspec.Struct):
    text: str


KEYS = generate_keys()
FULL: dict[str, Any] = {
    "proxy": {"trusted": ["127.0.0.1"]},
    "access_log": {"logger": "test.guard"},
    "https": {"exempt": ["/health"], "allowed_hosts": ["testserver"]},
    "rate_limit": {"limit": "100/minute", "identity_limit": "50/minute"},
    "jwt": {"jwks": public_jwks(KEYS), "issuer": DEV_ISSUER, "audience": DEV_AUDIENCE},
    "validation": {"max_body_size": 1000},
    "hosts": {"allowed": ["testserver"]},
    "headers": {},
    "routes": [
        {"path": "/health", "public": True},
        {
            "path": "POST /notes",
            "scopes": ["notes:write"],
            "limit": "3/minute",
            "schema": "tests.test_config:Note",
        },
    ],
}


def layers(app: Any) -> list[str]:
    names = []
    while not isinstance(app, RecordingApp):
        names.append(
            f"{type(app).__name__}({(getattr(app, '_key', None) and app._key.__name__) or ''})"
            if isinstance(app, RateLimitMiddleware)
            else type(app).__name__
        )
        app = app.app
    return names


def test_stack_order() -> None:
    """The layers wrap in DESIGN order: IP limit before JWT, identity limit after it."""
    assert layers(guard(RecordingApp(), FULL, environ={})) == [
        "ProxyHeadersMiddleware",
        "AccessLogMiddleware",
        "AllowedHostsMiddleware",
        "HTTPSRedirectMiddleware",
        "SecurityHeadersMiddleware",
        "RateLimitMiddleware(ip)",
        "JWTAuthMiddleware",
        "RateLimitMiddleware(by_claim)",
        "ValidationMiddleware",
    ]


def test_identity_key_moves_the_limit_after_jwt() -> None:
    """key = 'sub' puts the only rate-limit layer after authentication."""
    config = {**FULL, "rate_limit": {"limit": "10/minute", "key": "sub"}}
    assert layers(guard(RecordingApp(), config, environ={}))[3:7] == [
        "HTTPSRedirectMiddleware",
        "SecurityHeadersMiddleware",
        "JWTAuthMiddleware",
        "RateLimitMiddleware(by_claim)",
    ]


def test_sections_enable_layers() -> None:
    """Only present sections become layers."""
    assert layers(guard(RecordingApp(), {"https": {}}, environ={})) == ["HTTPSRedirectMiddleware"]
    assert isinstance(guard(RecordingApp(), {}, environ={}), RecordingApp)


async def test_guarded_app_end_to_end() -> None:
    """Routes merge into every layer; the IP-keyed limit counts refused attempts too (it runs first)."""
    logging.getLogger("test.guard").setLevel(logging.INFO)
    app = RecordingApp()
    asgi = guard(app, FULL, environ={})
    writer = mint_token(KEYS, sub="alice", scopes=["notes:write"])
    auth = {"authorization": f"Bearer {writer}", "content-type": "application/json"}
    async with client_for(asgi, base_url="https://testserver") as client:
        assert (await client.get("http://testserver/health")).status_code == 200
        assert (await client.get("http://testserver/other")).status_code == 308
        assert (await client.post("/notes", content=b'{"text": "hi"}')).status_code == 401
        assert (
            await client.post("/notes", content=b'{"text": 1}', headers=auth)
        ).status_code == 422
        assert (
            await client.post("/notes", content=b'{"text": "hi"}', headers=auth)
        ).status_code == 200
        assert (
            await client.post("/notes", content=b'{"text": "hi"}', headers=auth)
        ).status_code == 429
    assert app.scopes[-1]["state"]["validated_body"] == Note("hi")


async def test_routes_kept_out_of_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    """``log = false`` on a route and ``access_log.exclude`` together: only those routes'
    successes go unlogged, and the same route named in both places is no error."""
    config = {
        "access_log": {"logger": "test.config.access", "exclude": ["GET /metrics"]},
        "routes": [{"path": "GET /health", "log": False}, {"path": "GET /metrics", "log": False}],
    }
    app = RecordingApp()
    caplog.set_level(logging.INFO, logger="test.config.access")
    async with client_for(guard(app, config, environ={})) as client:
        for path in ("/health", "/metrics", "/items"):
            assert (await client.get(path)).status_code == 200
    assert app.calls == 3
    records = [r for r in caplog.records if r.name == "test.config.access"]
    paths = [orjson.loads(r.getMessage())["path"] for r in records]
    assert paths == ["/items"]


def test_toml_file_and_pyproject(tmp_path: Path) -> None:
    """A TOML file, or [tool.asgi-guard] in pyproject.toml, gives the same config."""
    text = '[https]\nhsts_max_age = 600\n\n[[routes]]\npath = "/health"\nredirect_exempt = true\n'
    (tmp_path / "guard.toml").write_text(text)
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n'
        + text.replace("[https]", "[tool.asgi-guard.https]").replace(
            "[[routes]]", "[[tool.asgi-guard.routes]]"
        )
    )
    a = load_config(tmp_path / "guard.toml", environ={})
    b = load_config(str(tmp_path / "pyproject.toml"), environ={})
    assert a == b
    assert a.https is not None
    assert a.https.hsts_max_age == 600
    assert a.routes[0].redirect_exempt is True


def test_environment_supplies_secrets(tmp_path: Path) -> None:
    """ASGI_GUARD_<SECTION>__<OPTION> overrides and fills options, converted to their types."""
    config = load_config(
        {"jwt": {"issuer": "x"}},
        environ={
            "ASGI_GUARD_JWT__SECRET": "s" * 40,
            "ASGI_GUARD_JWT__LEEWAY": "10",
            "ASGI_GUARD_RATE_LIMIT__STORAGE": "redis://r:6379/0",
            "OTHER": "1",
        },
    )
    assert config.jwt is not None
    assert (config.jwt.secret, config.jwt.leeway) == ("s" * 40, 10)
    assert config.rate_limit is not None
    assert config.rate_limit.storage == "redis://r:6379/0"


@pytest.mark.parametrize(
    ("config", "environ", "message"),
    [
        (
            {
                "routes": [{"path": "/a"}, {"path": "/b"}, {"path": "/c", "limit": "5/fortnight"}],
                "rate_limit": {},
            },
            {},
            "routes[2].limit: invalid rate '5/fortnight'",
        ),
        (
            {"routes": [{"path": "/a", "limit": 5}]},
            {},
            "routes[0].limit: Expected `str | object | null`, got `int`",
        ),
        ({"https": {"hsts_max_age": "long"}}, {}, "https.hsts_max_age: Expected `int`, got `str`"),
        ({"https": {"hsts_maxage": 1}}, {}, "https: Object contains unknown field `hsts_maxage`"),
        ({"nonsense": {}}, {}, "config: Object contains unknown field `nonsense`"),
        (
            {"routes": [{"path": "nope"}]},
            {},
            "routes[0].path: route path must start with '/': 'nope'",
        ),
        (
            {"routes": [{"path": "/a", "scopes": ["x"]}]},
            {},
            "routes[0].scopes: needs a [jwt] section",
        ),
        (
            {"routes": [{"path": "/a", "log": False}]},
            {},
            "routes[0].log: needs an [access_log] section",
        ),
        (
            {"access_log": {"exclude": ["health"]}},
            {},
            "access_log.exclude: route path must start with '/': 'health'",
        ),
        (
            {"https": {"exempt": "/health"}},
            {},
            "https.exempt: Expected `array`, got `str`",
        ),
        (
            {"routes": [{"path": "/a", "schema": "nowhere.module:Type"}], "validation": {}},
            {},
            "routes[0].schema: cannot import 'nowhere.module:Type'",
        ),
        (
            {"routes": [{"path": "/a", "schema": "no-colon"}], "validation": {}},
            {},
            "routes[0].schema: expected 'module:attribute'",
        ),
        (
            {"jwt": {"secret": "x" * 32, "leeway": 900}},
            {},
            "jwt.leeway: must be between 0 and 300 seconds",
        ),
        (
            {"rate_limit": {"limit": "1/minute", "key": "sub"}},
            {},
            "rate_limit.key: identity-keyed limits need a [jwt] section",
        ),
        ({}, {"ASGI_GUARD_JWTX__SECRET": "x"}, "ASGI_GUARD_JWTX__SECRET: unknown section 'jwtx'"),
        (
            {},
            {"ASGI_GUARD_JWT__SECRETS": "x"},
            "ASGI_GUARD_JWT__SECRETS: unknown option 'secrets' of [jwt]",
        ),
    ],
)
def test_errors_name_the_exact_place(
    config: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    """A bad config fails at start-up with one readable message naming where."""
    with pytest.raises(ConfigurationError) as info:
        guard(RecordingApp(), config, environ=environ)
    assert str(info.value).startswith(message)


def test_bad_files(tmp_path: Path) -> None:
    """Unreadable, invalid and table-less files are one-line errors."""
    (tmp_path / "bad.toml").write_text("[https\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    for path, message in [
        (tmp_path / "missing.toml", "config: cannot read"),
        (tmp_path / "bad.toml", "config: bad.toml is not valid TOML"),
        (tmp_path / "pyproject.toml", "config: pyproject.toml has no [tool.asgi-guard] table"),
    ]:
        with pytest.raises(
            ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")
        ):
            load_config(path, environ={})


def test_guard_config_object_round_trip() -> None:
    """A GuardConfig object is accepted as it is."""
    config = msgspec.convert(FULL, GuardConfig)
    assert layers(guard(RecordingApp(), config, environ={}))[0] == "ProxyHeadersMiddleware"


# --- check -------------------------------------------------------------------------------------


def codes(config: Any, **kw: Any) -> list[str]:
    return [f.code for f in check(config, environ={}, **kw)]


def test_check_clean_config() -> None:
    """A careful config has no findings."""
    assert codes(FULL) == []


@pytest.mark.parametrize(
    ("change", "code", "level"),
    [
        ({"https": None}, "AG001", "error"),
        ({"https": {"hsts_max_age": 300}}, "AG002", "warning"),
        ({"proxy": {"trusted": ["*"]}}, "AG003", "error"),
        ({"jwt": {"secret": "x" * 40, "issuer": "i"}}, "AG004", "warning"),
        ({"jwt": {"secret": "x" * 40, "audience": "a"}}, "AG005", "warning"),
        ({"jwt": {"secret": "short", "issuer": "i", "audience": "a"}}, "AG006", "error"),
        ({"jwt": {**FULL["jwt"], "leeway": 120}}, "AG007", "warning"),
        ({"jwt": {**FULL["jwt"], "default": "public"}}, "AG008", "warning"),
        ({"jwt": None, "routes": [], "rate_limit": {"limit": "1/second"}}, "AG009", "warning"),
        (
            {"rate_limit": {"limit": "1/second", "rules": {"POST /oauth/token": "5/minute"}}},
            "AG010",
            "warning",
        ),
        ({"rate_limit": None, "routes": []}, "AG012", "warning"),
        ({"validation": {"max_body_size": 50 * 1024 * 1024}}, "AG013", "warning"),
        ({"access_log": None}, "AG014", "warning"),
        ({"access_log": {"exclude": ["/health"]}}, "AG015", "warning"),
        ({"hosts": None, "https": {"exempt": ["/health"]}}, "AG024", "warning"),
        (
            {"access_log": {}, "routes": [{"path": "GET /oauth/authorize", "log": False}]},
            "AG015",
            "warning",
        ),
    ],
)
def test_check_findings(change: dict[str, Any], code: str, level: str) -> None:
    """Each insecure setting is reported with its code, level and a fix."""
    config = {k: v for k, v in {**FULL, **change}.items() if v is not None}
    findings = [f for f in check(config, environ={}) if f.code == code]
    assert len(findings) == 1
    assert findings[0].level == level
    assert findings[0].fix
    assert str(findings[0]).startswith(f"{code} [{level}] ")


def test_check_quiet_routes() -> None:
    """Excluding read-only routes (GET, HEAD) from the log is fine; any other method, or a
    credential route, is named in one finding."""
    quiet = {
        **FULL,
        "access_log": {"exclude": ["GET|HEAD /health", "POST /orders", "/metrics"]},
        "routes": [
            *FULL["routes"],
            {"path": "GET /ready", "log": False},
            {"path": "/metrics", "log": False},  # named twice, reported once
        ],
    }
    [finding] = [f for f in check(quiet, environ={}) if f.code == "AG015"]
    assert finding.message == (
        "Successful requests to POST /orders, /metrics are not logged, and these routes may"
        " change state or handle credentials."
    )
    assert "AG015" not in codes({**FULL, "access_log": {"exclude": ["GET /health"]}})
    # A malformed pattern is refused as guard() refuses it.
    with pytest.raises(ConfigurationError, match=r"^access_log\.exclude: route path must start"):
        codes({**FULL, "access_log": {"exclude": ["GET health"]}})


def test_check_memory_storage_with_workers() -> None:
    """Memory storage is an error once several workers share the load."""
    assert codes(FULL, workers=4) == ["AG011"]


# --- errors that teach, lists from the environment, the local mode ------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"ASGI_GUARD_PROXY__TRUSTED": "10.0.0.0/8, 127.0.0.1"}, ["10.0.0.0/8", "127.0.0.1"]),
        ({"ASGI_GUARD_PROXY__TRUSTED": '["10.0.0.0/8", "::1"]'}, ["10.0.0.0/8", "::1"]),
        ({"ASGI_GUARD_PROXY__TRUSTED": "192.0.2.1"}, ["192.0.2.1"]),
    ],
)
def test_list_options_from_the_environment(environ: dict[str, str], expected: list[str]) -> None:
    """A list option takes a comma-separated value or JSON from the environment."""
    config = load_config({}, environ=environ)
    assert config.proxy is not None
    assert config.proxy.trusted == expected


def test_tables_and_unions_from_the_environment() -> None:
    """JSON gives tables and lists; an option that may be a string keeps a plain value whole."""
    config = load_config(
        {},
        environ={
            "ASGI_GUARD_JWT__AUDIENCE": "a,b",
            "ASGI_GUARD_JWT__RULES": '{"/health": "public"}',
            "ASGI_GUARD_ACCESS_LOG__REDACT_QUERY": '["sig"]',
        },
    )
    assert config.jwt is not None
    assert config.access_log is not None
    assert (config.jwt.audience, config.jwt.rules) == ("a,b", {"/health": "public"})
    assert config.access_log.redact_query == ["sig"]
    with pytest.raises(ConfigurationError, match=r"^ASGI_GUARD_JWT__RULES: is not valid JSON"):
        load_config({}, environ={"ASGI_GUARD_JWT__RULES": "{oops"})


@pytest.mark.parametrize(
    ("config", "environ", "message"),
    [
        (
            {"rate_limit": {"limt": "1/second"}},
            {},
            "rate_limit: Object contains unknown field `limt` (did you mean 'limit'?)",
        ),
        (
            {"ratelimit": {}},
            {},
            "config: Object contains unknown field `ratelimit` (did you mean 'rate_limit'?)",
        ),
        (
            {"routes": [{"path": "/a", "scops": ["x"]}]},
            {},
            "routes[0]: Object contains unknown field `scops` (did you mean 'scopes'?)",
        ),
        ({"https": {"zzz": 1}}, {}, "https: Object contains unknown field `zzz`"),
        (
            {},
            {"ASGI_GUARD_JWT__SECRTE": "x"},
            "ASGI_GUARD_JWT__SECRTE: unknown option 'secrte' of [jwt] (did you mean 'secret'?)",
        ),
        (
            {},
            {"ASGI_GUARD_RATELIMIT__LIMIT": "x"},
            "ASGI_GUARD_RATELIMIT__LIMIT: unknown section 'ratelimit' (did you mean 'rate_limit'?)",
        ),
        (
            {"rate_limit": {"strategy": "leaky-bucket"}},
            {},
            "rate_limit.strategy: Invalid enum value 'leaky-bucket'; accepted: 'fixed-window',"
            " 'moving-window', 'sliding-window'",
        ),
        (
            {"rate_limit": {"headers": "draft"}},
            {},
            "rate_limit.headers: Invalid enum value 'draft'; accepted: 'legacy', true, false",
        ),
        (
            {"rate_limit": {"limit": "10/min"}},
            {},
            "rate_limit.limit: invalid rate '10/min'; accepted: '100/minute', '100 per minute',"
            " '10/5 seconds', several joined by ';' ('10/second;1000/hour'); units: second,"
            " minute, hour, day, month, year",
        ),
    ],
)
def test_errors_say_what_would_be_accepted(
    config: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    """Unknown keys get a "did you mean", enums and limits list their accepted forms."""
    with pytest.raises(ConfigurationError) as info:
        guard(RecordingApp(), config, environ=environ)
    assert str(info.value) == message


LOCAL: dict[str, Any] = {
    "proxy": {"trusted": ["10.0.0.0/8"]},
    "https": {"allowed_hosts": ["api.example.com"]},
}


@pytest.mark.parametrize(
    ("config", "environ"),
    [({**LOCAL, "dev": True}, {}), (LOCAL, {"ASGI_GUARD_DEV": "1"})],
)
async def test_local_mode(config: dict[str, Any], environ: dict[str, str]) -> None:
    """The local mode trusts loopback, sends max-age=0 for HSTS, and redirects to the port and
    loopback host the client used; production's config is otherwise unchanged."""
    app = RecordingApp()
    asgi = guard(app, config, environ=environ)
    async with client_for(asgi, base_url="http://127.0.0.1:8000") as client:
        redirect = await client.get("/docs?x=1")
        assert (redirect.status_code, redirect.headers["location"]) == (
            308,
            "https://127.0.0.1:8000/docs?x=1",
        )
        assert (await client.get("http://localhost:9/a")).headers["location"] == (
            "https://localhost:9/a"
        )
        assert (await client.get("http://evil.example:8000/a")).status_code == 400
        secure = await client.get("/docs", headers={"x-forwarded-proto": "https"})
        assert (secure.status_code, secure.headers["strict-transport-security"]) == (
            200,
            "max-age=0",
        )
    production = guard(RecordingApp(), LOCAL, environ={})
    async with client_for(production, base_url="http://api.example.com:8000") as client:
        assert (await client.get("/docs")).headers["location"] == "https://api.example.com/docs"
        assert (
            await client.get("/docs", headers={"x-forwarded-proto": "https"})
        ).status_code == 308


def test_check_refuses_what_guard_refuses() -> None:
    """check runs guard()'s own validation first: two key sources are refused, not passed."""
    both = {**FULL, "jwt": {**FULL["jwt"], "secret": "x" * 40}}
    with pytest.raises(ConfigurationError, match=r"^jwt\.jwks: give exactly one of"):
        check(both, environ={})


@pytest.mark.parametrize(
    ("change", "code", "level"),
    [
        ({"dev": True}, "AG020", "error"),
        (
            {"jwt": {**FULL["jwt"], "jwks": None, "jwks_url": "http://id.example/jwks"}},
            "AG021",
            "error",
        ),
        (
            {
                "jwt": {
                    **FULL["jwt"],
                    "jwks": None,
                    "issuer": "http://id.example",
                    "discovery": True,
                }
            },
            "AG021",
            "error",
        ),
        ({"jwt": {**FULL["jwt"], "jwks": KEYS}}, "AG022", "error"),
        ({"proxy": None}, "AG023", "warning"),
    ],
)
def test_check_first_hour_findings(change: dict[str, Any], code: str, level: str) -> None:
    """Settings that work on a laptop but not in production are each one finding."""
    config = {k: v for k, v in {**FULL, **change}.items() if v is not None}
    assert [(f.code, f.level) for f in check(config, environ={})] == [(code, level)]


def test_check_redirect_to_any_host() -> None:
    """Without a proxy (AG024's case) or any host list, the redirect follows the client's Host."""
    config = {**{k: v for k, v in FULL.items() if k not in ("proxy", "hosts")}, "https": {}}
    assert codes(config) == ["AG023", "AG025"]
    assert codes({**config, "https": {"host": "api.example.com"}}) == ["AG023"]


def test_check_finds_a_private_key_file(tmp_path: Path) -> None:
    """A jwks file holding the private key is reported like an inline one."""
    private = tmp_path / "dev-keys.json"
    private.write_text(orjson.dumps(KEYS).decode())
    public = tmp_path / "public.json"
    public.write_text(orjson.dumps(public_jwks(KEYS)).decode())
    for path, found in [(private, ["AG022"]), (public, [])]:
        assert codes({**FULL, "jwt": {**FULL["jwt"], "jwks": str(path)}}) == found


async def test_local_mode_keeps_a_configured_https_port() -> None:
    """With https.https_port set, the local mode redirects there rather than to the client's port."""
    config = {"dev": True, "https": {"https_port": 8443}}
    async with client_for(
        guard(RecordingApp(), config, environ={}), base_url="http://localhost:8000"
    ) as client:
        assert (await client.get("/a")).headers["location"] == "https://localhost:8443/a"


def test_teaching_leaves_other_messages_alone() -> None:
    """A path that is no config option, or an option of no struct, keeps msgspec's message;
    a table option given a plain string from the environment is msgspec's to refuse."""
    from asgi_guard._teach import teach

    for where in ("jwt.issuer.x", "jwt.nothing", "routes[0].nope"):
        assert teach(GuardConfig, where, "Invalid enum value 'x'") == "Invalid enum value 'x'"
    with pytest.raises(ConfigurationError, match=r"^jwt\.rules: Expected `object`, got `str`$"):
        load_config({}, environ={"ASGI_GUARD_JWT__RULES": "public"})
