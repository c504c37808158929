"""ValidationMiddleware reads JSON Schema as the specification says, admits only bodies the
app's parser reads, bounds the time a body may take, and names unknown members without echo."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import msgspec
import orjson
import pytest

from asgi_guard import ConfigurationError, ValidationMiddleware
from asgi_guard._asgi import Message

from .conftest import Channel, RecordingApp, client_for, free_port, http_scope

pytestmark = pytest.mark.anyio

JSON = [(b"content-type", b"application/json")]


async def status_of(schema: Any, body: bytes) -> tuple[int, dict[str, Any] | None, int]:
    """(status, problem document or None, app calls) for ``body`` POSTed to a route."""
    app = RecordingApp()
    layer = ValidationMiddleware(app, schemas={"POST /x": schema})
    async with client_for(layer) as client:
        response = await client.post(
            "/x", content=body, headers={"content-type": "application/json"}
        )
    document = orjson.loads(response.content) if response.status_code != 200 else None
    return response.status_code, document, app.calls


def schema_of(keyword_schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"v": keyword_schema}, "required": ["v"]}


@pytest.mark.parametrize(
    ("schema", "value", "status"),
    [
        # oneOf is exactly one: 1 is both an integer and a number.
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1, 422),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, 1.5, 200),
        ({"oneOf": [True, True]}, "x", 422),
        # ECMA-262 patterns: $ is the end of input; \d is ASCII; . stops at U+2028.
        ({"pattern": "^[a-z0-9]+$"}, "admin\n", 422),
        ({"pattern": "^[a-z0-9]+$"}, "admin", 200),
        ({"pattern": "^\\d+$"}, "\u09ea\u09e8", 422),
        ({"pattern": "^\\d+$"}, "42", 200),
        ({"pattern": "^.$"}, "\u2028", 422),
        ({"pattern": "^.$"}, "\r", 422),
        ({"pattern": "^.$"}, "\U0001f432", 200),
        # RFC 4122 and RFC 3339 grammars.
        ({"format": "uuid"}, "2eb8aa087bac4f4e9a3a2b4c5d6e7f80", 422),
        ({"format": "uuid"}, "2eb8aa08-7bac-4f4e-9a3a-2b4c5d6e7f80", 200),
        ({"format": "date-time"}, "1963-06-19 08:30:06Z", 422),
        ({"format": "date-time"}, "1963-06-19T08:30:06+0000", 422),
        ({"format": "date-time"}, "1963-06-19T08:30:06+00:00", 200),
        # Constraints apply per instance type when "type" is absent.
        ({"maximum": 3}, 5, 422),
        ({"maximum": 3}, "five", 200),
        ({"properties": {"a": {"type": "integer"}}}, {"a": "x"}, 422),
        ({"properties": {"a": {"type": "integer"}}}, [1], 200),
        # A few keywords msgspec has no form for.
        ({"not": {"type": "string"}}, "x", 422),
        ({"uniqueItems": True}, [1, 1.0], 422),
        ({"contains": {"const": 2}, "minContains": 2}, [2, 1, 2], 200),
        ({"if": {"minimum": 10}, "then": {"multipleOf": 5}}, 12, 422),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, 422),
        ({"prefixItems": [{"type": "string"}], "items": False}, ["a", "b"], 422),
        ({"propertyNames": {"maxLength": 2}}, {"abc": 1}, 422),
        ({"const": {"a": [1, None]}}, {"a": [1, None]}, 200),
    ],
)
async def test_json_schema_as_the_specification_says(schema: Any, value: Any, status: int) -> None:
    """Each example of the issue: oneOf, ECMA-262 patterns, RFC formats, type-less keywords."""
    got, _, calls = await status_of(schema_of(schema), orjson.dumps({"v": value}))
    assert (got, calls) == (status, 1 if status == 200 else 0)


async def test_a_subschema_id_scopes_its_refs() -> None:
    """A $ref inside a subschema with its own $id and $defs resolves against that subschema."""
    schema = {
        "$defs": {"n": {"type": "integer"}},
        "type": "object",
        "properties": {
            "a": {
                "$id": "https://example.com/inner",
                "$defs": {"n": {"type": "string"}},
                "$ref": "#/$defs/n",
            }
        },
    }
    assert (await status_of(schema, b'{"a": "x"}'))[0] == 200
    assert (await status_of(schema, b'{"a": 1}'))[0] == 422


@pytest.mark.parametrize("name", ['say "hi"', "back\\slash", "line\nbreak", "\x00"])
async def test_any_property_name_works(name: str) -> None:
    """Property names with quotes, backslashes or control characters are validated, not a
    construction error."""
    schema = {"type": "object", "properties": {name: {"type": "integer"}}, "required": [name]}
    assert (await status_of(schema, orjson.dumps({name: 1})))[0] == 200
    status, document, _ = await status_of(schema, orjson.dumps({name: "x"}))
    assert status == 422
    assert document is not None
    assert document["errors"] == [{"loc": "$.*", "msg": "Expected integer"}]


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "https://example.com/other.json"}, "'$ref' needs a document outside the schema"),
        ({"type": "string", "format": "phone"}, "format 'phone' cannot be enforced at $.format"),
        ({"type": "string", "maxlength": 3}, "unknown keyword 'maxlength' at $.maxlength"),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#"},
            "is not draft 2020-12 at $.$schema",
        ),
        (
            {"properties": {"a": {"pattern": "a\\Bb"}}},
            "'pattern' cannot be enforced exactly: '\\B'",
        ),
        ({"patternProperties": {"(?i)a": {}}}, "'patternProperties' cannot be enforced exactly"),
        ({"type": "string", "pattern": "("}, "not a valid JSON Schema"),
    ],
)
def test_schemas_that_cannot_mean_what_they_say_are_refused(schema: Any, message: str) -> None:
    """Remote references, unknown formats and keywords, other drafts and inexact patterns are
    configuration errors naming the keyword and its location."""
    with pytest.raises(ConfigurationError) as info:
        ValidationMiddleware(RecordingApp(), schemas={"POST /x": schema})
    assert info.value.option == "schemas['POST /x']"
    assert message in info.value.message


async def test_schema_errors_name_unknown_members_without_echo() -> None:
    """A 422 names an unknown member in loc when its name is short and printable, and never
    shows a submitted value."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "additionalProperties": False,
    }
    body = orjson.dumps({"name": 1, "is_admin": "SECRET", "x" * 100: "SECRET", "a b": "SECRET"})
    status, document, calls = await status_of(schema, body)
    assert (status, calls) == (422, 0)
    assert document is not None
    assert document["errors"] == [
        {"loc": "$.name", "msg": "Expected string"},
        {"loc": "$.is_admin", "msg": "Unknown member"},
        {"loc": "$.*", "msg": "Unknown member"},
        {"loc": "$.*", "msg": "Unknown member"},
    ]
    assert b"SECRET" not in orjson.dumps(document)


async def test_schema_error_messages_do_not_echo() -> None:
    """Messages name the keyword that failed, never the submitted string."""
    schema = schema_of({"type": "string", "pattern": "^a", "maxLength": 3})
    status, document, _ = await status_of(schema, orjson.dumps({"v": "SECRET-VALUE"}))
    assert status == 422
    assert document is not None
    assert sorted(e["msg"] for e in document["errors"]) == [
        "Fails the schema's 'maxLength'",
        "Fails the schema's 'pattern'",
    ]
    assert b"SECRET" not in orjson.dumps(document)


async def test_errors_are_capped() -> None:
    """A body failing many keywords gets at most ten entries."""
    schema = {"type": "array", "items": {"type": "string"}}
    status, document, _ = await status_of(schema, orjson.dumps(list(range(50))))
    assert status == 422
    assert document is not None
    assert len(document["errors"]) == 10
    assert document["errors"][0] == {"loc": "$[0]", "msg": "Expected string"}


class Loose(msgspec.Struct):
    """Skips unknown members, as a Struct does by default."""

    name: str


UNREADABLE = [
    b'"\xff"',  # invalid UTF-8
    b'"\xed\xa0\x80"',  # an encoded surrogate (invalid UTF-8)
    b'"\\ud800"',  # a lone surrogate escape
    b"1" * 5000,  # past the 4300 digits int() reads
    b"1e400",  # json.loads reads inf
    b"-1e400",
]


@pytest.mark.parametrize("member", UNREADABLE)
@pytest.mark.parametrize(
    "schema",
    [Loose, {"type": "object", "properties": {"name": {"type": "string"}}}],
    ids=["struct", "json-schema"],
)
async def test_unknown_members_are_read_strictly(schema: Any, member: bytes) -> None:
    """A member the schema does not name is still checked: invalid UTF-8 or an out-of-range
    number anywhere is 400, never passed on to an app whose parser would fail on it."""
    body = b'{"name": "a", "extra": ' + member + b"}"
    status, document, calls = await status_of(schema, body)
    assert (status, calls) == (400, 0)
    assert document is not None
    assert document["code"] == "validation.malformed"


@pytest.mark.parametrize(
    "schema",
    [Loose, {"type": "object", "properties": {"name": {"type": "string"}}}],
    ids=["struct", "json-schema"],
)
async def test_readable_unknown_members_pass(schema: Any) -> None:
    """Big but readable numbers and any valid strings in unknown members are admitted."""
    body = b'{"name": "a", "extra": [' + b"9" * 4300 + b', 1e308, "\\u00e9\xc3\xa9", {}]}'
    assert (await status_of(schema, body))[0] == 200


async def test_a_json_schema_route_gets_plain_values() -> None:
    """The app finds the body decoded as plain JSON values, big integers exact."""
    app = RecordingApp()
    layer = ValidationMiddleware(app, schemas={"POST /x": {"type": "object"}})
    async with client_for(layer) as client:
        await client.post(
            "/x",
            content=b'{"n": 18446744073709551617, "f": 1.5}',
            headers={"content-type": "application/json"},
        )
    assert app.scopes[0]["state"]["validated_body"] == {"n": 18446744073709551617, "f": 1.5}


class _Stalled:
    """A receive that sends ``first`` messages, then waits until cancelled."""

    def __init__(self, first: list[Message]) -> None:
        self.first = list(first)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if self.first:
            return self.first.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)


@pytest.mark.parametrize(
    "first",
    [[], [{"type": "http.request", "body": b'{"name"', "more_body": True}]],
    ids=["nothing", "one-chunk"],
)
async def test_a_stalled_body_gets_408_and_closes(first: list[Message]) -> None:
    """A body not complete within body_timeout is 408 with Connection: close; the app is not
    called."""
    app = RecordingApp()
    layer = ValidationMiddleware(app, schemas={"POST /x": Loose}, body_timeout=0.01)
    channel = _Stalled(first)
    await layer(http_scope("/x", "POST", JSON), channel.receive, channel.send)
    start = channel.sent[0]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    assert orjson.loads(channel.sent[1]["body"])["code"] == "validation.body_timeout"
    assert app.calls == 0


async def test_a_slow_app_after_the_body_is_not_cut_off() -> None:
    """The deadline covers receiving the body only: an app working longer than body_timeout
    once it has the body is not cancelled."""

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.1)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    layer = ValidationMiddleware(slow_app, schemas={"POST /x": Loose}, body_timeout=0.01)
    channel = Channel([{"type": "http.request", "body": b'{"name": "a"}'}])
    sent = await channel.run(layer, http_scope("/x", "POST", JSON))
    assert sent[0]["status"] == 200


async def test_only_the_late_read_is_cut_off() -> None:
    """Of two reads in flight, the one past the deadline gets 408 and the other completes."""
    app = RecordingApp()
    layer = ValidationMiddleware(app, schemas={"POST /x": Loose}, body_timeout=0.3)
    stalled = _Stalled([])
    arriving = asyncio.Event()
    prompt: list[Message] = []

    async def receive_later() -> Message:
        await arriving.wait()
        return {"type": "http.request", "body": b'{"name": "a"}'}

    async def send(message: Message) -> None:
        prompt.append(message)

    async def release() -> None:
        await asyncio.sleep(0)  # both reads have begun
        arriving.set()

    await asyncio.gather(
        layer(http_scope("/x", "POST", JSON), stalled.receive, stalled.send),
        layer(http_scope("/x", "POST", JSON), receive_later, send),
        release(),
    )
    assert (stalled.sent[0]["status"], prompt[0]["status"], app.calls) == (408, 200, 1)


async def test_no_body_timeout_waits() -> None:
    """body_timeout=None leaves the waiting to the server."""
    layer = ValidationMiddleware(RecordingApp(), schemas={"POST /x": Loose}, body_timeout=None)
    channel = Channel([{"type": "http.request", "body": b'{"name": "a"}'}])
    sent = await channel.run(layer, http_scope("/x", "POST", JSON))
    assert sent[0]["status"] == 200


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), True, "5"])
def test_bad_body_timeout(value: Any) -> None:
    """body_timeout must be a positive, finite number of seconds, or None."""
    with pytest.raises(ConfigurationError) as info:
        ValidationMiddleware(RecordingApp(), body_timeout=value)
    assert info.value.option == "body_timeout"


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_trickled_body_over_real_uvicorn_gets_408(http: str) -> None:
    """Through real uvicorn, a client sending one byte and then nothing gets 408 and the
    server closes the connection."""
    import uvicorn

    port = free_port()
    layer = ValidationMiddleware(RecordingApp(), schemas={"POST /x": Loose}, body_timeout=0.3)
    config = uvicorn.Config(
        layer, host="127.0.0.1", port=port, http=http, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 20\r\n\r\n{"
            )
            received = b""
            while chunk := sock.recv(4096):  # the server closes: recv returns b""
                received += chunk
        head = received.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 408 ")
        assert b"connection: close" in head
    finally:
        server.should_exit = True
        thread.join(timeout=10)
