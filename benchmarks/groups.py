"""The benchmark groups: the floor, each layer alone, the whole stack, and the peers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgi_guard import HTTPSRedirectMiddleware, ProxyHeadersMiddleware, RouteTable

from .harness import Case, Group, Scope

HEADERS = [
    (b"host", b"api.example.com"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"application/json"),
]


def scope_factory(
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    path: str = "/items",
    scheme: str = "https",
    client: str = "203.0.113.7",
) -> Callable[[], Scope]:
    """A fresh scope per request (layers may rewrite it), sharing the immutable parts."""
    hdrs = HEADERS + (headers or [])
    raw = path.encode()

    def make() -> Scope:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": scheme,
            "path": path,
            "raw_path": raw,
            "root_path": "",
            "query_string": b"",
            "headers": hdrs,
            "client": (client, 50000),
            "server": ("127.0.0.1", 8000),
        }

    return make


_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json")],
}
_BODY = {"type": "http.response.body", "body": b'{"ok":true}'}


async def raw_app(scope: Scope, receive: Any, send: Any) -> None:
    """The baseline: a raw ASGI app answering a small JSON body."""
    await send(dict(_START))
    await send(_BODY)


async def raw_app_reading_body(scope: Scope, receive: Any, send: Any) -> None:
    """The baseline for body-reading layers: reads the whole body first."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(dict(_START))
    await send(_BODY)


class Empty:
    """An empty pass-through layer: the floor cost of one more ASGI hop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _nest(n: int) -> Any:
    app: Any = raw_app
    for _ in range(n):
        app = Empty(app)
    return app


def floor() -> Group:
    get = scope_factory()
    return Group(
        "floor",
        [Case("raw ASGI app", raw_app, get)]
        + [Case(f"{n} empty layers", _nest(n), get) for n in (1, 3, 5)],
        "What an ASGI hop costs on this machine.",
    )


def proxy_layer() -> Group:
    get = scope_factory(
        [(b"x-forwarded-for", b"198.51.100.23"), (b"x-forwarded-proto", b"https")],
        scheme="http",
        client="10.0.0.1",
    )
    fwd = scope_factory(
        [(b"forwarded", b"for=198.51.100.23;proto=https")], scheme="http", client="10.0.0.1"
    )
    return Group(
        "layer:proxy",
        [
            Case("raw ASGI app", raw_app, get),
            Case(
                "ProxyHeaders x-forwarded (trusted peer)",
                ProxyHeadersMiddleware(raw_app, trusted=["10.0.0.0/8"]),
                get,
            ),
            Case(
                "ProxyHeaders forwarded (trusted peer)",
                ProxyHeadersMiddleware(raw_app, trusted=["10.0.0.0/8"], mode="forwarded"),
                fwd,
            ),
        ],
    )


def https_layer() -> Group:
    get = scope_factory()
    return Group(
        "layer:https",
        [
            Case("raw ASGI app", raw_app, get),
            Case("HTTPSRedirect https pass-through + HSTS", HTTPSRedirectMiddleware(raw_app), get),
            Case(
                "HTTPSRedirect http -> 308",
                HTTPSRedirectMiddleware(raw_app),
                scope_factory(scheme="http"),
            ),
        ],
    )


def routes() -> Group:
    table = RouteTable(
        {f"/r{i}/{{id}}": i for i in range(50)}
        | {f"/static/{i}": i for i in range(50)}
        | {"/items": 1}
    )

    async def nothing() -> None:
        return None

    async def exact() -> None:
        table.match("GET", "/items")

    async def param() -> None:
        table.match("GET", "/r42/17")

    return Group(
        "routes",
        [
            Case("empty coroutine", call=nothing),
            Case("exact path", call=exact),
            Case("one-parameter path", call=param),
        ],
        "Route-table lookups among 101 patterns (overhead = cost of a lookup).",
    )


def build_groups() -> list[Group]:
    return [floor(), proxy_layer(), https_layer(), routes()]
