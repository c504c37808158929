"""Shared fixtures: a recording ASGI app, an httpx client factory and a raw websocket driver."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from asgi_guard._asgi import ASGIApp, Message, Scope


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingApp:
    """A raw ASGI app that records every scope it is called with and answers 200 ``ok``."""

    def __init__(
        self, body: bytes = b"ok", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.scopes: list[Scope] = []
        self.body = body
        self.headers = headers or [(b"content-type", b"text/plain")]

    @property
    def calls(self) -> int:
        return len(self.scopes)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.scopes.append(dict(scope))
        if scope["type"] == "http":
            await send(
                {"type": "http.response.start", "status": 200, "headers": list(self.headers)}
            )
            await send({"type": "http.response.body", "body": self.body})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})


@pytest.fixture
def app() -> RecordingApp:
    return RecordingApp()


def client_for(
    asgi: ASGIApp, peer: str = "127.0.0.1", base_url: str = "https://testserver"
) -> httpx.AsyncClient:
    """An httpx client that drives ``asgi`` in-process, seen as coming from ``peer``."""
    transport = httpx.ASGITransport(app=asgi, client=(peer, 51000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def run_websocket(
    asgi: ASGIApp,
    scope_extra: dict[str, Any] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[Message]:
    """Drive a websocket handshake through ``asgi``; returns what it sent."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "wss",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": headers or [(b"host", b"testserver")],
        "client": ("127.0.0.1", 51000),
        "server": ("testserver", 443),
        "subprotocols": [],
    }
    scope.update(scope_extra or {})
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await asgi(scope, receive, send)
    return sent


Factory = Callable[..., ASGIApp]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Any:
    """A real redis-server on a free loopback port, for the whole session."""
    from .redis_servers import RedisServer  # here: redis_servers imports this module

    server = RedisServer(None, "--protected-mode", "yes").start()
    yield server.url
    server.stop()


class Channel:
    """The server side of one raw ASGI exchange: feeds ``messages`` to ``receive`` (then
    ``repeat`` forever, or ``http.disconnect``) and records everything the app sends."""

    def __init__(
        self, messages: list[Message] | None = None, repeat: Message | None = None
    ) -> None:
        self.incoming = list(messages or [])
        self.repeat = repeat
        self.sent: list[Message] = []
        self.reads = 0

    async def receive(self) -> Message:
        self.reads += 1
        if self.incoming:
            return self.incoming.pop(0)
        return self.repeat if self.repeat is not None else {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def run(self, asgi: ASGIApp, scope: Scope) -> list[Message]:
        await asgi(scope, self.receive, self.send)
        return self.sent


def http_scope(
    path: str = "/",
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    client: str = "203.0.113.1",
    **extra: Any,
) -> Scope:
    """A minimal http scope for driving a layer directly."""
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("latin-1"),
        "root_path": "",
        "query_string": b"",
        "headers": headers or [],
        "scheme": "https",
        "client": (client, 1234),
    }
    scope.update(extra)
    return scope


@contextlib.contextmanager
def uvicorn_server(app: ASGIApp, http: str = "httptools") -> Iterator[int]:
    """``app`` on a real uvicorn (``http``: ``h11`` or ``httptools``) in a thread, on a free
    loopback port; yields the port and stops the server on exit."""
    import threading
    import time

    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
