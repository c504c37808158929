"""Query fields of every array type take repeated and single parameters alike."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest

from asgi_guard import ValidationMiddleware

from .conftest import RecordingApp, client_for

pytestmark = pytest.mark.anyio


class Ints(msgspec.Struct):
    b: tuple[int, ...] = ()


class Pair(msgspec.Struct):
    b: tuple[int, int] | None = None


class Names(msgspec.Struct):
    b: frozenset[str] = frozenset()


class MaybeNames(msgspec.Struct):
    b: set[str] | None = None


class Bounded(msgspec.Struct):
    b: Annotated[list[int], msgspec.Meta(max_length=3)] = []


class Plain(msgspec.Struct):
    b: str | None = None


CASES: list[tuple[type, str, Any]] = [
    (Ints, "b=1&b=2", Ints(b=(1, 2))),
    (Ints, "b=1", Ints(b=(1,))),
    (Pair, "b=1&b=2", Pair(b=(1, 2))),
    (Names, "b=1&b=2", Names(b=frozenset({"1", "2"}))),
    (Names, "b=1", Names(b=frozenset({"1"}))),
    (MaybeNames, "b=1&b=2", MaybeNames(b={"1", "2"})),
    (MaybeNames, "b=1", MaybeNames(b={"1"})),
    (MaybeNames, "", MaybeNames(b=None)),
    (Bounded, "b=1&b=2", Bounded(b=[1, 2])),
    (Plain, "b=x", Plain(b="x")),
]


@pytest.mark.parametrize(("kind", "query", "expected"), CASES)
async def test_array_query_fields_accept_one_or_more_values(
    kind: type, query: str, expected: Any
) -> None:
    """tuple[int, ...], tuple[int, int] | None, frozenset[str], set[str] | None and an
    annotated list are read as arrays from ?b=1&b=2 and from a single ?b=1, never 422."""
    app = RecordingApp()
    async with client_for(ValidationMiddleware(app, query={"/": kind})) as client:
        response = await client.get("/?" + query)
    assert response.status_code == 200
    assert app.scopes[0]["state"]["validated_query"] == expected


async def test_a_scalar_query_field_given_twice_is_refused() -> None:
    """A field typed as one string still refuses two values with 422."""
    app = RecordingApp()
    async with client_for(ValidationMiddleware(app, query={"/": Plain})) as client:
        response = await client.get("/?b=x&b=y")
    assert response.status_code == 422
    assert response.json()["code"] == "validation.invalid_query"
    assert app.calls == 0
