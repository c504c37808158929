"""SecurityHeadersMiddleware: the API default set, once, on every response, overridable per route."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_guard import (
    ConfigurationError,
    SecurityHeadersMiddleware,
    build_csp,
    guard,
    inline_script_hashes,
)
from asgi_guard._asgi import Message, Scope

from .conftest import Channel, RecordingApp, client_for, http_scope, run_websocket

pytestmark = pytest.mark.anyio

DEFAULTS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")
APP_HEADERS = [(b"content-type", b"text/plain")]


async def start(asgi: Any, headers: list[tuple[bytes, bytes]] | None = None, **kw: Any) -> Message:
    """The response-start message ``asgi`` sends for one GET /orders."""
    sent = await Channel().run(asgi, http_scope("/orders", headers=headers, **kw))
    return sent[0]


async def test_default_set_after_the_apps_headers() -> None:
    """The API default set is appended once, after the app's own headers, in a fixed order."""
    message = await start(SecurityHeadersMiddleware(RecordingApp()))
    assert message["headers"] == APP_HEADERS + DEFAULTS


@pytest.mark.parametrize("credential", [(b"authorization", b"Bearer x"), (b"cookie", b"session=1")])
async def test_no_store_on_credentialed_requests(credential: tuple[bytes, bytes]) -> None:
    """Cache-Control: no-store is added when the request carried Authorization or a Cookie."""
    message = await start(SecurityHeadersMiddleware(RecordingApp()), [credential])
    assert message["headers"] == APP_HEADERS + DEFAULTS + [NO_STORE]


async def test_apps_own_headers_are_kept() -> None:
    """A header the app set (any case) is neither replaced nor sent twice."""
    own = [
        (b"Cache-Control", b"private, max-age=60"),
        (b"content-security-policy", b"default-src 'self'"),
        (b"X-Frame-Options", b"SAMEORIGIN"),
    ]
    app = RecordingApp(headers=own)
    message = await start(SecurityHeadersMiddleware(app), [(b"authorization", b"Bearer x")])
    assert message["headers"] == [
        *own,
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]


async def test_two_layers_add_once() -> None:
    """Stacked twice, the headers still appear once."""
    stack = SecurityHeadersMiddleware(SecurityHeadersMiddleware(RecordingApp()))
    message = await start(stack, [(b"cookie", b"a=1")])
    assert message["headers"] == APP_HEADERS + DEFAULTS + [NO_STORE]


async def test_headers_given_as_any_iterable() -> None:
    """An app may give its headers as any iterable (ASGI allows it); it is read once."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": iter(APP_HEADERS)})
        await send({"type": "http.response.body", "body": b""})

    message = await start(SecurityHeadersMiddleware(app))
    assert message["headers"] == APP_HEADERS + DEFAULTS


async def test_options_override_and_remove() -> None:
    """Each header can be changed, removed (None, or "" as TOML writes it), or added."""
    layer = SecurityHeadersMiddleware(
        RecordingApp(),
        content_type_options=None,
        frame_options="sameorigin",
        content_security_policy={"default-src": ["'self'"], "img-src": ["'self'", "data:"]},
        referrer_policy="no-referrer, strict-origin-when-cross-origin",
        cross_origin_resource_policy="",
        cross_origin_opener_policy="same-origin",
        cross_origin_embedder_policy="require-corp",
        permissions_policy={
            "camera": [],
            "geolocation": ["self", "https://maps.example"],
            "fullscreen": "*",
        },
        cache_control="no-store, max-age=0",
        extra={"X-Permitted-Cross-Domain-Policies": "none"},
    )
    message = await start(layer, [(b"authorization", b"Bearer x")])
    assert message["headers"] == [
        *APP_HEADERS,
        (b"x-frame-options", b"SAMEORIGIN"),
        (b"content-security-policy", b"default-src 'self'; img-src 'self' data:"),
        (b"referrer-policy", b"no-referrer, strict-origin-when-cross-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-embedder-policy", b"require-corp"),
        (
            b"permissions-policy",
            b'camera=(), geolocation=(self "https://maps.example"), fullscreen=*',
        ),
        (b"x-permitted-cross-domain-policies", b"none"),
        (b"cache-control", b"no-store, max-age=0"),
    ]


async def test_nothing_to_add_passes_send_through() -> None:
    """With every header off, the app's send is not wrapped and its headers are untouched."""
    off = dict.fromkeys(
        [
            "content_type_options",
            "frame_options",
            "content_security_policy",
            "referrer_policy",
            "cross_origin_resource_policy",
            "cache_control",
        ]
    )
    message = await start(SecurityHeadersMiddleware(RecordingApp(), **off))
    assert message["headers"] == APP_HEADERS


async def test_route_rules_override_per_route() -> None:
    """A rule gives a route its own headers; other routes keep the defaults."""
    docs_csp = "default-src 'none'; script-src 'self'; frame-ancestors 'none'"
    layer = SecurityHeadersMiddleware(
        RecordingApp(),
        rules={
            "GET /docs": {"content_security_policy": docs_csp, "extra": {"x-docs": "1"}},
            "/files/{rest:path}": {"cross_origin_resource_policy": "cross-origin"},
        },
    )
    docs = await Channel().run(layer, http_scope("/docs"))
    assert dict(docs[0]["headers"])[b"content-security-policy"] == docs_csp.encode()
    assert dict(docs[0]["headers"])[b"x-docs"] == b"1"
    files = await Channel().run(layer, http_scope("/files/a/b.png"))
    assert dict(files[0]["headers"])[b"cross-origin-resource-policy"] == b"cross-origin"
    other = await Channel().run(layer, http_scope("/docs", method="POST"))
    assert other[0]["headers"] == APP_HEADERS + DEFAULTS


async def test_websocket_http_response_gets_the_headers() -> None:
    """A handshake refused through websocket.http.response carries them; an accept is untouched."""

    async def refusing(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": APP_HEADERS})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    ext: dict[str, Any] = {"extensions": {"websocket.http.response": {}}}
    sent = await run_websocket(SecurityHeadersMiddleware(refusing), ext)
    assert sent[0]["headers"] == APP_HEADERS + DEFAULTS
    sent = await run_websocket(SecurityHeadersMiddleware(RecordingApp()), ext)
    assert sent == [{"type": "websocket.accept"}, {"type": "websocket.close", "code": 1000}]


async def test_lifespan_passes_through() -> None:
    """Lifespan scopes reach the app untouched."""
    app = RecordingApp()
    await SecurityHeadersMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert app.scopes == [{"type": "lifespan"}]


GUARDED_CONFIG: dict[str, Any] = {
    "headers": {},
    "rate_limit": {"limit": "1/minute"},
    "jwt": {"secret": "s" * 40, "rules": {"/open": "public"}},
    "validation": {"schemas": {"POST /open": {"type": "object"}}},
}


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/closed", {}, 401),
        ("GET", "/closed", {"authorization": "Bearer not-a-token"}, 401),
        ("POST", "/open", {"content-type": "application/json"}, 422),
    ],
)
async def test_inner_refusals_carry_the_headers(
    method: str, path: str, headers: dict[str, str], status: int
) -> None:
    """Refusals by the layers inside it (401, 422, 429) carry the headers, exactly once."""
    app = RecordingApp()
    stack = guard(app, GUARDED_CONFIG, environ={})
    async with client_for(stack) as client:
        response = await client.request(method, path, headers=headers, content=b"[1]")
        assert response.status_code == status
        for name, value in DEFAULTS:
            assert response.headers.get_list(name.decode()) == [value.decode()]
        limited = await client.request(method, path, headers=headers, content=b"[1]")
    assert limited.status_code == 429
    assert limited.headers.get_list("x-frame-options") == ["DENY"]
    assert app.calls == 0


async def test_routes_table_and_toml_config(tmp_path: Path) -> None:
    """[headers] and routes[].headers in TOML: "" removes a header, a route gets its own CSP."""
    path = tmp_path / "guard.toml"
    path.write_text(
        "[headers]\n"
        'referrer_policy = ""\n'
        "[headers.content_security_policy]\n"
        "default-src = [\"'none'\"]\n"
        "frame-ancestors = [\"'none'\"]\n"
        "[[routes]]\n"
        'path = "GET /docs"\n'
        "headers = { content_security_policy = \"default-src 'self'\" }\n"
    )
    stack = guard(RecordingApp(), path, environ={})
    async with client_for(stack) as client:
        api = await client.get("/orders")
        docs = await client.get("/docs")
    assert "referrer-policy" not in api.headers
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert docs.headers["content-security-policy"] == "default-src 'self'"
    assert docs.headers["x-frame-options"] == "DENY"


def test_route_headers_need_the_section() -> None:
    """A route's headers without a [headers] section is a configuration error."""
    with pytest.raises(ConfigurationError, match=r"routes\[0\]\.headers: needs a \[headers\]"):
        guard(RecordingApp(), {"routes": [{"path": "/docs", "headers": {}}]}, environ={})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"frame_options": "ALLOW-FROM https://a.example"}, "frame_options: 'ALLOW-FROM"),
        ({"content_type_options": "sniff"}, "content_type_options"),
        ({"referrer_policy": "never"}, "referrer_policy"),
        ({"cross_origin_resource_policy": "same-host"}, "cross_origin_resource_policy"),
        ({"cross_origin_opener_policy": "deny"}, "cross_origin_opener_policy"),
        ({"cross_origin_embedder_policy": "require"}, "cross_origin_embedder_policy"),
        ({"cache_control": "no-store\r\nSet-Cookie: a=1"}, "cache_control"),
        ({"content_security_policy": "default-src 'none'\n"}, "content_security_policy"),
        ({"content_security_policy": {"default-src": ["self"]}}, "must be quoted"),
        ({"content_security_policy": {"default-src": ["'none'", "'self'"]}}, "'none' with"),
        ({"content_security_policy": {"script-src": ["a.example;b"]}}, "separator"),
        ({"content_security_policy": {"Script Src": ["'self'"]}}, "directive name"),
        ({"content_security_policy": {}}, "has no directives"),
        ({"content_security_policy": ";"}, "has no directives"),
        ({"content_security_policy": "default-src self"}, "must be quoted"),
        ({"content_security_policy": "img-src 'self'; img-src data:"}, "directive twice"),
        ({"content_security_policy": "default-src 'self', img-src *"}, "separator"),
        ({"extra": {"Strict-Transport-Security": "max-age=1"}}, "is not a header this layer"),
        ({"content_security_policy": {"img-src": ["data:\n"]}}, "is not a source expression"),
        ({"permissions_policy": {"Camera Roll": []}}, "is not a feature name"),
        ({"permissions_policy": {"camera": ["none"]}}, "permissions_policy['camera']"),
        ({"extra": {"Content-Length": "0"}}, "extra['Content-Length']"),
        ({"extra": {"X-Frame-Options": "DENY"}}, "has an option of its own"),
        ({"extra": {"bad name": "x"}}, "extra['bad name']"),
        ({"extra": {"x-a": "line\nbreak"}}, "not a valid header value"),
        ({"rules": {"/docs": {"csp": "x"}}}, "unknown option 'csp'"),
        ({"rules": {"/docs": "x"}}, "must be a table"),
        ({"rules": {"/docs": {"frame_options": "ALLOW"}}}, "rules['/docs'].frame_options"),
        ({"rules": {"docs": {}}}, "must start with '/'"),
    ],
)
def test_bad_options_refused(options: dict[str, Any], message: str) -> None:
    """An option a browser would read otherwise than meant fails at construction, named."""
    with pytest.raises(ConfigurationError) as info:
        SecurityHeadersMiddleware(RecordingApp(), **options)
    assert message in str(info.value)


def test_csp_builder() -> None:
    """build_csp joins directives and sources in order, a lone string being one source."""
    assert (
        build_csp({"default-src": "'none'", "script-src": ["'self'", "'sha256-AAAA'"]})
        == "default-src 'none'; script-src 'self' 'sha256-AAAA'"
    )
    with pytest.raises(ConfigurationError, match="given twice"):
        build_csp(_Twice())


class _Twice(dict[str, list[str]]):
    """A mapping that yields one directive twice (as a hand-made mapping could)."""

    def items(self) -> Any:
        return [("img-src", ["'self'"]), ("img-src", ["data:"])]


def test_inline_script_hashes_of_fastapi_docs() -> None:
    """The hashes are those of the inline scripts only, as CSP computes them."""
    from fastapi.openapi.docs import get_swagger_ui_html

    html = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="API").body)
    hashes = inline_script_hashes(html)
    assert len(hashes) == 1
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", hashes[0])
    assert inline_script_hashes("<script>a</script><script src=x></script>") == [
        "'sha256-ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs='"
    ]


async def test_fastapi_docs_route_gets_its_csp() -> None:
    """FastAPI's /docs gets the documented CSP while its JSON routes keep the API default."""
    from fastapi import FastAPI
    from fastapi.openapi.docs import get_swagger_ui_html

    api = FastAPI()

    @api.get("/items")
    def items() -> list[int]:
        return [1]

    # The page exactly as FastAPI builds it for /docs (the hash is of these bytes).
    docs_html = bytes(
        get_swagger_ui_html(
            openapi_url=str(api.openapi_url),
            title=f"{api.title} - Swagger UI",
            oauth2_redirect_url=api.swagger_ui_oauth2_redirect_url,
            init_oauth=api.swagger_ui_init_oauth,
            swagger_ui_parameters=api.swagger_ui_parameters,
        ).body
    )
    csp = build_csp(
        {
            "default-src": ["'none'"],
            "script-src": ["https://cdn.jsdelivr.net", *inline_script_hashes(docs_html)],
            "style-src": ["https://cdn.jsdelivr.net"],
            "img-src": ["https://fastapi.tiangolo.com", "data:"],
            "connect-src": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    )
    stack = SecurityHeadersMiddleware(api, rules={"GET /docs": {"content_security_policy": csp}})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack), base_url="https://testserver"
    ) as client:
        docs = await client.get("/docs")
        data = await client.get("/items")
    assert docs.status_code == 200
    assert docs.text == docs_html.decode()  # the hashed page is the one served
    assert docs.headers["content-security-policy"] == csp
    assert data.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


async def test_litestar_schema_pages_get_their_csp() -> None:
    """Litestar's schema pages get the rule's CSP under one pattern; its API keeps the default."""
    from litestar import Litestar, get

    @get("/items", sync_to_thread=False)
    def items() -> list[int]:
        return [1]

    schema_csp = "default-src 'none'; script-src 'unsafe-inline'; frame-ancestors 'none'"
    stack = SecurityHeadersMiddleware(
        Litestar([items], logging_config=None),  # type: ignore[arg-type]
        rules={"GET /schema/{rest:path}": {"content_security_policy": schema_csp}},
    )
    async with client_for(stack) as client:
        pages = [await client.get(p) for p in ("/schema", "/schema/swagger", "/schema/redoc")]
        api = await client.get("/items")
    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers.get_list("content-security-policy") == [schema_csp]
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
