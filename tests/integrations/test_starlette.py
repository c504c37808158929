"""Starlette: Middleware(...) for every layer and for guard(), and the example app."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "user": request.user.display_name,
            "authenticated": request.user.is_authenticated,
            "sub": (request.auth or {}).get("sub"),
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "body": request.scope.get("state", {}).get("validated_body"),
        }
    )


def starlette(middleware: list[Middleware]) -> Starlette:
    return Starlette(routes=[Route("/who", whoami, methods=["GET", "POST"])], middleware=middleware)


async def test_every_layer_as_starlette_middleware(caplog: pytest.LogCaptureFixture) -> None:
    """Middleware(Layer, ...) works for each layer; request.user/auth/client/url see the results."""
    app = starlette(
        [
            Middleware(ProxyHeadersMiddleware, trusted=["127.0.0.1"]),
            Middleware(AccessLogMiddleware, logger="test.starlette"),
            Middleware(HTTPSRedirectMiddleware),
            Middleware(RateLimitMiddleware, limit="1/minute"),
            Middleware(
                JWTAuthMiddleware, secret=SECRET, audience="s-api", issuer="https://issuer.example"
            ),
            Middleware(ValidationMiddleware, schemas={"POST /who": dict[str, int]}),
        ]
    )
    headers = {"x-forwarded-for": "198.51.100.8", "x-forwarded-proto": "https", **bearer("s-api")}
    with caplog.at_level(logging.INFO, "test.starlette"):
        async with client_for(app, base_url="http://testserver") as client:
            ok = await client.post(
                "/who", content=b'{"a": 1}', headers={**headers, "content-type": "application/json"}
            )
            assert ok.json() == {
                "user": "alice",
                "authenticated": True,
                "sub": "alice",
                "client": "198.51.100.8",
                "scheme": "https",
                "body": {"a": 1},
            }
            assert ok.headers["strict-transport-security"].startswith("max-age=")
            assert (
                await client.get("/who", headers={"x-forwarded-proto": "https"})
            ).status_code == 401
            assert (await client.get("/who", headers=headers)).status_code == 429
    # (Only this logger's: a Litestar app built in another test leaves httpx logging at INFO.)
    access = [r for r in caplog.records if r.name == "test.starlette"]
    assert [orjson.loads(r.getMessage())["status"] for r in access] == [200, 401, 429]


async def test_access_log_around_starlettes_own_authentication(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Starlette's AuthenticationMiddleware puts its own user (no ``sub``) in the scope: the
    access log records no subject and the response is untouched (it used to raise)."""
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.middleware.authentication import AuthenticationMiddleware

    class Basic(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> tuple[AuthCredentials, SimpleUser]:
            return AuthCredentials(["authenticated"]), SimpleUser("bob")

    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.user.display_name})

    app = AccessLogMiddleware(
        Starlette(
            routes=[Route("/who", hello)],
            middleware=[Middleware(AuthenticationMiddleware, backend=Basic())],
        ),
        logger="test.starlette",
    )
    with caplog.at_level(logging.INFO, "test.starlette"):
        async with client_for(app) as client:
            response = await client.get("/who")
    assert (response.status_code, response.json()["user"]) == (200, "bob")
    [record] = [r for r in caplog.records if r.name == "test.starlette"]
    fields = orjson.loads(record.getMessage())
    assert (fields["status"], fields["sub"]) == (200, None)


async def test_head_is_held_to_the_get_policy() -> None:
    """Starlette answers HEAD with the GET handler: GET rules (scopes, limits, query schemas)
    hold for HEAD too, so HEAD cannot walk around them."""
    calls: list[str] = []

    async def orders(request: Request) -> JSONResponse:
        calls.append(request.method)
        return JSONResponse({"orders": []})

    app = guard(
        Starlette(routes=[Route("/orders", orders)]),
        get_orders_policy("s-api", "3/minute"),
    )
    reader = bearer("s-api", "orders:read")
    async with client_for(app) as client:
        refused = await client.head("/orders", headers=bearer("s-api"))
        bad_query = await client.head("/orders?x=1", headers=reader)
        statuses = [(await client.head("/orders", headers=reader)).status_code for _ in range(3)]
    assert (refused.status_code, refused.headers["www-authenticate"]) == (
        403,
        'Bearer realm="api", error="insufficient_scope", scope="orders:read"',
    )
    assert bad_query.status_code == 422
    assert statuses == [200, 429, 429]  # the 403 and the 422 counted: IP limits come first
    assert calls == ["HEAD"]


async def test_cors_preflight_reaches_starlettes_cors_middleware() -> None:
    """A browser's preflight carries no token: Starlette's CORSMiddleware answers it, and the
    request that follows still needs one."""
    from starlette.middleware.cors import CORSMiddleware

    app = guard(
        Starlette(
            routes=[Route("/who", whoami, methods=["GET", "POST"])],
            middleware=[
                Middleware(
                    CORSMiddleware,
                    allow_origins=["https://app.example"],
                    allow_methods=["POST"],
                    allow_headers=["authorization"],
                )
            ],
        ),
        {"jwt": {"secret": SECRET, "audience": "s-api"}},
    )
    origin = {"origin": "https://app.example"}
    async with client_for(app) as client:
        preflight = await client.options(
            "/who",
            headers={
                **origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization",
            },
        )
        anonymous = await client.post("/who", headers=origin)
        signed_in = await client.get("/who", headers={**origin, **bearer("s-api")})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert anonymous.status_code == 401
    assert (signed_in.status_code, signed_in.json()["user"]) == (200, "alice")
    assert signed_in.headers["access-control-allow-origin"] == "https://app.example"


async def test_guard_as_starlette_middleware() -> None:
    """Middleware(guard, config=...) builds the whole stack inside Starlette."""
    app = starlette([Middleware(guard, config={"jwt": {"secret": SECRET, "audience": "s-api"}})])
    async with client_for(app) as client:
        assert (await client.get("/who")).status_code == 401
        assert (await client.get("/who", headers=bearer("s-api"))).json()["user"] == "alice"


async def test_example_app() -> None:
    """examples/starlette_app.py: public health, scoped and validated notes."""
    from examples.starlette_app import app

    https = {"x-forwarded-proto": "https"}
    async with client_for(app, base_url="http://testserver") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        assert (await client.get("/me", headers=https)).status_code == 401
        me = await client.get("/me", headers={**https, **bearer("notes-api", "notes:read")})
        assert me.json() == {"sub": "alice", "scopes": ["notes:read"]}
        post: dict[str, Any] = {
            "headers": {
                **https,
                **bearer("notes-api", "notes:write"),
                "content-type": "application/json",
            }
        }
        assert (await client.post("/notes", content=b'{"text": "hi"}', **post)).json() == {
            "created": {"text": "hi"}
        }
        assert (await client.post("/notes", content=b'{"text": ""}', **post)).status_code == 422
        assert (
            await client.post(
                "/notes",
                content=b'{"text": "hi"}',
                headers={
                    **https,
                    **bearer("notes-api", "notes:read"),
                    "content-type": "application/json",
                },
            )
        ).status_code == 403
