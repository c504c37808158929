"""Whatever ValidationMiddleware admits, Starlette's, FastAPI's and Litestar's own JSON parsers
read: hostile bodies are refused by the layer or parsed by the app, never a 500 there."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from fastapi import Body, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_guard import ValidationMiddleware

from .conftest import client_for

pytestmark = pytest.mark.anyio


class Loose(msgspec.Struct):
    """Names one member and skips the others, as a Struct does by default."""

    name: str


SCHEMAS: dict[str, Any] = {
    "struct": Loose,
    "json-schema": {"type": "object", "properties": {"name": {"type": "string"}}},
}

#: Values for an unknown member: each is either unreadable somewhere or a corner of JSON.
MEMBERS = [
    b'"plain"',
    b'"\xff"',
    b'"\xc0\xaf"',  # overlong UTF-8
    b'"\xed\xa0\x80"',  # an encoded surrogate
    b'"\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\u0000\\uffff"',
    b'"a\x01b"',  # a raw control character
    b'"\x7f"',
    b"1" * 4300,
    b"1" * 4301,
    b"-" + b"9" * 4300,
    b"1e308",
    b"1e309",
    b"-1e400",
    b"1E400",
    b"0e99999",
    b"1e-99999",
    b"1." + b"0" * 5000 + b"1",
    b"-0",
    b"18446744073709551616",
    b"NaN",
    b"Infinity",
    b"[" * 60 + b"]" * 60,
    b"[" * 65 + b"]" * 65,
    b"{}",
    b"true",
    b"null",
    b"\x0c1",  # form feed is no JSON whitespace
]
BODIES = [
    *(b'{"name": "a", "extra": ' + member + b"}" for member in MEMBERS),
    b'\xef\xbb\xbf{"name": "a"}',  # a byte order mark
    '{"name": "a"}'.encode("utf-16"),
    b'{"name": "a", "name": "b"}',
    b'{"name": "a"}  \n',
    b'{"name": "a"} x',
]


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def endpoint(request: Request) -> JSONResponse:
        await request.json()
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/x", endpoint, methods=["POST"])])


def fastapi_app() -> Any:
    app = FastAPI()

    @app.post("/x")
    async def endpoint(body: Annotated[Any, Body()]) -> dict[str, bool]:
        return {"ok": True}

    return app


def litestar_app() -> Any:
    from litestar import Litestar, post
    from litestar.params import JSONBody

    @post("/x", status_code=200)
    async def endpoint(data: JSONBody[dict[str, Any]]) -> dict[str, bool]:
        return {"ok": True}

    return Litestar(route_handlers=[endpoint], logging_config=None)  # leave logging alone


FRAMEWORKS = {"starlette": starlette_app, "fastapi": fastapi_app, "litestar": litestar_app}


async def verdict(app: Any, body: bytes) -> tuple[int, str]:
    """Status and content type; an exception out of the app counts as the 500 it becomes."""
    try:
        async with client_for(app) as client:
            response = await client.post(
                "/x", content=body, headers={"content-type": "application/json"}
            )
    except Exception:
        return 500, ""
    return response.status_code, response.headers.get("content-type", "")


def admitted_means_parsed(status: int, content_type: str) -> bool:
    """Refused by the layer (a problem document), or read by the framework (200)."""
    return status == 200 or (status in (400, 422) and content_type == "application/problem+json")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("schema", SCHEMAS)
async def test_hostile_bodies_are_refused_or_parsed(framework: str, schema: str) -> None:
    """Every hostile body gets the layer's 400 or the framework's 200: none reaches a parser
    that fails on it."""
    layer = ValidationMiddleware(FRAMEWORKS[framework](), schemas={"POST /x": SCHEMAS[schema]})
    failures = []
    for body in BODIES:
        status, content_type = await verdict(layer, body)
        if not admitted_means_parsed(status, content_type):
            failures.append((body[:40], status))
    assert failures == []


@pytest.mark.parametrize(
    ("framework", "status"), [("starlette", 500), ("fastapi", 400), ("litestar", 500)]
)
async def test_without_the_layer_an_unknown_member_breaks_the_parser(
    framework: str, status: int
) -> None:
    """The corpus matters: without the layer, invalid UTF-8 in a member no schema names is a
    500 in Starlette and Litestar (FastAPI answers its own 400); with it, the layer's 400."""
    body = b'{"name": "a", "extra": "\xff"}'
    assert (await verdict(FRAMEWORKS[framework](), body))[0] == status
    layer = ValidationMiddleware(FRAMEWORKS[framework](), schemas={"POST /x": Loose})
    assert await verdict(layer, body) == (400, "application/problem+json")


FRAGMENTS = st.sampled_from(MEMBERS[:23]) | st.binary(max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAGMENTS, min_size=1, max_size=4))
async def test_random_members_are_refused_or_parsed(fragments: list[bytes]) -> None:
    """Random bytes and corners of JSON in unknown members: the layer's 400 or Starlette's 200."""
    body = b'{"name": "a", "extra": [' + b", ".join(fragments) + b"]}"
    for schema in SCHEMAS.values():
        layer = ValidationMiddleware(STARLETTE, schemas={"POST /x": schema})
        assert admitted_means_parsed(*await verdict(layer, body)), body


STARLETTE = starlette_app()
