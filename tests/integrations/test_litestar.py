"""Litestar: DefineMiddleware for every layer and guard(), handler opt policies, dependencies."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.middleware import DefineMiddleware

from asgi_guard import (
    AccessLogMiddleware,
    HTTPSRedirectMiddleware,
    JWTAuthMiddleware,
    ProxyHeadersMiddleware,
    RateLimitMiddleware,
    ValidationMiddleware,
    guard,
)

from ..conftest import client_for
from .tokens import SECRET, bearer

pytestmark = pytest.mark.anyio


async def test_example_app_handler_policies() -> None:
    """examples/litestar_app.py: opt scopes, limit and schema per handler; user and body injected."""
    from examples.litestar_app import app

    write = {**bearer("tasks-api", "tasks:write"), "content-type": "application/json"}
    async with client_for(app) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/me")).status_code == 401
        assert (await client.get("/me", headers=bearer("tasks-api", "a b"))).json() == {
            "sub": "alice",
            "scopes": ["a", "b"],
        }
        assert (
            await client.post(
                "/tasks",
                content=b'{"title": "t"}',
                headers={**bearer("tasks-api", "tasks:read"), "content-type": "application/json"},
            )
        ).status_code == 403
        created = await client.post("/tasks", content=b'{"title": "write docs"}', headers=write)
        assert (created.status_code, created.json()) == (
            201,
            {"title": "write docs", "owner": "alice"},
        )
        bad = await client.post("/tasks", content=b'{"title": ""}', headers=write)
        assert (bad.status_code, bad.json()["code"]) == (422, "validation.invalid_body")
        assert (
            await client.post("/tasks", content=b'{"title": "x"}', headers=write)
        ).status_code == 201
        assert (
            await client.post("/tasks", content=b'{"title": "x"}', headers=write)
        ).status_code == 429
        assert (await client.get("/nowhere", headers=bearer("tasks-api"))).status_code == 404
        assert (await client.get("/nowhere")).status_code == 401


@get("/who", sync_to_thread=False)
def who(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {
        "user": request.user.display_name if request.user else None,
        "client": request.client.host if request.client else None,
        "body": request.scope.get("state", {}).get("validated_body"),
    }


async def test_every_layer_with_define_middleware() -> None:
    """DefineMiddleware(Layer, ...) works for each layer and for guard()."""
    app = Litestar(
        route_handlers=[who],
        middleware=[
            DefineMiddleware(ProxyHeadersMiddleware, trusted=["127.0.0.1"]),
            DefineMiddleware(AccessLogMiddleware),
            DefineMiddleware(HTTPSRedirectMiddleware),
            DefineMiddleware(RateLimitMiddleware, limit="10/minute"),
            DefineMiddleware(JWTAuthMiddleware, secret=SECRET, audience="l-api"),
            DefineMiddleware(ValidationMiddleware, schemas={"/who": dict[str, int]}),
        ],
        logging_config=None,
    )
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-for": "198.51.100.2",
        **bearer("l-api"),
        "content-type": "application/json",
    }
    async with client_for(app, base_url="http://testserver") as client:
        response = await client.request("GET", "/who", content=b'{"n": 1}', headers=headers)
        assert response.json() == {"user": "alice", "client": "198.51.100.2", "body": {"n": 1}}
        assert (await client.get("/who")).status_code == 308

    guarded = Litestar(
        route_handlers=[who],
        middleware=[
            DefineMiddleware(guard, config={"jwt": {"secret": SECRET, "audience": "l-api"}})
        ],
        logging_config=None,
    )
    async with client_for(guarded) as client:
        assert (await client.get("/who")).status_code == 401
        assert (await client.get("/who", headers=bearer("l-api"))).json()["user"] == "alice"
