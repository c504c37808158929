"""ValidationMiddleware: size, content type, malformed JSON, schema errors, replay, query, disconnects."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import msgspec
import orjson
import pytest

from asgi_guard import ConfigurationError, ValidationMiddleware, openapi_components

from .conftest import Channel, RecordingApp, client_for, http_scope

pytestmark = pytest.mark.anyio


class Item(msgspec.Struct):
    sku: str
    qty: Annotated[int, msgspec.Meta(ge=1, le=100)]


class Order(msgspec.Struct, forbid_unknown_fields=True):
    customer: str
    items: Annotated[list[Item], msgspec.Meta(min_length=1)]
    note: str | None = None


class Page(msgspec.Struct):
    limit: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    tags: list[str] = []
    active: bool = False


ORDER = {"customer": "c1", "items": [{"sku": "a", "qty": 2}]}
ORDER_JSON = orjson.dumps(ORDER)
JSON = [(b"content-type", b"application/json")]


class BodyApp(RecordingApp):
    """Records what the app reads from receive, to check the replay."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        self.after: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await super().__call__(scope, receive, send)


def make(app: Any, **options: Any) -> ValidationMiddleware:
    options.setdefault("schemas", {"POST /orders": Order})
    return ValidationMiddleware(app, **options)


async def post(
    mw: Any, body: bytes, headers: dict[str, str] | None = None, path: str = "/orders"
) -> Any:
    hdrs = {"content-type": "application/json"}
    hdrs.update(headers or {})
    async with client_for(mw) as client:
        return await client.post(path, content=body, headers=hdrs)


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = orjson.loads(response.content)
    assert (body["status"], body["code"]) == (status, code)
    return body


async def test_valid_body_is_replayed_exactly() -> None:
    """The app reads the exact original bytes and finds the decoded object in scope state."""
    app = BodyApp()
    raw = b'{"customer": "c1",  "items": [{"sku": "a", "qty": 2}]}'
    response = await post(make(app), raw)
    assert response.status_code == 200
    assert app.bodies == [raw]
    assert app.scopes[0]["state"]["validated_body"] == Order("c1", [Item("a", 2)])


async def test_routes_without_schema_pass_untouched() -> None:
    """No schema: the body is not read by the layer."""
    app = BodyApp()
    response = await post(
        make(app), b"not json at all", headers={"content-type": "text/plain"}, path="/other"
    )
    assert response.status_code == 200
    assert app.bodies == [b"not json at all"]
    assert "validated_body" not in app.scopes[0].get("state", {})


async def test_schema_violation_is_422_without_echo() -> None:
    """422 lists {loc, msg} with a JSON path and never the submitted value."""
    app = RecordingApp()
    secret = "hunter2-secret-value"
    bad = {"customer": "c1", "items": [{"sku": "a", "qty": secret}]}
    body = problem(await post(make(app), orjson.dumps(bad)), 422, "validation.invalid_body")
    assert body["errors"] == [{"loc": "$.items[0].qty", "msg": "Expected `int`, got `str`"}]
    assert body["detail"] == "The request body does not match the schema."
    assert app.calls == 0


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (
            {"customer": "c", "items": []},
            {"loc": "$.items", "msg": "Expected `array` of length >= 1"},
        ),
        (
            {"customer": "c", "items": [{"sku": "a", "qty": 0}]},
            {"loc": "$.items[0].qty", "msg": "Expected `int` >= 1"},
        ),
        (
            {"items": [{"sku": "a", "qty": 1}]},
            {"loc": "$", "msg": "Object missing required field `customer`"},
        ),
        ({**ORDER, "evil\r\nkey": 1}, {"loc": "$.*", "msg": "Unknown member"}),
        ({**ORDER, "is_admin": True}, {"loc": "$.is_admin", "msg": "Unknown member"}),
    ],
)
async def test_violation_messages(payload: dict[str, Any], error: dict[str, str]) -> None:
    """Each message is msgspec's, scrubbed of anything the client sent."""
    body = problem(
        await post(make(RecordingApp()), orjson.dumps(payload)), 422, "validation.invalid_body"
    )
    assert body["errors"] == [error]


async def test_enum_message_does_not_echo() -> None:
    """Literal mismatches do not quote the submitted value."""
    from typing import Literal

    mw = make(RecordingApp(), schemas={"/x": dict[str, Literal["a", "b"]]})
    body = problem(await post(mw, b'{"k": "<script>"}', path="/x"), 422, "validation.invalid_body")
    assert body["errors"] == [{"loc": "$[...]", "msg": "Invalid enum value"}]
    assert "script" not in str(body)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"customer": "c"',
        b"NaN",
        b'{"customer": NaN}',
        b'{"customer": Infinity}',
        b'{"customer": "\xff\xfe"}',
        b'{"customer": "\\ud800"}',
        ORDER_JSON + b" trailing",
        ORDER_JSON + ORDER_JSON,
        b"[" * 65 + b"]" * 65,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 70 + b"1" + b"}" * 70,
    ],
)
async def test_malformed_json_is_400(raw: bytes) -> None:
    """Malformed, non-UTF-8, NaN, trailing data and deep nesting: 400, never 500."""
    app = RecordingApp()
    problem(await post(make(app, max_body_size=10_000_000), raw), 400, "validation.malformed")
    assert app.calls == 0


async def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    """Depth counts structure, not brackets inside strings."""
    app = RecordingApp()
    mw = make(app, schemas={"/x": dict[str, str]}, max_depth=2)
    assert (await post(mw, b'{"a": "[[[[[[[[{{{{{{"}', path="/x")).status_code == 200
    problem(await post(mw, b'{"a": {"b": {"c": 1}}}', path="/x"), 400, "validation.malformed")


async def test_empty_body_is_400() -> None:
    """A body is required where a schema is configured."""
    body = problem(await post(make(RecordingApp()), b""), 400, "validation.malformed")
    assert body["detail"] == "A JSON request body is required."


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("Application/JSON", 200),
        ("application/json; charset=utf-8", 200),
        ('application/json; charset="UTF-8"', 200),
        ("application/merge-patch+json", 200),
        ("application/vnd.api+json; ext=x", 200),
        ("application/json; charset=latin-1", 415),
        ("text/plain", 415),
        ("text/json", 415),
        ("application/jsonx", 415),
        ("multipart/form-data; boundary=x", 415),
        (None, 415),
    ],
)
async def test_content_type(content_type: str | None, status: int) -> None:
    """JSON media types only, utf-8 charset only."""
    mw = make(RecordingApp())
    async with client_for(mw) as client:
        headers = {} if content_type is None else {"content-type": content_type}
        response = await client.post("/orders", content=ORDER_JSON, headers=headers)
    assert response.status_code == status
    if status == 415:
        problem(response, 415, "validation.unsupported_media_type")


async def test_content_encoding_is_415() -> None:
    """Compressed bodies are refused (no decompression bombs); identity is fine."""
    problem(
        await post(make(RecordingApp()), ORDER_JSON, headers={"content-encoding": "gzip"}),
        415,
        "validation.unsupported_encoding",
    )
    assert (
        await post(make(RecordingApp()), ORDER_JSON, headers={"content-encoding": "identity"})
    ).status_code == 200


async def test_content_length_over_limit_is_413_before_reading() -> None:
    """A declared length over the limit is refused without reading the body."""
    app = RecordingApp()
    channel = Channel(repeat={"type": "http.request", "body": b"x" * 100, "more_body": False})
    headers = [*JSON, (b"content-length", b"2000")]
    sent = await channel.run(make(app, max_body_size=1000), http_scope("/orders", "POST", headers))
    assert (sent[0]["status"], channel.reads, app.calls) == (413, 0, 0)


async def test_streamed_body_cut_off_at_limit() -> None:
    """Without (or with a lying) Content-Length, reading stops one chunk past the limit."""
    app = RecordingApp()
    for headers in ([], [(b"content-length", b"5")]):
        channel = Channel(repeat={"type": "http.request", "body": b"x" * 10, "more_body": True})
        sent = await channel.run(
            make(app, max_body_size=95), http_scope("/orders", "POST", [*JSON, *headers])
        )
        assert (sent[0]["status"], channel.reads) == (413, 10)
    assert app.calls == 0


async def test_many_small_chunks_are_joined_and_replayed() -> None:
    """A body in 1-byte chunks validates and reaches the app whole."""
    app = BodyApp()
    chunks = [ORDER_JSON[i : i + 1] for i in range(len(ORDER_JSON))]
    channel = Channel(
        [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
    )
    sent = await channel.run(make(app), http_scope("/orders", "POST", JSON))
    assert app.bodies == [ORDER_JSON]
    assert sent[0]["status"] == 200


async def test_receive_after_replay_reaches_server() -> None:
    """After the replayed body, receive() returns what the server sends (http.disconnect)."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(await receive())
        seen.append(await receive())

    await Channel([{"type": "http.request", "body": ORDER_JSON, "more_body": False}]).run(
        make(app), http_scope("/orders", "POST", JSON)
    )
    assert seen == [
        {"type": "http.request", "body": ORDER_JSON, "more_body": False},
        {"type": "http.disconnect"},
    ]


async def test_disconnect_mid_body_calls_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A client that leaves mid-body: the app is not called, nothing is sent or logged."""
    app = RecordingApp()
    channel = Channel([{"type": "http.request", "body": b'{"cust', "more_body": True}])
    sent = await channel.run(make(app), http_scope("/orders", "POST", JSON))
    assert (sent, app.calls, [r for r in caplog.records if r.name.startswith("asgi_guard")]) == (
        [],
        0,
        [],
    )


# --- query -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "expected"),
    [
        ("", 200, Page()),
        ("limit=5&active=true", 200, Page(limit=5, active=True)),
        ("tags=a&tags=b", 200, Page(tags=["a", "b"])),
        ("limit=%35", 200, Page(limit=5)),
        ("limit=500", 422, {"loc": "query.limit", "msg": "Expected `int` <= 50"}),
        ("limit=abc", 422, {"loc": "query.limit", "msg": "Expected `int`, got `str`"}),
        ("limit=1&limit=2", 422, {"loc": "query", "msg": "Parameter given more than once"}),
    ],
)
async def test_query(query: str, status: int, expected: Any) -> None:
    """Query strings are parsed once, coerced from strings and validated."""
    app = RecordingApp()
    mw = ValidationMiddleware(app, query={"GET /items": Page})
    async with client_for(mw) as client:
        response = await client.get(f"/items?{query}")
    assert response.status_code == status
    if status == 200:
        assert app.scopes[0]["state"]["validated_query"] == expected
    else:
        assert problem(response, 422, "validation.invalid_query")["errors"] == [expected]


class Prices(msgspec.Struct):
    price: float = 0.0
    ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.5
    bounds: list[float] = []
    either: int | float | None = None
    name: str = ""


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("price=nan", {"loc": "query.price", "msg": "Expected a finite number"}),
        ("price=-Infinity", {"loc": "query.price", "msg": "Expected a finite number"}),
        ("price=inf", {"loc": "query.price", "msg": "Expected a finite number"}),
        ("bounds=1&bounds=NaN", {"loc": "query.bounds[1]", "msg": "Expected a finite number"}),
        ("either=-inf", {"loc": "query.either", "msg": "Expected a finite number"}),
        ("ratio=nan", {"loc": "query.ratio", "msg": "Expected `float` >= 0.0"}),
        ("price=1e999", {"loc": "query.price", "msg": "Number out of range"}),
    ],
)
async def test_query_non_finite_numbers_are_422(query: str, error: dict[str, str]) -> None:
    """NaN and infinities are no JSON numbers: a float query field refuses them, as a body does,
    since NaN passes every comparison an app might make."""
    app = RecordingApp()
    mw = ValidationMiddleware(app, query={"/p": Prices})
    async with client_for(mw) as client:
        response = await client.get(f"/p?{query}")
    assert problem(response, 422, "validation.invalid_query")["errors"] == [error]
    assert app.calls == 0


async def test_query_finite_numbers_and_strings_pass() -> None:
    """Finite numbers pass, and a string field may say "nan"."""
    app = RecordingApp()
    schema = {"type": "object", "properties": {"x": {"type": "number"}, "s": {"type": "string"}}}
    mw = ValidationMiddleware(app, query={"/p": Prices, "/s": schema})
    async with client_for(mw) as client:
        ok = await client.get("/p?price=-1.5e3&bounds=0&bounds=2&either=3&name=nan")
        refused = await client.get("/s?s=inf&x=nan")
        plain = await client.get("/s?s=inf&x=2.5")
    assert ok.status_code == 200
    assert app.scopes[0]["state"]["validated_query"] == Prices(
        price=-1500.0, bounds=[0.0, 2.0], either=3, name="nan"
    )
    assert problem(refused, 422, "validation.invalid_query")["errors"] == [
        {"loc": "query.x", "msg": "Expected a finite number"}
    ]
    assert plain.status_code == 200
    assert app.scopes[1]["state"]["validated_query"] == {"s": "inf", "x": 2.5}


class Node(msgspec.Struct):
    child: Node | None = None
    name: str = ""


class Point(TypedDict):
    x: float


@pytest.mark.parametrize(
    ("kind", "has"),
    [
        (Prices, True),
        (Page, False),
        (Node, False),  # recursive, without a float
        (Point, True),
        (dict[str, float], True),
        (dict[str, Any], False),
        (tuple[int, float], True),
        (frozenset[int], False),
        (Annotated[float, msgspec.Meta(ge=0)] | None, True),
    ],
)
def test_query_types_that_can_hold_a_float(kind: Any, has: bool) -> None:
    """Only query types that can hold a float pay for the finiteness check."""
    from asgi_guard.validation.types import has_float as _has_float

    assert _has_float(msgspec.inspect.type_info(kind), set()) is has


def test_non_finite_location() -> None:
    """The first NaN or infinity is located by its path in the query."""
    from asgi_guard.validation.types import non_finite as _non_finite

    assert _non_finite({"a": (1.0, float("nan"))}, "query") == "query.a[1]"
    assert _non_finite({"a": [1.0], "b": {"c": float("-inf")}}, "query") == "query.b.c"
    assert _non_finite(Prices(bounds=[1.0, 2.0]), "query") is None
    assert _non_finite(float("inf"), "query") == "query"


async def test_query_garbage_is_400() -> None:
    """Non-UTF-8 percent-encoding and field floods are malformed."""
    mw = ValidationMiddleware(RecordingApp(), query={"/items": Page})
    async with client_for(mw) as client:
        problem(await client.get("/items?limit=%ff"), 400, "validation.malformed")
        problem(
            await client.get("/items?" + "&".join(f"x{i}=1" for i in range(300))),
            400,
            "validation.malformed",
        )


async def test_json_schema_query_and_body() -> None:
    """JSON Schema dicts work for both the query and the body."""
    app = RecordingApp()
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 3}},
        "required": ["n"],
    }
    mw = ValidationMiddleware(app, query={"/q": schema}, schemas={"POST /b": schema})
    async with client_for(mw) as client:
        assert (await client.get("/q?n=2")).status_code == 200
        assert problem(await client.get("/q?n=4"), 422, "validation.invalid_query")["errors"] == [
            {"loc": "query.n", "msg": "Expected `int` <= 3"}
        ]
        assert (
            await client.post(
                "/b", content=b'{"n": 3}', headers={"content-type": "application/json"}
            )
        ).status_code == 200


async def test_websocket_and_lifespan_pass() -> None:
    """Non-http scopes are not touched."""
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = make(inner)
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await mw({"type": "websocket", "path": "/orders", "headers": []}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"max_body_size": -1}, "max_body_size"),
        ({"max_depth": 0}, "max_depth"),
        ({"schemas": {"/a": complex}}, "schemas['/a']"),
        ({"schemas": {"/a": {"type": "string", "maxlength": 3}}}, "schemas['/a']"),
        ({"schemas": {"bad": Order}}, "schemas"),
    ],
)
def test_bad_options(options: dict[str, Any], option: str) -> None:
    """Bad options fail at construction, naming the option."""
    with pytest.raises(ConfigurationError) as info:
        ValidationMiddleware(RecordingApp(), **options)
    assert info.value.option == option


def test_openapi_components() -> None:
    """Configured types become OpenAPI component schemas; JSON Schemas are kept as they are."""
    components = openapi_components({"POST /orders": Order, "/raw": {"type": "object"}})
    assert set(components) == {"Order", "Item", "raw"}
    assert components["Order"]["required"] == ["customer", "items"]
    assert components["Item"]["properties"]["qty"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
    }
    assert components["raw"] == {"type": "object"}


async def test_overlong_content_length_is_413() -> None:
    """A 5000-digit Content-Length (past int()'s digit limit) is 413, not an error."""
    app = RecordingApp()
    channel = Channel(repeat={"type": "http.request", "body": b"{}", "more_body": False})
    sent = await channel.run(
        make(app), http_scope("/orders", "POST", [*JSON, (b"content-length", b"9" * 5000)])
    )
    assert (sent[0]["status"], channel.reads, app.calls) == (413, 0, 0)


@pytest.mark.parametrize(
    ("length", "limit", "status", "reads"),
    [
        (b"55", 55, 200, 1),
        (b"56", 55, 413, 0),
        (b"055", 55, 200, 1),  # leading zeros are digits (RFC 9110 section 8.6)
        (b"0" * 30 + b"55", 55, 200, 1),
        (b"0" * 30 + b"56", 55, 413, 0),
        (b"1" + b"0" * 19, 10**6, 413, 0),
        (b" 55 ", 55, 200, 1),  # optional whitespace a server left in place
        (b"5 5", 55, 400, 0),
        (b"+55", 55, 400, 0),
        (b"-1", 55, 400, 0),
        (b"0x37", 55, 400, 0),
        (b"5_5", 55, 400, 0),
        ("\u0665\u0665".encode(), 55, 400, 0),  # Arabic-Indic digits
        (b"", 55, 400, 0),
        (b"9", 0, 413, 0),
    ],
)
async def test_content_length_values(length: bytes, limit: int, status: int, reads: int) -> None:
    """Content-Length is 1*DIGIT: anything else is 400, a value over the limit is 413, and
    neither reads the body."""
    body = b'{"customer": "c1", "items": [{"sku": "a", "qty": 2}]}  '
    app = BodyApp()
    channel = Channel([{"type": "http.request", "body": body, "more_body": False}])
    sent = await channel.run(
        make(app, max_body_size=limit),
        http_scope("/orders", "POST", [*JSON, (b"content-length", length)]),
    )
    assert (sent[0]["status"], channel.reads, app.calls) == (status, reads, 1 if reads else 0)
    if status == 200:
        assert app.bodies == [body]


class StrictItem(msgspec.Struct, forbid_unknown_fields=True):
    sku: str
    qty: int


class StrictOrder(msgspec.Struct, forbid_unknown_fields=True):
    customer: str
    items: list[StrictItem]
    tags: dict[str, list[int]] = {}


class Loose(msgspec.Struct):
    name: str


class Tree(msgspec.Struct, forbid_unknown_fields=True):
    children: list[Tree] = []


@pytest.mark.parametrize(
    ("kind", "depth"),
    [
        (int, 0),
        (Annotated[str, msgspec.Meta(max_length=3)], 0),
        (list[int], 1),
        (list[list[int]] | None, 2),
        (tuple[int, list[str]], 2),
        (dict[str, list[int]], 2),
        (StrictOrder, 3),
        (Any, float("inf")),
        (dict[str, Any], float("inf")),
        (Loose, float("inf")),  # unknown fields are skipped, however deep
        (list[Loose], float("inf")),
        (Tree, float("inf")),  # recursive
        (msgspec.Raw, float("inf")),
    ],
)
def test_static_nesting_of_types(kind: Any, depth: float) -> None:
    """How deep a type lets the decoder go: finite only when every level is typed."""
    from asgi_guard.validation.types import nesting as _nesting

    assert _nesting(msgspec.inspect.type_info(kind), set()) == depth


@pytest.mark.parametrize(
    ("raw", "status", "detail"),
    [
        (b'{"customer": "c", "items": []}', 200, None),
        (b"[" * 100_000 + b"]" * 100_000, 400, "The request body is nested too deeply."),
        (
            b'{"customer": ' + b"[" * 70 + b"]" * 70 + b', "items": []}',
            400,
            "The request body is nested too deeply.",
        ),
        (b'{"customer": "c", "items": [], "x": ' + b"{}" * 1 + b"}", 422, None),
        (b'{"customer": [[1]], "items": []}', 422, None),
        (b'{"customer": "c", "items": [' + b"[" * 70, 422, None),  # wrong type, first
        (b'{"customer": "c", "items": [{"sku": "a"', 400, "The request body is not valid JSON."),
    ],
)
async def test_nesting_limit_on_a_bounded_type(raw: bytes, status: int, detail: str | None) -> None:
    """A type that cannot nest past max_depth skips the pre-scan, with the same answers: deep
    input is still 400 'nested too deeply', a shallow type error 422, broken JSON 400."""
    app = BodyApp()
    mw = make(app, schemas={"POST /orders": StrictOrder}, max_body_size=10_000_000)
    response = await post(mw, raw)
    assert response.status_code == status
    if status == 200:
        assert app.bodies == [raw]
        assert app.scopes[0]["state"]["validated_body"] == StrictOrder("c", [])
    else:
        assert app.calls == 0
        if detail is not None:
            assert response.json()["detail"] == detail


async def test_bounded_type_deeper_than_the_limit_is_scanned() -> None:
    """max_depth below the type's own nesting: the body is scanned before decoding."""
    app = RecordingApp()
    mw = make(app, schemas={"POST /orders": StrictOrder}, max_depth=2)
    body = problem(
        await post(mw, b'{"customer": "c", "items": [{"sku": "a", "qty": 1}]}'),
        400,
        "validation.malformed",
    )
    assert body["detail"] == "The request body is nested too deeply."
    assert app.calls == 0


@pytest.mark.parametrize(
    ("raw", "deep"),
    [
        (b'{"a": [{"a": [1]}]}', True),  # 4 levels, alternating
        (b'{"a": [{"a": 1}]}', False),  # 3 levels
        (b"[[[]]]", False),
        (b"[[[[]]]]", True),
        (b'[{}, [{"a": [[]]}]]', True),
        (b"[[], [], [[]]]", False),
        (b'["[[[[", {"b": "]]]]"}]', False),  # brackets in strings do not count
    ],
)
def test_depth_counts_every_level(raw: bytes, deep: bool) -> None:
    """Alternating arrays and objects count one level each (max_depth 3 here)."""
    from asgi_guard.validation.body import too_deep as _too_deep

    assert _too_deep(raw, 3) is deep


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        # The framework reads the first line, so both must be checked: refused.
        ([*JSON, (b"content-type", b"text/plain")], 400, "validation.malformed"),
        ([(b"content-type", b"text/plain"), *JSON], 400, "validation.malformed"),
        (
            [*JSON, (b"content-length", b"55"), (b"content-length", b"56")],
            400,
            "validation.malformed",
        ),
        ([*JSON, (b"content-length", b"55"), (b"content-length", b"55")], 200, None),
        (
            [*JSON, (b"content-encoding", b"identity"), (b"content-encoding", b"gzip")],
            415,
            "validation.unsupported_encoding",
        ),
        ([*JSON, (b"content-encoding", b"identity, br")], 415, "validation.unsupported_encoding"),
        ([*JSON, (b"content-encoding", b"Identity"), (b"content-encoding", b"")], 200, None),
    ],
)
async def test_repeated_body_fields(
    headers: list[tuple[bytes, bytes]], status: int, code: str | None
) -> None:
    """Content-Type twice or differing Content-Lengths are ambiguous (400); every coding of a
    repeated Content-Encoding must be identity."""
    body = b'{"customer": "c1", "items": [{"sku": "a", "qty": 2}]}  '
    assert len(body) == 55
    app = RecordingApp()
    channel = Channel([{"type": "http.request", "body": body, "more_body": False}])
    sent = await channel.run(make(app), http_scope("/orders", "POST", headers))
    assert sent[0]["status"] == status
    assert app.calls == (1 if status == 200 else 0)
    if code is not None:
        assert orjson.loads(sent[1]["body"])["code"] == code
