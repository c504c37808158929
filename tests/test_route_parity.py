"""Route parity: the handler that serves a request was guarded by that handler's own policy.

The same API runs on Starlette, FastAPI and Litestar behind ``guard()`` (tests/parity_apps.py,
whose default policy is ``public``). Target and method variants are sent as raw bytes through a
real uvicorn with both HTTP parsers (``h11`` and ``httptools``), and as ASGI scopes straight to
the apps for what a server could pass through (a ``root_path``, control characters, targets
no parser builds); hypothesis adds generated paths. The oracle is always the handler that ran
(its ``x-ran`` header): it must never be a protected one unless the request met its policy.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_guard import guard

from .conftest import free_port
from .integrations.tokens import token
from .parity_apps import ALL_SCOPES, AUDIENCE, CONFIG, FRAMEWORKS, ORDERS_LIMIT, PROTECTED

CONFIG_BY_CLIENT = {**CONFIG, "rate_limit": {"key": "header:x-client"}}
_clients = itertools.count()


def _client() -> str:
    """A fresh rate-limit identity, so one variant's hits never refuse another's."""
    return f"x-client: c{next(_clients)}"


def _auth() -> str:
    return f"authorization: Bearer {token(AUDIENCE, ALL_SCOPES)}"


# --- a real uvicorn, raw bytes on the wire ----------------------------------------------------


class Server:
    """A guarded app behind a real uvicorn in a thread, with one HTTP parser (and TLS when
    given a certificate and key)."""

    def __init__(self, framework: str, http: str, tls: tuple[Path, Path] | None = None) -> None:
        import uvicorn

        self.framework = framework
        self.port = free_port()
        self.tls: ssl.SSLContext | None = None
        if tls is not None:
            self.tls = ssl.create_default_context(cafile=str(tls[0]))
        config = uvicorn.Config(
            guard(FRAMEWORKS[framework](), CONFIG_BY_CLIENT),
            host="127.0.0.1",
            port=self.port,
            http=http,
            ws="websockets-sansio",
            lifespan="off",
            log_level="critical",
            access_log=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def send(
        self,
        method: str,
        target: str,
        headers: tuple[str, ...] = (),
        body: bytes = b"",
        websocket: bool = False,
    ) -> tuple[int, str | None]:
        """Send one request as raw bytes; the status and the handler that ran (or None).

        A websocket handshake's answer is complete at its blank line; others at EOF.
        """
        lines = [f"{method} {target} HTTP/1.1", "host: 127.0.0.1", "connection: close", *headers]
        if body or method in ("POST", "PUT", "post"):
            lines.append(f"content-length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as plain,
            plain
            if self.tls is None
            else self.tls.wrap_socket(plain, server_hostname="127.0.0.1") as sock,
        ):
            sock.sendall(raw)
            data = b""
            while not (websocket and b"\r\n\r\n" in data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head = data.partition(b"\r\n\r\n")[0]
        match = re.match(rb"HTTP/1\.1 (\d{3})", head)
        assert match is not None, data[:200]
        ran = re.search(rb"^x-ran: *([\w-]+)", head, re.M | re.I)
        return int(match.group(1)), ran.group(1).decode() if ran else None


@pytest.fixture(
    scope="module",
    params=[(f, h) for f in FRAMEWORKS for h in ("h11", "httptools")],
    ids=lambda p: "-".join(p),
)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """One uvicorn per framework and parser, started once for the module."""
    running = Server(*request.param)
    yield running
    running.stop()


GET_TARGETS = [
    # no leading slash, absolute and asterisk forms
    "admin", "http://127.0.0.1/admin", "HTTP://127.0.0.1/admin", "//127.0.0.1/admin", "*",
    # slashes
    "//admin", "/admin/", "/admin//", "///admin///", "/" * 3000 + "admin",
    # case, params, encodings
    "/ADMIN", "/Admin", "/admin;x", "/admin;", "/%61dmin", "/admin%2F", "/%2Fadmin",
    "/%2F%2Fadmin", "/admin%", "/admin%zz", "/admin%20", "/admin%C3%A9",
    # control characters
    "/admin%00", "/ad%00min", "/admin%0A", "/admin%0D", "/admin%0D%0A", "/admin%09", "/admin%7F",
    # dot segments
    "/x/../admin", "/./admin", "/%2e/admin", "/%2e%2e/admin", "/admin/.", "/admin/..",
    "/files/../admin", "/files/%2e%2e/admin",
    # other protected routes
    "/items/1", "items/1", "//items/1", "/items//1", "/items/1/", "/items/1%0A", "/items/%00",
    "/items/..", "/items/.", "/items/1;x", "/files/a", "/files", "/files/", "files/a",
    "//files/a", "/files%2Fa", "/sub/x", "/sub", "/sub/", "//sub/x", "/sub//x", "sub/x",
    "/sub%2Fx", "/sub%0A", "/sub/" + "x" * 6000, "/items/" + "1" * 6000,
]  # fmt: skip
GET_METHODS: list[tuple[str, tuple[str, ...]]] = [
    ("GET", ()),
    ("HEAD", ()),
    ("OPTIONS", ()),
    ("get", ()),
    ("POST", ("x-http-method-override: GET",)),
]
ORDER_TARGETS = [
    "/orders", "orders", "//orders", "/orders/", "/orders//", "/orders%0A", "/orders%00",
    "/orders;x", "/ORDERS", "/orders%2F", "/x/../orders", "/./orders", "http://127.0.0.1/orders",
]  # fmt: skip
ORDER_METHODS: list[tuple[str, tuple[str, ...]]] = [
    ("POST", ()),
    ("post", ()),
    ("PUT", ("x-http-method-override: POST",)),
    ("GET", ("x-http-method-override: POST", "x-method-override: POST")),
]
VALID_ORDER = b'{"qty": 1}'
INVALID_ORDER = b'{"qty": 99}'


def test_canonical_targets_reach_their_handlers(server: Server) -> None:
    """With every scope and valid input, each canonical target is served by its handler."""
    auth = _auth()
    for target, expected in [
        ("/", "root"),
        ("/admin", "admin"),
        ("/items/1", "item"),
        ("/files/a/b", "files"),
        ("/sub/x", "sub"),
    ]:
        assert server.send("GET", target, (auth, _client())) == (200, expected)
    status, ran = server.send(
        "POST", "/orders", (auth, _client(), "content-type: application/json"), VALID_ORDER
    )
    assert (status, ran) == (201 if server.framework == "litestar" else 200, "orders")


def test_no_token_reaches_no_protected_handler(server: Server) -> None:
    """Without a token, no target or method variant is served by a protected handler."""
    wrong = [
        (method, target, status, ran)
        for target in GET_TARGETS
        for method, extra in GET_METHODS
        for status, ran in [server.send(method, target, (_client(), *extra))]
        if ran in PROTECTED
    ]
    wrong += [
        (method, target, status, ran)
        for target in ORDER_TARGETS
        for method, extra in ORDER_METHODS
        for status, ran in [
            server.send(
                method,
                target,
                (_client(), "content-type: application/json", *extra),
                VALID_ORDER,
            )
        ]
        if ran in PROTECTED
    ]
    assert wrong == []


def _issue_examples(server: Server) -> list[tuple[int, str | None]]:
    """The attacks of the report that asked for route parity, as an attacker sent them."""
    without_admin = f"authorization: Bearer {token(AUDIENCE, 'items files')}"
    return [
        # a token without the admin scope
        server.send("GET", "admin", (without_admin, _client())),
        # a body the schema forbids, no write scope, past the route's limit
        *[
            server.send(
                "POST",
                "orders",
                (without_admin, _client(), "content-type: application/json"),
                INVALID_ORDER,
            )
            for _ in range(ORDERS_LIMIT + 1)
        ],
        # no token at all, under jwt.default = "public"
        server.send("GET", "admin", (_client(),)),
        # Starlette and FastAPI: a newline after the path
        server.send("GET", "/admin%0A", (_client(),)),
    ]


def test_issue_examples_are_refused(server: Server) -> None:
    """Each attack is answered 400 before any handler, with either parser."""
    assert _issue_examples(server) == [(400, None)] * (ORDERS_LIMIT + 4)


def test_issue_examples_are_refused_over_tls(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Over TLS the h11 parser passes the same targets on, and they are refused the same way."""
    from .test_cli import _self_signed

    tls = Server("litestar", "h11", _self_signed(tmp_path_factory.mktemp("tls")))
    try:
        assert _issue_examples(tls) == [(400, None)] * (ORDERS_LIMIT + 4)
    finally:
        tls.stop()


def test_orders_schema_holds_on_every_variant(server: Server) -> None:
    """A body the orders schema refuses never reaches the orders handler, whatever the target."""
    auth = _auth()
    ran_orders = [
        (method, target)
        for target in ORDER_TARGETS
        for method, extra in ORDER_METHODS
        if server.send(
            method,
            target,
            (auth, _client(), "content-type: application/json", *extra),
            INVALID_ORDER,
        )[1]
        == "orders"
    ]
    assert ran_orders == []


def test_orders_limit_holds_on_every_variant(server: Server) -> None:
    """Once a client has used the orders limit, no target variant reaches the handler again."""
    headers = (_auth(), _client(), "content-type: application/json")
    served = [server.send("POST", "/orders", headers, VALID_ORDER) for _ in range(ORDERS_LIMIT)]
    assert [ran for _, ran in served] == ["orders"] * ORDERS_LIMIT
    assert server.send("POST", "/orders", headers, VALID_ORDER) == (429, None)
    ran_orders = [
        (method, target)
        for target in ORDER_TARGETS
        for method, extra in ORDER_METHODS
        if server.send(method, target, (*headers, *extra), VALID_ORDER)[1] == "orders"
    ]
    assert ran_orders == []


def test_item_query_schema_holds_on_every_variant(server: Server) -> None:
    """A query the item route's schema refuses never reaches the item handler."""
    auth = _auth()
    assert server.send("GET", "/items/1", (auth, _client())) == (200, "item")
    ran_item = [
        (method, target)
        for target in GET_TARGETS
        if "items" in target
        for method, extra in GET_METHODS
        if server.send(method, target + "?bad=1", (auth, _client(), *extra))[1] == "item"
    ]
    assert ran_item == []


WS_TARGETS = [
    "/ws", "ws", "//ws", "/ws/", "/ws//", "/ws%0A", "/ws%00", "/WS", "/ws;x", "/x/../ws",
    "/%77s", "http://127.0.0.1/ws",
]  # fmt: skip


WIRE_SEGMENTS = st.sampled_from(
    ["admin", "orders", "items", "1", "files", "sub", "x", "ADMIN", "", ".", "..", "%2e%2e",
     "%2F", "%2fadmin", "admin%00", "admin%0A", "admin%0d", "admin;x", "%61dmin", "admin%20"]
)  # fmt: skip


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lead=st.sampled_from(["/", "", "//"]),
    segments=st.lists(WIRE_SEGMENTS, max_size=4),
    method=st.sampled_from(["GET", "HEAD", "POST", "get"]),
)
def test_generated_targets_on_the_wire_reach_no_protected_handler_without_a_token(
    server: Server, lead: str, segments: list[str], method: str
) -> None:
    """Generated targets, percent-encoded as a client may send them, never reach a protected
    handler without a token, through either parser."""
    target = lead + "/".join(segments)
    status, ran = server.send(
        method, target or "/", (_client(),), b"{}" if method == "POST" else b""
    )
    assert ran not in PROTECTED, (method, target, status)


def _handshake(server: Server, target: str, *headers: str) -> int:
    """A websocket opening handshake (RFC 6455 section 4.1); the answer's status."""
    return server.send(
        "GET",
        target,
        (
            "upgrade: websocket",
            "connection: upgrade",
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version: 13",
            *headers,
        ),
        websocket=True,
    )[0]


def test_websocket_handshakes_are_held_to_the_ws_policy(server: Server) -> None:
    """A handshake is accepted (101) only with the ws scope and a query the ws schema allows."""
    auth = _auth()
    assert _handshake(server, "/ws", auth, _client()) == 101
    accepted = [
        (target, query, with_token)
        for target in WS_TARGETS
        for query, with_token in (("", False), ("?bad=1", True))
        if _handshake(server, target + query, *((auth,) if with_token else ()), _client()) == 101
    ]
    assert accepted == []


# --- straight to the apps as ASGI: what a server could pass through -----------------------------


GUARDED = {name: guard(factory(), CONFIG) for name, factory in FRAMEWORKS.items()}


async def _asgi(app: Any, path: str, root_path: str = "", method: str = "GET") -> tuple[int, str]:
    """Call ``app`` with an http scope for ``path``; the status and the handler that ran."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 51000),
        "server": ("testserver", 80),
    }
    status = 0
    ran = ""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status, ran
        if message["type"] == "http.response.start":
            status = message["status"]
            ran = dict(message.get("headers", [])).get(b"x-ran", b"").decode()

    await app(scope, receive, send)
    return status, ran


@pytest.mark.anyio
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize(
    ("root_path", "path"),
    [
        ("", "admin"),  # Litestar serves /admin
        ("", "sub/x"),
        ("", "/admin\x00"),
        ("", "/admin\n"),  # Starlette and FastAPI serve /admin
        ("", "/items/1\n"),
        ("", "/sub\n"),
        ("/api", "/x/api/admin"),  # Litestar cuts at the first "/api": /admin
        ("/api", "/apiadmin"),  # Litestar: "admin", served as /admin
        ("/api/", "/api/admin"),  # Litestar: "admin"
        ("/api", "/api\n/admin"),
        ("/sub", "/x/sub/x"),
    ],
)
async def test_unreadable_targets_are_refused_before_the_app(
    framework: str, root_path: str, path: str
) -> None:
    """A target the frameworks read differently is a 400 before any handler runs."""
    assert await _asgi(GUARDED[framework], path, root_path) == (400, "")


@pytest.mark.anyio
@pytest.mark.parametrize("framework", list(FRAMEWORKS))
@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        ("/api", "/api/admin", 401),  # the prefix, stripped by every framework
        ("/api", "/admin", 401),  # no /api in the path: left as it is by every framework
        ("/api", "/api//admin", 401),
        ("/api", "/api/sub/x", 401),
        ("/", "/admin", 401),  # under "/", all three read /admin
        ("/api", "/api/x/api/admin", 404),  # the prefix is stripped, the rest routes nowhere
        ("/api", "/api", 200),  # the root
        ("", "", 200),
    ],
)
async def test_root_path_prefixes_are_read_as_the_frameworks_read_them(
    framework: str, root_path: str, path: str, expected: int
) -> None:
    """A root_path that prefixes the path (or is absent from it) selects the route's policy."""
    status, ran = await _asgi(GUARDED[framework], path, root_path)
    assert ran not in PROTECTED
    if expected != 200:
        assert (status, ran) == (expected, "")
    else:
        assert ran in ("root", "")  # Starlette redirects "" to "/", Litestar serves the root


SEGMENTS = st.sampled_from(
    ["admin", "orders", "items", "1", "files", "sub", "x", "api", "ADMIN", "", ".", "..",
     "admin;x", "admin\x00", "admin\n", "admin\r", "%2F", "\t", " ", "\x7f", "é"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lead=st.sampled_from(["/", "", "//"]),
    segments=st.lists(SEGMENTS, max_size=5),
    root_path=st.sampled_from(["", "/api", "/x", "/api/"]),
    prefix=st.booleans(),
    method=st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "get"]),
)
def test_generated_paths_never_reach_a_protected_handler_without_a_token(
    lead: str, segments: list[str], root_path: str, prefix: bool, method: str
) -> None:
    """For generated paths and root paths, no framework serves a protected handler unguarded."""
    path = lead + "/".join(segments)
    if prefix:
        path = root_path + path

    async def run() -> list[tuple[str, int, str]]:
        results = []
        for name, app in GUARDED.items():
            status, ran = await _asgi(app, path, root_path, method)
            results.append((name, status, ran))
        return results

    wrong = [r for r in asyncio.run(run()) if r[2] in PROTECTED]
    assert wrong == []
