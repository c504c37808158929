"""The canonical request target, route-pattern methods, and each layer's answer to a bad target."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from asgi_guard import (
    AccessLogMiddleware,
    AllowedHostsMiddleware,
    ConfigurationError,
    Decision,
    HTTPSRedirectMiddleware,
    JWTAuthMiddleware,
    MetricsMiddleware,
    RateLimitMiddleware,
    RouteTable,
    SecurityHeadersMiddleware,
    ValidationMiddleware,
    guard,
)
from asgi_guard._asgi import ASGIApp
from asgi_guard.target import TargetError, route_path

from .conftest import Channel, RecordingApp, http_scope, run_websocket
from .integrations.tokens import SECRET

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        ("", "/admin", "/admin"),
        ("", "", "/"),
        ("", "/admin/../x;p", "/admin/../x;p"),  # routed literally by every framework
        ("/api", "/api/admin", "/admin"),
        ("/api", "/api", "/"),
        ("/api", "/admin", "/admin"),  # root_path absent from the path: left as it is
        ("/api", "/api/api/admin", "/api/admin"),
        ("/", "/admin", "/admin"),
        ("", "/caf\u00e9", "/caf\u00e9"),
    ],
)
def test_route_path_reads_what_the_frameworks_route(
    root_path: str, path: str, expected: str
) -> None:
    """route_path() gives the path relative to root_path exactly as the frameworks route it."""
    assert route_path({"path": path, "root_path": root_path}) == expected


@pytest.mark.parametrize(
    ("root_path", "path", "detail"),
    [
        ("", "admin", "The request target must be a path starting with '/'."),
        ("", "*", "The request target must be a path starting with '/'."),
        ("", "http://host/admin", "The request target must be a path starting with '/'."),
        ("/api", "/x/api/admin", "The request path does not start with the root path."),
        ("/api", "/apiadmin", "The request path does not start with the root path."),
        ("/api/", "/api/admin", "The request path does not start with the root path."),
        ("", "/admin\x00", "The request path contains control characters."),
        ("", "/admin\n", "The request path contains control characters."),
        ("", "/a\rb", "The request path contains control characters."),
        ("", "/a\tb", "The request path contains control characters."),
        ("", "/a\x7fb", "The request path contains control characters."),
    ],
)
def test_route_path_refuses_what_the_frameworks_read_differently(
    root_path: str, path: str, detail: str
) -> None:
    """route_path() raises TargetError with a 400 target.invalid problem for each unreadable case."""
    with pytest.raises(TargetError) as caught:
        route_path({"path": path, "root_path": root_path})
    problem = caught.value.problem
    assert (problem.status, problem.code, problem.detail) == (400, "target.invalid", detail)


def test_match_scope_fast_path_and_refusal() -> None:
    """match_scope() finds exact paths under a root_path and raises for an unreadable target."""
    table = RouteTable({"GET /admin": "admin", "/items/{id}": "item"})
    assert table.match_scope({"method": "GET", "path": "/api/admin", "root_path": "/api"}) == (
        "admin"
    )
    assert table.match_scope({"method": "GET", "path": "//items/7/", "root_path": ""}) == "item"
    assert table.match_scope({"method": "POST", "path": "/admin", "root_path": ""}) is None
    for scope in (
        {"method": "GET", "path": "admin"},
        {"method": "GET", "path": "/admin\n"},
        {"method": "GET", "path": "/x/api/admin", "root_path": "/api"},
    ):
        with pytest.raises(TargetError):
            table.match_scope(scope)


@pytest.mark.parametrize(
    "pattern", ["GTE /admin", "get /admin", "Get /admin", "GET|PSOT /x", "+ /x", "+PUR|GE /x"]
)
def test_unknown_methods_are_configuration_errors(pattern: str) -> None:
    """A method that is not registered (a typo, lower case) is refused, naming the pattern."""
    with pytest.raises(ConfigurationError) as caught:
        RouteTable({pattern: 1}, option="rules")
    assert caught.value.option == "rules"
    assert repr(pattern) in caught.value.message


def test_guard_names_the_section_of_a_bad_method() -> None:
    """guard() refuses "GTE /admin" in jwt.rules with the section, option and pattern named."""
    with pytest.raises(ConfigurationError) as caught:
        guard(RecordingApp(), {"jwt": {"secret": SECRET, "rules": {"GTE /admin": ["admin"]}}})
    assert caught.value.option == "jwt.rules"
    assert "'GTE' in route 'GTE /admin' is not a registered HTTP method" in caught.value.message


def test_registered_and_extension_methods() -> None:
    """Registered methods (hyphenated ones too) are accepted; an extension needs '+NAME'."""
    table = RouteTable(
        {"VERSION-CONTROL /r": "vc", "QUERY /r": "query", "+PURGE /r": "purge", "+purge /r": "p"}
    )
    assert [table.match(m, "/r") for m in ("VERSION-CONTROL", "QUERY", "PURGE", "purge")] == [
        "vc",
        "query",
        "purge",
        "p",
    ]
    assert table.match("+PURGE", "/r") is None


@pytest.mark.parametrize("pattern", ["/a\x00b", "/a\nb", "/a\x7f"])
def test_patterns_with_control_characters_are_refused(pattern: str) -> None:
    """A pattern could never match a path with a control character (refused): it is an error."""
    with pytest.raises(ConfigurationError):
        RouteTable({pattern: 1})


# --- each layer alone -----------------------------------------------------------------------


def _body(sent: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(sent[1]["body"])
    return result


LAYERS: dict[str, Callable[[ASGIApp], ASGIApp]] = {
    "jwt": lambda app: JWTAuthMiddleware(
        app, secret=SECRET, default="public", rules={"GET /admin": ["admin"]}
    ),
    "ratelimit": lambda app: RateLimitMiddleware(app, rules={"GET /admin": "1/minute"}),
    "validation": lambda app: ValidationMiddleware(
        app, query={"GET /admin": {"type": "object", "additionalProperties": False}}
    ),
}


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize(
    ("path", "root_path"), [("admin", ""), ("/admin\n", ""), ("/x/api/admin", "/api")]
)
async def test_layers_with_rules_refuse_an_unreadable_target(
    layer: str, path: str, root_path: str
) -> None:
    """JWT, rate limit and validation answer 400 target.invalid and never call the app."""
    app = RecordingApp()
    sent = await Channel().run(LAYERS[layer](app), http_scope(path, root_path=root_path))
    assert sent[0]["status"] == 400
    assert _body(sent)["code"] == "target.invalid"
    assert app.calls == 0


@pytest.mark.parametrize("layer", list(LAYERS))
async def test_layers_refuse_an_unreadable_websocket_target(layer: str) -> None:
    """A websocket handshake to an unreadable path is closed with 1008 before accept."""
    app = RecordingApp()
    sent = await run_websocket(LAYERS[layer](app), {"path": "ws\n"})
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 0


async def test_https_exemption_never_holds_for_an_unreadable_target() -> None:
    """An exempt route reached through an unreadable path is redirected, not served over http."""
    app = RecordingApp()
    layer = HTTPSRedirectMiddleware(app, exempt=["/health"], host="example.com")
    ok = await Channel().run(layer, http_scope("/health", scheme="http"))
    assert ok[0]["status"] == 200
    sent = await Channel().run(layer, http_scope("health", scheme="http"))
    assert sent[0]["status"] == 308
    assert (b"location", b"https://example.com/health") in sent[0]["headers"]
    assert app.calls == 1


async def test_host_exemption_never_holds_for_an_unreadable_target() -> None:
    """A Host-exempt route reached through an unreadable path is refused like any other."""
    app = RecordingApp()
    layer = AllowedHostsMiddleware(app, allowed=["example.com"], exempt=["/health"])
    foreign = [(b"host", b"evil.example")]
    ok = await Channel().run(layer, http_scope("/health", headers=foreign))
    sent = await Channel().run(layer, http_scope("/health\n", headers=foreign))
    assert (ok[0]["status"], sent[0]["status"], app.calls) == (200, 400, 1)


async def test_route_headers_fall_to_the_default_for_an_unreadable_target() -> None:
    """A per-route header policy is not chosen for an unreadable path: the default applies."""
    layer = SecurityHeadersMiddleware(RecordingApp(), rules={"/docs": {"frame_options": None}})

    async def frame_options(path: str) -> bytes | None:
        sent = await Channel().run(layer, http_scope(path))
        return dict(sent[0]["headers"]).get(b"x-frame-options")

    assert [await frame_options(p) for p in ("/docs", "/docs\n", "docs")] == [
        None,
        b"DENY",
        b"DENY",
    ]


async def test_metrics_label_an_unreadable_target_as_no_route() -> None:
    """The metrics layer records an unreadable target under route '*', never raising."""
    seen: list[Decision] = []
    layer = MetricsMiddleware(
        RecordingApp(), layers=["jwt"], routes=["/admin"], otel=False, on_decision=seen.append
    )
    await Channel().run(layer, http_scope("/admin"))
    await Channel().run(layer, http_scope("admin"))
    assert [d.route for d in seen] == ["/admin", "*"]


async def test_metrics_count_a_target_refusal_as_its_own_decision() -> None:
    """A target.invalid refusal is one 'target' decision, never an 'ok' of the layers."""
    seen: list[Decision] = []
    jwt = JWTAuthMiddleware(RecordingApp(), secret=SECRET, rules={"GET /admin": ["admin"]})
    layer = MetricsMiddleware(
        jwt, layers=["jwt"], routes=["/admin"], otel=False, on_decision=seen.append
    )
    await Channel().run(layer, http_scope("admin"))
    assert seen == [Decision("target", "target.invalid", "*", False)]


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("test.target.access")
    caught: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = caught.append  # type: ignore[method-assign,assignment]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield caught
    logger.removeHandler(handler)


async def test_quiet_routes_are_never_quiet_for_an_unreadable_target(
    records: list[logging.LogRecord],
) -> None:
    """An excluded route's success is logged when its path is not read as the app routes it."""
    layer = AccessLogMiddleware(RecordingApp(), logger="test.target.access", exclude=["/health"])
    await Channel().run(layer, http_scope("/health"))
    await Channel().run(layer, http_scope("/health\n"))
    await Channel().run(layer, http_scope("/x/api/health", root_path="/api"))
    assert [orjson.loads(r.getMessage())["path"] for r in records] == [
        "/health\\x0a",  # the log escapes control characters
        "/x/api/health",
    ]


# --- websocket query schemas ------------------------------------------------------------------


async def test_websocket_query_schema_refuses_before_accept() -> None:
    """A handshake whose query fails the route's schema is closed with 1008 before accept."""
    app = RecordingApp()
    layer = ValidationMiddleware(
        app, query={"/ws": {"type": "object", "additionalProperties": False}}
    )
    sent = await run_websocket(layer, {"query_string": b"admin=1"})
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert app.calls == 0


async def test_websocket_query_schema_answers_through_the_http_response_extension() -> None:
    """With websocket.http.response, the refusal is the 422 problem an http request gets."""
    app = RecordingApp()
    layer = ValidationMiddleware(
        app, query={"/ws": {"type": "object", "additionalProperties": False}}
    )
    sent = await run_websocket(
        layer,
        {"query_string": b"admin=1", "extensions": {"websocket.http.response": {}}},
    )
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 422
    assert orjson.loads(sent[1]["body"])["code"] == "validation.invalid_query"
    assert app.calls == 0


async def test_websocket_query_schema_admits_a_valid_query() -> None:
    """A handshake whose query passes the schema reaches the app with the validated query."""
    app = RecordingApp()
    layer = ValidationMiddleware(
        app, query={"/ws": {"type": "object", "properties": {"room": {"type": "string"}}}}
    )
    sent = await run_websocket(layer, {"query_string": b"room=7"})
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.close", "code": 1000},
    ]
    assert app.scopes[0]["state"]["validated_query"] == {"room": "7"}
