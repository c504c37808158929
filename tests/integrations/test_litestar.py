"""Litestar: DefineMiddleware for every layer and guard(), handler opt policies, dependencies."""

from __future__ import annotations

import os
from typing import Annotated, Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, get, post
from litestar.middleware import DefineMiddleware

from asgi_guard import (
    AccessLogMiddleware,
    ConfigurationError,
    HTTPSRedirectMiddleware,
    JWTAuthMiddleware,
    ProxyHeadersMiddleware,
    RateLimitMiddleware,
    ValidationMiddleware,
    guard,
)
from asgi_guard.integrations.litestar import GuardPlugin

from ..conftest import client_for
from .tokens import SECRET, bearer, get_orders_policy

pytestmark = pytest.mark.anyio


def _client(app: Any, **options: Any) -> httpx.AsyncClient:
    """``client_for`` over a Litestar app (whose ``__call__`` is typed with Litestar's own
    scope types)."""
    return client_for(app, **options)


async def test_example_app_handler_policies() -> None:
    """examples/litestar_app.py: opt scopes, limit and schema per handler; user and body injected."""
    from examples.litestar_app import app

    write = {**bearer("tasks-api", "tasks:write"), "content-type": "application/json"}
    async with _client(app) as client:
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
            DefineMiddleware(ProxyHeadersMiddleware, trusted=["127.0.0.1"]),  # type: ignore[arg-type]
            DefineMiddleware(AccessLogMiddleware),  # type: ignore[arg-type]
            DefineMiddleware(HTTPSRedirectMiddleware),  # type: ignore[arg-type]
            DefineMiddleware(RateLimitMiddleware, limit="10/minute"),  # type: ignore[arg-type]
            DefineMiddleware(JWTAuthMiddleware, secret=SECRET, audience="l-api"),  # type: ignore[arg-type]
            DefineMiddleware(ValidationMiddleware, schemas={"/who": dict[str, int]}),  # type: ignore[arg-type]
        ],
        logging_config=None,
    )
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-for": "198.51.100.2",
        **bearer("l-api"),
        "content-type": "application/json",
    }
    async with _client(app, base_url="http://testserver") as client:
        response = await client.request("GET", "/who", content=b'{"n": 1}', headers=headers)
        assert response.json() == {"user": "alice", "client": "198.51.100.2", "body": {"n": 1}}
        assert (await client.get("/who")).status_code == 308

    guarded = Litestar(
        route_handlers=[who],
        middleware=[
            DefineMiddleware(guard, config={"jwt": {"secret": SECRET, "audience": "l-api"}})  # type: ignore[arg-type]
        ],
        logging_config=None,
    )
    async with _client(guarded) as client:
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

    # logging_config=None: the app leaves the process's logging (and other tests) alone.
    app = guard(
        Litestar([orders], logging_config=None),  # type: ignore[arg-type]
        get_orders_policy("l-api", "6/minute"),
    )
    reader = bearer("l-api", "orders:read")
    async with _client(app) as client:
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


# --- GuardPlugin: policies checked at start-up, shared storage, OpenAPI ---------------------------


class Order(msgspec.Struct, forbid_unknown_fields=True):
    product_id: int
    quantity: Annotated[int, msgspec.Meta(ge=1, le=10)]


def _orders_handler(opt: dict[str, Any]) -> Any:
    @post("/orders", opt=opt, sync_to_thread=False, name="create_order")
    def create_order(request: Request[Any, Any, Any]) -> dict[str, Any]:
        body: Any = request.scope.get("state", {}).get("validated_body")
        return {
            "body": body.model_dump() if hasattr(body, "model_dump") else msgspec.to_builtins(body)
        }

    return create_order


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        (
            {"limit": "10/min"},
            "handler 'create_order' opt['limit']: invalid rate '10/min'; accepted:",
        ),
        ({"scopes": ["a b"]}, "handler 'create_order' opt['scopes']: a rule is a list of scopes"),
        (
            {"schema": object},
            "handler 'create_order' opt['schema']: not a type msgspec can validate",
        ),
        ({"schema": "nowhere:Model"}, "handler 'create_order' opt['schema']: cannot import"),
        (
            {"scope": "a"},
            "handler 'create_order' opt['scope']: not a policy (did you mean 'scopes'?)",
        ),
        (
            {"limits": "1/second"},
            "handler 'create_order' opt['limits']: not a policy (did you mean",
        ),
    ],
)
def test_plugin_refuses_a_bad_policy_at_start_up(opt: dict[str, Any], message: str) -> None:
    """A typo in a handler's opt fails when the app is created, naming the handler (without the
    plugin it started fine and answered 500 on the first request)."""
    with pytest.raises(ConfigurationError) as info:
        Litestar([_orders_handler(opt)], plugins=[GuardPlugin()], logging_config=None)
    assert str(info.value).startswith(message)


async def test_plugin_reads_a_scope_string_as_the_jwt_rules_do() -> None:
    """opt scopes "orders:write" is one scope (it used to be read letter by letter)."""
    app = guard(
        Litestar(  # type: ignore[arg-type]
            [_orders_handler({"scopes": "orders:write", "schema": Order})],
            plugins=[GuardPlugin()],
            logging_config=None,
        ),
        {"jwt": {"secret": SECRET, "audience": "l-api"}},
        environ={},
    )
    body = {"content-type": "application/json"}
    async with _client(app) as client:
        refused = await client.post(
            "/orders", content=b"{}", headers={**bearer("l-api", "orders:read"), **body}
        )
        assert (refused.status_code, refused.json()["detail"]) == (
            403,
            "The access token lacks a required scope: orders:write.",
        )
        ok = await client.post(
            "/orders",
            content=b'{"product_id": 1, "quantity": 2}',
            headers={**bearer("l-api", "orders:write"), **body},
        )
        assert (ok.status_code, ok.json()) == (201, {"body": {"product_id": 1, "quantity": 2}})


async def test_plugin_takes_the_storage_of_the_guard_config(redis_url: str) -> None:
    """The handlers' limits count on the guard config's storage: two app processes (here two
    apps) behind one Redis share one count, with no second storage setting."""
    config = {"rate_limit": {"storage": redis_url, "key": "ip", "strategy": "fixed-window"}}
    plugins = [GuardPlugin(config, environ={}) for _ in range(2)]
    apps = [
        Litestar([_orders_handler({"limit": "3/minute"})], plugins=[plugin], logging_config=None)
        for plugin in plugins
    ]
    statuses = []
    try:
        for index in range(4):
            async with _client(apps[index % 2], peer=f"203.0.113.{os.getpid() % 250}") as client:
                statuses.append((await client.post("/orders")).status_code)
    finally:
        for plugin in plugins:
            await plugin.aclose()
    assert statuses == [201, 201, 201, 429]


async def test_handlers_with_one_function_name_count_apart(redis_url: str) -> None:
    """Two controllers' ``get`` handlers (one function name) each have their own limit on a
    shared storage: they shared one counter, so calls to one refused the other."""
    from litestar import Controller

    class Orders(Controller):
        path = "/orders"

        @get("/", opt={"limit": "1/minute"}, sync_to_thread=False)
        def get(self) -> str:
            return "orders"

    class Invoices(Controller):
        path = "/invoices"

        @get("/", opt={"limit": "1/minute"}, sync_to_thread=False)
        def get(self) -> str:
            return "invoices"

    config = {"rate_limit": {"storage": redis_url, "key": "ip", "strategy": "fixed-window"}}
    plugin = GuardPlugin(config, environ={})
    app = Litestar([Orders, Invoices], plugins=[plugin], logging_config=None)
    try:
        async with _client(app, peer=f"198.51.100.{os.getpid() % 250}") as client:
            statuses = [(await client.get(path)).status_code for path in ("/orders", "/invoices")]
            again = (await client.get("/orders")).status_code
    finally:
        await plugin.aclose()
    assert (statuses, again) == ([200, 200], 429)


async def test_plugin_documents_security_and_request_body() -> None:
    """Litestar's OpenAPI gets the bearer scheme, each handler's scopes and its opt body."""
    app = Litestar(
        [_orders_handler({"scopes": "orders:write", "schema": Order}), who],
        plugins=[GuardPlugin()],
        logging_config=None,
    )
    async with _client(app) as client:
        document = (await client.get("/schema/openapi.json")).json()
    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    operation = document["paths"]["/orders"]["post"]
    assert operation["security"] == [{"bearerAuth": ["orders:write"]}]
    assert operation["requestBody"] == {
        "content": {
            "application/json": {
                "schema": {
                    "title": "Order",
                    "type": "object",
                    "properties": {
                        "product_id": {"type": "integer"},
                        "quantity": {"type": "integer", "minimum": 1, "maximum": 10},
                    },
                    "required": ["product_id", "quantity"],
                    "additionalProperties": False,
                }
            }
        },
        "required": True,
    }
    assert "security" not in document["paths"]["/who"]["get"]
    # The default OpenAPI config is shared by every Litestar app: it is left untouched.
    async with _client(Litestar([who], logging_config=None)) as client:
        plain = (await client.get("/schema/openapi.json")).json()
    assert "securitySchemes" not in plain.get("components", {})


async def test_plugin_takes_a_pydantic_model_as_opt_schema() -> None:
    """A pydantic model in opt is validated by the guard and documented inline, nested models
    included (Litestar writes its own components, so none are referred to)."""
    from pydantic import BaseModel, Field

    class Line(BaseModel):
        sku: str = Field(min_length=1)

    class Basket(BaseModel):
        lines: list[Line]

    app = Litestar(
        [_orders_handler({"schema": Basket})], plugins=[GuardPlugin()], logging_config=None
    )
    json = {"content-type": "application/json"}
    async with _client(app) as client:
        ok = await client.post("/orders", content=b'{"lines": [{"sku": "a"}]}', headers=json)
        bad = await client.post("/orders", content=b'{"lines": [{"sku": ""}]}', headers=json)
        document = (await client.get("/schema/openapi.json")).json()
    assert (ok.status_code, ok.json()) == (201, {"body": {"lines": [{"sku": "a"}]}})
    assert (bad.status_code, bad.json()["errors"]) == (
        422,
        [{"loc": "$.lines[0].sku", "msg": "String should have at least 1 character"}],
    )
    schema = document["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"]["properties"]["lines"]["items"]["properties"]["sku"] == {
        "minLength": 1,
        "title": "Sku",
        "type": "string",
    }


class Tree(msgspec.Struct):
    name: str
    children: list[Tree] = []


def test_plugin_documents_json_schema_and_recursive_bodies() -> None:
    """A JSON Schema in opt is documented as it is; a recursive type is inlined once, its
    recursion left open ({}), so the document never refers to a missing component."""
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    @post("/numbers", opt={"schema": schema}, sync_to_thread=False)
    def numbers() -> None:
        return None

    @post("/trees", opt={"schema": Tree}, sync_to_thread=False)
    def trees() -> None:
        return None

    app = Litestar([numbers, trees], plugins=[GuardPlugin()], logging_config=None)
    paths = app.openapi_schema.to_schema()["paths"]
    body = {
        p: paths[p]["post"]["requestBody"]["content"]["application/json"]["schema"] for p in paths
    }
    assert body["/numbers"] == schema
    assert body["/trees"]["properties"]["children"] == {
        "type": "array",
        "items": {},
        "default": [],
    }
