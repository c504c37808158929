"""Pydantic models as route schemas under FastAPI: validated once, answered by the guard."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field, model_validator

from asgi_guard import ConfigurationError, ValidationMiddleware, guard
from asgi_guard.integrations.fastapi import openapi_responses, validated_body

from ..conftest import client_for

pytestmark = pytest.mark.anyio

CALLS: list[str] = []


class Line(BaseModel):
    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1, le=10)


class Order(BaseModel):
    """An order; each validation is counted, so a second one would show."""

    lines: list[Line]
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def count(cls, data: Any) -> Any:
        CALLS.append("order")
        return data


JSON = {"content-type": "application/json"}
GOOD = b'{"lines": [{"sku": "a", "quantity": 2}]}'


def guarded_once(schema: Any) -> Any:
    """FastAPI taking the order from the guard (no body parameter: no second validation)."""
    app = FastAPI()

    @app.post("/orders")
    async def create(order: Annotated[Order, Depends(validated_body)]) -> dict[str, Any]:
        return {"type": type(order).__name__, "skus": [line.sku for line in order.lines]}

    config: dict[str, Any] = {"validation": {"max_body_size": 200}}
    if isinstance(schema, str):  # a config file's way: "module:Model" in a route
        config["routes"] = [{"path": "POST /orders", "schema": schema}]
    else:
        config["validation"]["schemas"] = {"POST /orders": schema}
    return guard(app, config, environ={})


@pytest.mark.parametrize("schema", [Order, "tests.integrations.test_pydantic:Order"])
async def test_a_model_is_a_route_schema_validated_once(schema: Any) -> None:
    """A pydantic model (class or "module:Model") is the route's schema: the app gets the
    instance, the model runs once a request, and its errors are the guard's 422."""
    app = guarded_once(schema)
    CALLS.clear()
    async with client_for(app) as client:
        ok = await client.post("/orders", content=GOOD, headers=JSON)
        assert (ok.status_code, ok.json()) == (200, {"type": "Order", "skus": ["a"]})
        assert CALLS == ["order"]
        bad = await client.post(
            "/orders", content=b'{"lines": [{"sku": "a", "quantity": 99}]}', headers=JSON
        )
        assert (bad.status_code, bad.headers["content-type"], bad.json()) == (
            422,
            "application/problem+json",
            {
                "type": "about:blank",
                "title": "Unprocessable Content",
                "status": 422,
                "detail": "The request body does not match the schema.",
                "code": "validation.invalid_body",
                "errors": [
                    {
                        "loc": "$.lines[0].quantity",
                        "msg": "Input should be less than or equal to 10",
                    }
                ],
            },
        )
        for body, status, code in [
            (b'{"lines": [], "note": NaN}', 400, "validation.malformed"),
            (b'{"lines": []} trailing', 400, "validation.malformed"),
            (b"[" * 100 + b"]" * 100, 400, "validation.malformed"),
            (b'{"note": "' + b"x" * 300 + b'"}', 413, "validation.too_large"),
        ]:
            answer = await client.post("/orders", content=body, headers=JSON)
            assert (answer.status_code, answer.json()["code"]) == (status, code), body[:20]
        plain = await client.post("/orders", content=GOOD, headers={"content-type": "text/plain"})
        assert plain.status_code == 415
    assert CALLS == ["order", "order"]  # the valid body and the invalid one: nothing else


async def test_schema_errors_left_to_fastapi() -> None:
    """With ``Any`` as the route's schema, the guard refuses what is not JSON and FastAPI's
    body parameter validates the model once, with FastAPI's own 422 and OpenAPI body."""
    app = FastAPI()

    @app.post("/orders")
    async def create(order: Order) -> dict[str, int]:
        return {"lines": len(order.lines)}

    guarded = ValidationMiddleware(app, schemas={"POST /orders": Any}, max_body_size=200)
    CALLS.clear()
    async with client_for(guarded) as client:
        ok = await client.post("/orders", content=GOOD, headers=JSON)
        assert (ok.status_code, ok.json(), CALLS) == (200, {"lines": 1}, ["order"])
        bad = await client.post("/orders", content=b'{"lines": 3}', headers=JSON)
        assert (bad.status_code, bad.json()["detail"][0]["loc"]) == (422, ["body", "lines"])
        malformed = await client.post("/orders", content=b'{"lines": [], "x": NaN}', headers=JSON)
        assert (malformed.status_code, malformed.json()["code"]) == (400, "validation.malformed")
    assert CALLS == ["order", "order"]
    body = app.openapi()["paths"]["/orders"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Order"}


def test_openapi_shows_the_guards_answers() -> None:
    """openapi_responses() documents each problem+json answer, replacing FastAPI's 422 shape."""
    app = FastAPI(responses=openapi_responses())

    @app.post("/orders", responses=openapi_responses(401, 403))
    async def create(order: Order) -> dict[str, int]:
        return {"lines": len(order.lines)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    document = app.openapi()
    answers = document["paths"]["/orders"]["post"]["responses"]
    assert sorted(answers) == ["200", "400", "401", "403", "413", "415", "422", "429", "503"]
    problem = answers["422"]["content"]["application/problem+json"]["schema"]
    assert problem["required"] == ["type", "title", "status", "code"]
    assert "application/json" not in answers["422"]["content"]
    assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
    assert sorted(openapi_responses(429)) == [429]
    with pytest.raises(ValueError, match=r"no guard answer has status \[418\]"):
        openapi_responses(418)


def test_a_model_is_refused_for_a_query() -> None:
    """Query strings keep msgspec types: a model there is a configuration error, at start-up."""
    with pytest.raises(ConfigurationError, match=r"^query\['/a'\]: not a type msgspec"):
        ValidationMiddleware(FastAPI(), query={"/a": Order})


async def test_example_app() -> None:
    """examples/fastapi_pydantic_app.py: the guard's model instance, FastAPI's own body
    validation on the other route, and both documented."""
    from examples.fastapi_pydantic_app import app, guarded

    from .tokens import bearer

    write = {**bearer("items-api", "items:write"), **JSON}
    async with client_for(guarded) as client:
        created = await client.post(
            "/items", json={"name": "pen", "price_cents": 120}, headers=write
        )
        assert (created.status_code, created.json()) == (
            201,
            {"name": "pen", "price_cents": 120, "owner": "alice"},
        )
        bad = await client.post("/items", json={"name": "", "price_cents": 1}, headers=write)
        assert (bad.status_code, bad.json()["errors"][0]["loc"]) == (422, "$.name")
        replaced = await client.put(
            "/items/3", json={"name": "ink", "price_cents": 5}, headers=write
        )
        assert replaced.json() == {"id": 3, "name": "ink"}
        fastapi_422 = await client.put("/items/3", json={"name": 5}, headers=write)
        assert (fastapi_422.status_code, "detail" in fastapi_422.json()) == (422, True)
        assert (await client.get("/openapi.json")).status_code == 200
    operation = app.openapi()["paths"]["/items"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["title"] == "NewItem"
    assert operation["responses"]["429"]["content"]["application/problem+json"]
    assert operation["security"] == [{"bearerAuth": ["items:write"]}]
