"""The same small API on Starlette, FastAPI and Litestar, and the guard config that protects it.

Every handler answers with an ``x-ran: <name>`` header and a ``ran:<name>`` body, so a test
sees which handler served a request (HEAD answers have no body, hence the header). The guard's
default is ``public``: a request the guard routes elsewhere than the app does reaches a
protected handler with no token, which the differential tests detect.
"""

from __future__ import annotations

from typing import Any

import fastapi
import litestar
from litestar.types import Receive, Scope, Send

from .integrations.tokens import SECRET

AUDIENCE = "parity"
#: Every scope any rule asks for.
ALL_SCOPES = "admin orders:write items files sub ws"
#: The handlers a request without a token must never reach.
PROTECTED = frozenset({"admin", "orders", "item", "files", "sub", "ws"})
ORDERS_LIMIT = 2

CONFIG: dict[str, Any] = {
    "jwt": {"secret": SECRET, "audience": AUDIENCE, "default": "public"},
    "rate_limit": {},
    "validation": {},
    "routes": [
        {"path": "GET /admin", "scopes": ["admin"]},
        {
            "path": "POST /orders",
            "scopes": ["orders:write"],
            "limit": f"{ORDERS_LIMIT}/minute",
            "schema": {
                "type": "object",
                "properties": {"qty": {"type": "integer", "maximum": 10}},
                "required": ["qty"],
                "additionalProperties": False,
            },
        },
        {
            "path": "GET /items/{id}",
            "scopes": ["items"],
            "query": {"type": "object", "additionalProperties": False},
        },
        {"path": "/files/{rest:path}", "scopes": ["files"]},
        {"path": "/sub/{rest:path}", "scopes": ["sub"]},
        {
            "path": "/ws",
            "scopes": ["ws"],
            "query": {"type": "object", "additionalProperties": False},
        },
    ],
}


async def mounted(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app mounted at ``/sub``: it serves any path under it."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-ran", b"sub")]})
        await send({"type": "http.response.body", "body": b"ran:sub"})


def starlette_app() -> Any:
    """The API on Starlette."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.websockets import WebSocket

    def handler(name: str) -> Any:
        async def endpoint(request: Request) -> PlainTextResponse:
            return PlainTextResponse(f"ran:{name}", headers={"x-ran": name})

        return endpoint

    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text("ran:ws")
        await socket.close()

    return Starlette(
        routes=[
            Route("/", handler("root")),
            Route("/admin", handler("admin")),
            Route("/orders", handler("orders"), methods=["POST"]),
            Route("/items/{id}", handler("item")),
            Route("/files/{rest:path}", handler("files")),
            WebSocketRoute("/ws", ws),
            Mount("/sub", app=mounted),
        ]
    )


def fastapi_app() -> Any:
    """The API on FastAPI."""
    app = fastapi.FastAPI()

    def answer(name: str) -> fastapi.Response:
        return fastapi.Response(f"ran:{name}", headers={"x-ran": name}, media_type="text/plain")

    @app.get("/")
    async def root() -> fastapi.Response:
        return answer("root")

    @app.get("/admin")
    async def admin() -> fastapi.Response:
        return answer("admin")

    @app.post("/orders")
    async def orders() -> fastapi.Response:
        return answer("orders")

    @app.get("/items/{id}")
    async def item(id: str) -> fastapi.Response:
        return answer("item")

    @app.get("/files/{rest:path}")
    async def files(rest: str) -> fastapi.Response:
        return answer("files")

    @app.websocket("/ws")
    async def ws(socket: fastapi.WebSocket) -> None:
        await socket.accept()
        await socket.send_text("ran:ws")
        await socket.close()

    app.mount("/sub", mounted)
    return app


def litestar_app() -> Any:
    """The API on Litestar."""
    from litestar import Litestar, asgi, get, post, websocket

    def answer(name: str) -> litestar.Response[str]:
        return litestar.Response(f"ran:{name}", headers={"x-ran": name}, media_type="text/plain")

    @get("/")
    async def root() -> litestar.Response[str]:
        return answer("root")

    @get("/admin")
    async def admin() -> litestar.Response[str]:
        return answer("admin")

    @post("/orders")
    async def orders() -> litestar.Response[str]:
        return answer("orders")

    @get("/items/{id:str}")
    async def item() -> litestar.Response[str]:
        return answer("item")

    @get("/files/{rest:path}")
    async def files() -> litestar.Response[str]:
        return answer("files")

    @websocket("/ws")
    async def ws(socket: litestar.WebSocket[Any, Any, Any]) -> None:
        await socket.accept()
        await socket.send_text("ran:ws")
        await socket.close()

    @asgi("/sub", is_mount=True, copy_scope=True)
    async def sub(scope: Scope, receive: Receive, send: Send) -> None:
        await mounted(scope, receive, send)

    return Litestar([root, admin, orders, item, files, ws, sub], logging_config=None)


FRAMEWORKS = {"starlette": starlette_app, "fastapi": fastapi_app, "litestar": litestar_app}
