"""The three Starlette apps the end-to-end load test serves: bare, guarded, and the peer stack."""

from __future__ import annotations

import logging
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .models import Order

SECRET = "loadtest-secret-of-at-least-32-bytes!!"
ISSUER = "https://issuer.example"
AUDIENCE = "api"
LIMIT = "100000000/minute"


async def items(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def orders(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True}, status_code=201)


def _starlette() -> Starlette:
    return Starlette(routes=[Route("/items", items), Route("/orders", orders, methods=["POST"])])


def _quiet(name: str) -> None:
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.StreamHandler(open(os.devnull, "w"))]  # noqa: SIM115
    logger.setLevel(logging.INFO)
    logger.propagate = False


bare = _starlette()


def _guarded() -> Any:
    from asgi_guard import JSONLinesHandler, guard

    logger = logging.getLogger("asgi_guard.access")
    logger.handlers[:] = [JSONLinesHandler(open(os.devnull, "w"))]  # noqa: SIM115
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return guard(
        _starlette(),
        {
            "proxy": {"trusted": ["127.0.0.1"]},
            "access_log": {},
            "https": {},
            "rate_limit": {"limit": LIMIT},
            "jwt": {"secret": SECRET, "issuer": ISSUER, "audience": AUDIENCE},
            "validation": {"schemas": {"POST /orders": Order}},
        },
        environ={},
    )


def _peer() -> Any:
    from slowapi import Limiter
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address
    from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from .groups import jsonschema_peer, logging_peer, pyjwt_peer

    _quiet("bench.peer.e2e")
    inner = _starlette()
    inner.state.limiter = Limiter(key_func=get_remote_address, default_limits=[LIMIT])
    inner.add_middleware(SlowAPIASGIMiddleware)
    app: Any = jsonschema_peer(inner)
    app = pyjwt_peer(app, SECRET, "HS256")
    app = HTTPSRedirectMiddleware(app)
    app = logging_peer(app, logging.getLogger("bench.peer.e2e"))
    return ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")


guarded = _guarded()
peer = _peer()
