"""Proxies as deployed: Traefik, nginx and Envoy header shapes, unix-socket peers, real uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect, unix_connect
from websockets.exceptions import InvalidStatus

from asgi_guard import ConfigurationError, HTTPSRedirectMiddleware, ProxyHeadersMiddleware, guard

from .conftest import Channel, RecordingApp, run_websocket
from .servers import uvicorn_server

pytestmark = pytest.mark.anyio

CLIENT = "198.51.100.7"
#: What Traefik adds to a websocket upgrade it received over TLS.
TRAEFIK_WSS = {
    "x-forwarded-for": CLIENT,
    "x-forwarded-host": "app.example",
    "x-forwarded-port": "443",
    "x-forwarded-proto": "wss",
    "x-forwarded-server": "traefik-7d9f",
    "x-real-ip": CLIENT,
}
#: What nginx sends with the usual proxy_set_header lines, for a request it got over TLS.
NGINX_HTTPS = {
    "x-real-ip": CLIENT,
    "x-forwarded-for": CLIENT,
    "x-forwarded-proto": "https",
}


async def whoami(request: Request) -> JSONResponse:
    client = request.client
    return JSONResponse({"client": client.host if client else None, "scheme": request.url.scheme})


async def websocket_whoami(websocket: WebSocket) -> None:
    await websocket.accept()
    client = websocket.client
    await websocket.send_json(
        {"client": client.host if client else None, "scheme": websocket.url.scheme}
    )
    await websocket.close()


def guarded(trusted: list[str], **sections: Any) -> Any:
    """A Starlette app behind the guard with proxies, HTTPS and any other sections."""
    app = Starlette(routes=[Route("/whoami", whoami), WebSocketRoute("/ws", websocket_whoami)])
    return guard(app, {"proxy": {"trusted": trusted}, "https": {}, **sections})


def uds_client(path: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=path), base_url="http://app.example"
    )


# -- unix sockets, behind nginx ------------------------------------------------------------


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_nginx_on_unix_socket_https_is_served_not_redirected(http: str) -> None:
    """Behind nginx on a unix socket with trusted=["unix"], https requests reach the app."""
    async with (
        uvicorn_server(guarded(["unix"]), uds=True, http=http) as path,
        uds_client(path) as client,
    ):
        response = await client.get("/whoami", headers=NGINX_HTTPS)
    assert response.status_code == 200
    assert orjson.loads(response.content) == {"client": CLIENT, "scheme": "https"}
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_unix_socket_clients_get_their_own_rate_limit_buckets() -> None:
    """Clients behind a unix-socket proxy are counted apart, not in one shared bucket."""
    app = guarded(["unix"], rate_limit={"limit": "2/minute"})
    async with uvicorn_server(app, uds=True) as path, uds_client(path) as client:
        statuses = []
        for who in ("198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.1"):
            headers = {**NGINX_HTTPS, "x-forwarded-for": who, "x-real-ip": who}
            statuses.append((await client.get("/whoami", headers=headers)).status_code)
    assert statuses == [200, 200, 200, 429]


async def test_unix_socket_peer_is_not_trusted_unless_listed() -> None:
    """The default trusted list names no socket: a unix peer's headers are ignored (redirect)."""
    async with (
        uvicorn_server(guarded(["127.0.0.1", "::1"]), uds=True) as path,
        uds_client(path) as client,
    ):
        response = await client.get("/whoami", headers=NGINX_HTTPS)
    assert response.status_code == 308
    assert response.headers["location"] == "https://app.example/whoami"


async def test_unix_path_trusts_only_that_socket(tmp_path: Path) -> None:
    """trusted=["unix:PATH"] honours peers of the socket at PATH, and of no other socket."""
    path = str(tmp_path / "app.sock")
    statuses = []
    for trusted in (f"unix:{path}", f"unix:{tmp_path / 'other.sock'}"):
        async with (
            uvicorn_server(guarded([trusted]), uds=True, socket=path),
            uds_client(path) as client,
        ):
            statuses.append((await client.get("/whoami", headers=NGINX_HTTPS)).status_code)
    assert statuses == [200, 308]


def test_asgi_guard_serve_on_a_unix_socket(tmp_path: Path) -> None:
    """The documented `asgi-guard serve ... --uds` trusts nginx on the socket with "unix"."""
    (tmp_path / "myapi.py").write_text(
        "async def app(scope, receive, send):\n"
        '    body = f\'{scope["client"][0]} {scope["scheme"]}\'.encode()\n'
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
    )
    (tmp_path / "guard.toml").write_text('[proxy]\ntrusted = ["unix"]\n\n[https]\n')
    path = str(tmp_path / "app.sock")
    command = [sys.executable, "-m", "asgi_guard", "serve", "myapi:app", "--uds", path]
    server = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            if os.path.exists(path) or server.poll() is not None:
                break
            time.sleep(0.05)
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport, base_url="http://app.example") as client:
            served = client.get("/orders", headers=NGINX_HTTPS)
            plain = client.get("/orders")
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (served.status_code, served.text) == (200, f"{CLIENT} https")
    assert (plain.status_code, plain.headers["location"]) == (308, "https://app.example/orders")


# -- websockets, behind Traefik ----------------------------------------------------------


@pytest.mark.parametrize("uds", [True, False])
async def test_traefik_wss_websocket_is_accepted(uds: bool) -> None:
    """Traefik's X-Forwarded-Proto: wss on a websocket upgrade is a secure websocket."""
    trusted = ["unix"] if uds else ["127.0.0.1"]
    async with uvicorn_server(guarded(trusted), uds=uds) as where:
        if uds:
            opened = unix_connect(where, "ws://app.example/ws", additional_headers=TRAEFIK_WSS)
        else:
            opened = connect(f"ws://{where}/ws", additional_headers=TRAEFIK_WSS)
        async with opened as websocket:
            message = orjson.loads(await websocket.recv())
    assert message == {"client": CLIENT, "scheme": "wss"}


async def test_traefik_ws_websocket_is_refused() -> None:
    """Traefik's X-Forwarded-Proto: ws (a plain websocket) is refused before accept."""
    async with uvicorn_server(guarded(["unix"]), uds=True) as path:
        with pytest.raises(InvalidStatus) as refused:
            async with unix_connect(
                path,
                "ws://app.example/ws",
                additional_headers={**TRAEFIK_WSS, "x-forwarded-proto": "ws"},
            ):
                pass  # pragma: no cover - the handshake is refused
    assert refused.value.response.status_code == 403
    assert orjson.loads(refused.value.response.body)["code"] == "https.insecure_websocket"


# -- proto values, as each proxy sends them --------------------------------------------------

PEER = "10.0.0.1"


@pytest.mark.parametrize(
    ("mode", "headers", "http_scheme", "ws_scheme"),
    [
        # Traefik: wss/ws on websocket upgrades, https/http otherwise
        ("x-forwarded", [(b"x-forwarded-proto", b"wss")], "https", "wss"),
        ("x-forwarded", [(b"x-forwarded-proto", b"ws")], "http", "ws"),
        ("x-forwarded", [(b"x-forwarded-proto", b"WSS")], "https", "wss"),
        # nginx ($scheme) and Envoy: https/http for everything
        ("x-forwarded", [(b"x-forwarded-proto", b"https")], "https", "wss"),
        ("x-forwarded", [(b"x-forwarded-proto", b"http")], "http", "ws"),
        # RFC 7239 section 5.4: proto is any URI scheme, wss among them
        ("forwarded", [(b"forwarded", b"for=198.51.100.7;proto=wss")], "https", "wss"),
        ("forwarded", [(b"forwarded", b'for="198.51.100.7";proto="WS"')], "http", "ws"),
        # a well-formed scheme an ASGI scope cannot carry leaves the connection's own
        ("x-forwarded", [(b"x-forwarded-proto", b"ftp")], "http", "ws"),
        ("forwarded", [(b"forwarded", b"for=198.51.100.7;proto=coap+tcp")], "http", "ws"),
        # not a scheme at all
        ("x-forwarded", [(b"x-forwarded-proto", b"wss/1")], "http", "ws"),
    ],
)
async def test_proto_maps_to_the_scope_kind(
    mode: str, headers: list[tuple[bytes, bytes]], http_scheme: str, ws_scheme: str
) -> None:
    """Each proto value gives the http or ws form of its scheme, by the kind of scope."""
    app = RecordingApp()
    mw = ProxyHeadersMiddleware(app, trusted=["10.0.0.0/8"], mode=mode)  # type: ignore[arg-type]
    headers = [(b"host", b"app.example"), *headers]
    await Channel().run(
        mw,
        {"type": "http", "scheme": "http", "headers": headers, "client": (PEER, 1), "path": "/"},
    )
    await run_websocket(mw, {"scheme": "ws", "client": (PEER, 1)}, headers=headers)
    assert [scope["scheme"] for scope in app.scopes] == [http_scheme, ws_scheme]


async def test_envoy_websocket_upgrade_is_secure() -> None:
    """Envoy's x-forwarded-proto: https on a websocket upgrade passes the HTTPS layer as wss."""
    app = RecordingApp()
    stack = ProxyHeadersMiddleware(HTTPSRedirectMiddleware(app), trusted=["10.0.0.0/8"])
    sent = await run_websocket(
        stack,
        {"scheme": "ws", "client": (PEER, 1)},
        headers=[
            (b"host", b"app.example"),
            (b"x-forwarded-for", b"198.51.100.7"),
            (b"x-forwarded-proto", b"https"),
            (b"x-envoy-external-address", b"198.51.100.7"),
            (b"x-request-id", b"3e1c1c9e-0b5b-4c6b-9d3a-1f1f1f1f1f1f"),
        ],
    )
    assert sent[0] == {"type": "websocket.accept"}
    assert app.scopes[0]["client"] == ("198.51.100.7", 0)


# -- which peers "trusted" names -------------------------------------------------------------

SOCKET = "/run/app/app.sock"


@pytest.mark.parametrize(
    ("trusted", "client", "server", "trusted_peer"),
    [
        (["unix"], None, (SOCKET, None), True),
        (["unix"], None, None, True),  # Hypercorn gives no server for a unix socket
        (["unix"], ("", 0), (SOCKET, None), True),
        (["unix"], None, ("127.0.0.1", 8000), False),  # TCP with no peer address: unknown
        (["unix"], ("203.0.113.5", 4000), (SOCKET, None), False),
        ([f"unix:{SOCKET}"], None, (SOCKET, None), True),
        ([f"unix:{SOCKET}"], None, ("/run/other.sock", None), False),
        ([f"unix:{SOCKET}"], None, None, False),
        (["*"], None, (SOCKET, None), True),
        ("*", None, None, True),
        (["127.0.0.1", "::1"], None, (SOCKET, None), False),
        (["10.0.0.0/8", "unix"], ("10.1.2.3", 4000), ("0.0.0.0", 8000), True),
    ],
)
async def test_which_peers_are_trusted(
    trusted: Any, client: Any, server: Any, trusted_peer: bool
) -> None:
    """ "unix" trusts address-less peers, "unix:PATH" those of one socket, "*" everyone."""
    app = RecordingApp()
    mw = ProxyHeadersMiddleware(app, trusted=trusted)
    scope = {
        "type": "http",
        "scheme": "http",
        "path": "/",
        "headers": [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")],
        "client": client,
        "server": server,
    }
    await Channel().run(mw, scope)
    seen = app.scopes[0]
    expected = (("198.51.100.7", 0), "https") if trusted_peer else (client, "http")
    assert (seen["client"], seen["scheme"]) == expected


@pytest.mark.parametrize("value", ["unix:", "unixsocket", "UNIX", "/run/app.sock"])
def test_bad_unix_values(value: str) -> None:
    """Anything but "unix" and "unix:PATH" that is not an address fails at construction."""
    with pytest.raises(ConfigurationError, match=r"^trusted: .*'unix'"):
        ProxyHeadersMiddleware(RecordingApp(), trusted=[value])
