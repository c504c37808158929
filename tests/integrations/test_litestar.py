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
from .tokens import SECRET, bearer, get_orders_policy

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


async def test_extra_slashes_are_held_to_the_same_policy() -> None:
    """Litestar serves /orders/, /orders// and //orders with the /orders handler: the rules
    for /orders (scopes, limits, query schema) hold for them too."""
    calls: list[str] = []

    @get("/orders")
    async def orders(request: Request[Any, Any, Any]) -> dict[str, str]:
        calls.append(request.url.path)
        return {"ok": "yes"}

    app = guard(
        Litestar([orders]),
        get_orders_policy("l-api", "6/minute"),
    )
    reader = bearer("l-api", "orders:read")
    async with client_for(app) as client:
        refused = [
            # (whole URLs: httpx would read "//orders" as a host)
            (await client.get(f"{client.base_url}{path}", headers=bearer("l-api"))).status_code
            for path in ("/orders/", "/orders//", "//orders", "///orders//")
        ]
        bad_query = await client.get(f"{client.base_url}//orders?x=1", headers=reader)
        statuses = [(await client.get("/orders/", headers=reader)).status_code for _ in range(2)]
    assert refused == [403, 403, 403, 403]
    assert bad_query.status_code == 422
    assert statuses == [200, 429]  # the four 403s and the 422 counted: IP limits come first
    assert calls == ["/orders"]  # as Litestar normalizes it
