"""FastAPI: add_middleware for every layer, dependencies, and the OpenAPI security scheme."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI

from asgi_guard import (
    AccessLogMiddleware,
    AuthenticatedUser,
    HTTPSRedirectMiddleware,
    JWTAuthMiddleware,
    ProxyHeadersMiddleware,
    RateLimitMiddleware,
    ValidationMiddleware,
    guard,
)
from asgi_guard.integrations.fastapi import current_user, optional_user, validated_query

from ..conftest import client_for
from .tokens import SECRET, bearer

pytestmark = pytest.mark.anyio


async def test_example_app_and_dependencies() -> None:
    """examples/fastapi_app.py: public list, scoped and validated create, owner from the token."""
    from examples.fastapi_app import ITEMS, app

    ITEMS.clear()
    write = {**bearer("items-api", "items:write"), "content-type": "application/json"}
    async with client_for(app) as client:
        created = await client.post(
            "/items", content=b'{"name": "pen", "price_cents": 150}', headers=write
        )
        assert (created.status_code, created.json()) == (
            201,
            {"name": "pen", "price_cents": 150, "owner": "alice"},
        )
        assert (await client.get("/items")).json() == [
            {"name": "pen", "price_cents": 150, "owner": "alice"}
        ]
        assert (
            await client.post("/items", content=b'{"name": "pen"}', headers=write)
        ).status_code == 422
        assert (
            await client.post("/items", content=b'{"name": "pen", "price_cents": 1}')
        ).status_code == 401
        forbidden = await client.post(
            "/items",
            content=b'{"name": "pen", "price_cents": 1}',
            headers={**bearer("items-api", "items:read"), "content-type": "application/json"},
        )
        assert (forbidden.status_code, forbidden.json()) == (
            403,
            {"detail": "The access token lacks a required scope: items:write."},
        )
        assert (
            forbidden.headers["www-authenticate"]
            == 'Bearer error="insufficient_scope", scope="items:write"'
        )


async def test_openapi_has_bearer_scheme_with_scopes() -> None:
    """The OpenAPI document declares bearerAuth and each operation's scopes, plus body schemas."""
    from examples.fastapi_app import app

    async with client_for(app) as client:
        doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    assert doc["paths"]["/items"]["post"]["security"] == [{"bearerAuth": ["items:write"]}]
    assert "security" not in doc["paths"]["/items"]["get"]
    assert doc["components"]["schemas"]["NewItem"]["required"] == ["name", "price_cents"]


async def test_every_layer_with_add_middleware_and_guard() -> None:
    """app.add_middleware works for every layer class and for guard()."""
    app = FastAPI()

    @app.get("/q")
    async def q(
        user: Annotated[Any, Depends(optional_user)],
        query: Annotated[Any, Depends(validated_query)],
    ) -> dict[str, Any]:
        return {"authenticated": user.is_authenticated, "query": query}

    @app.get("/private")
    async def private(user: Annotated[AuthenticatedUser, Depends(current_user)]) -> dict[str, Any]:
        return {"sub": user.sub}

    app.add_middleware(
        ValidationMiddleware,
        query={"/q": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    )
    app.add_middleware(JWTAuthMiddleware, secret=SECRET, audience="f-api", default="public")
    app.add_middleware(RateLimitMiddleware, limit="50/minute")
    app.add_middleware(HTTPSRedirectMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(ProxyHeadersMiddleware)
    async with client_for(app) as client:
        assert (await client.get("/q?n=3")).json() == {"authenticated": False, "query": {"n": 3}}
        assert (await client.get("/q?n=x")).status_code == 422
        assert (await client.get("/private")).status_code == 401
        assert (await client.get("/private", headers=bearer("f-api"))).json() == {"sub": "alice"}

    guarded = FastAPI()

    @guarded.get("/x")
    async def x() -> dict[str, bool]:
        return {"ok": True}

    guarded.add_middleware(guard, config={"jwt": {"secret": SECRET, "audience": "f-api"}})
    async with client_for(guarded) as client:
        assert (await client.get("/x")).status_code == 401
        assert (await client.get("/x", headers=bearer("f-api"))).json() == {"ok": True}
