"""ValidationMiddleware and its parts against hostile bodies, patterns and loops."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import orjson
import pytest

from asgi_guard import ConfigurationError, ValidationMiddleware
from asgi_guard._asgi import Message
from asgi_guard.validation import compile_schema
from asgi_guard.validation.body import _STRING, too_deep
from asgi_guard.validation.ecma import translate

from .conftest import Channel, RecordingApp, client_for, http_scope

pytestmark = pytest.mark.anyio

JSON = [(b"content-type", b"application/json")]

#: An unterminated string of escaped quotes behind more openers than the depth limit.
_ESCAPED_QUOTES = b"[" * 65 + b'"' + b'\\"' * 500_000


def test_unterminated_string_is_one_match_to_the_end() -> None:
    """An unterminated JSON string is matched once, to the end of the body, so the depth scan
    never searches again from each escaped quote inside it (quadratic time)."""
    body = b'"' + b'\\"' * 10 + b"\\"
    match = _STRING.match(body)
    assert match is not None
    assert match.end() == len(body)
    assert _STRING.sub(b"", b'[["a\\"b"], "\\"') == b"[[], "


def test_depth_scan_of_escaped_quotes_is_linear() -> None:
    """A 1 MB body of escaped quotes in an unterminated string behind 65 openers is scanned
    (it took about 55 s of the event loop per 80 KB before); unbalanced, it is left to the
    decoder, which refuses it."""
    assert too_deep(_ESCAPED_QUOTES, 64) is False
    assert too_deep(b"[" * 65 + b'"]]]"' + b"]" * 65, 64) is True
    assert too_deep(b"[" * 64 + b'"[[[["' + b"]" * 64, 64) is False


async def test_escaped_quotes_body_is_refused_not_hung() -> None:
    """The hostile body reaches a 400 validation.malformed, and the app is not called."""
    app = RecordingApp()
    mw = ValidationMiddleware(app, schemas={"POST /x": list[Any]}, max_body_size=2**21)
    async with client_for(mw) as client:
        response = await client.post(
            "/x", content=_ESCAPED_QUOTES, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert orjson.loads(response.content)["code"] == "validation.malformed"
    assert app.calls == 0


class _Stalled:
    """A client that sends its headers and then nothing."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def _stalled_status(layer: ValidationMiddleware) -> int:
    """The status a stalled body gets from ``layer`` (a hang past 10 s fails the test)."""
    stalled = _Stalled()
    scope = http_scope("/x", "POST", [(b"content-type", b"application/json")])
    await asyncio.wait_for(layer(scope, stalled.receive, stalled.send), 10)
    status: int = stalled.sent[0]["status"]
    return status


def test_body_deadline_holds_on_a_second_loop() -> None:
    """A loop that stopped (not closed) after a read does not keep the watchdog: a stalled
    body on the next loop still gets 408, and the stopped loop gets no callbacks queued."""
    layer = ValidationMiddleware(RecordingApp(), schemas={"POST /x": Any}, body_timeout=0.02)
    first = asyncio.new_event_loop()
    try:
        channel = Channel([{"type": "http.request", "body": b"{}"}])
        first.run_until_complete(channel.run(layer, http_scope("/x", "POST", JSON)))
        assert channel.sent[0]["status"] == 200
        deadlines = layer._deadlines
        assert deadlines is not None
        watch = deadlines.local.watch
        assert watch is not None
        assert watch.thread is not None
        watch.thread.join(10)  # it sees the loop stopped, and ends
        assert not watch.thread.is_alive()
        assert asyncio.run(_stalled_status(layer)) == 408
        assert len(first._ready) <= 1  # type: ignore[attr-defined]
    finally:
        first.close()


def test_body_deadline_holds_on_concurrent_loops() -> None:
    """Two loops in two threads sharing one layer (as servers with a loop per thread do)
    each get 408 for their stalled body."""
    layer = ValidationMiddleware(RecordingApp(), schemas={"POST /x": Any}, body_timeout=0.05)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def serve() -> None:
        async def both_reading() -> int:
            await asyncio.to_thread(barrier.wait, 10)
            return await _stalled_status(layer)

        try:
            statuses.append(asyncio.run(both_reading()))
        except TimeoutError:  # the stalled read was never cut off
            statuses.append(0)

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [408, 408]


@pytest.mark.parametrize(
    "pattern", ["^[^\\uD83D\\uDE00]*$", "^\\uD83D\\uDE00$", "[\\udc00]", "^[^\ud83d\ude00]*$"]
)
def test_surrogate_patterns_are_refused(pattern: str) -> None:
    """A pattern naming surrogates (one astral character in ECMA-262, two lone surrogates in
    Python, so "[^\\uD83D\\uDE00]" would admit the emoji it excludes) is a ConfigurationError
    naming the pattern."""
    with pytest.raises(ConfigurationError) as info:
        compile_schema({"type": "string", "pattern": pattern}, "query['/x']")
    assert info.value.option == "query['/x']"
    assert "$.pattern" in str(info.value)
    assert "surrogate" in str(info.value)


def test_non_surrogate_escapes_still_translate() -> None:
    """Escapes outside the surrogate block keep translating, to the same code points."""
    assert translate("^[\\u00e9\\uD7FF\\uE000]$") == "^[\\u00e9\\uD7FF\\uE000]\\Z"


@pytest.mark.parametrize("target", ["#/examples/0", "#/$defs", "#/properties/a/default"])
def test_reference_to_no_subschema_is_refused(target: str) -> None:
    """A same-document $ref to a place holding no schema (whose keywords were never checked,
    so "maxLenght" would be ignored and "." would match CR) is a ConfigurationError."""
    schema = {
        "type": "object",
        "properties": {"a": {"default": {"maxLenght": 2}}, "b": {"$ref": target}},
        "examples": [{"type": "string", "pattern": "^a.b$", "maxLenght": 2}],
        "$defs": {"s": {"type": "string"}},
    }
    with pytest.raises(ConfigurationError) as info:
        ValidationMiddleware(RecordingApp(), schemas={"POST /x": schema})
    assert info.value.option == "schemas['POST /x']"
    assert f"'$ref' {target!r} at $.properties.b.$ref names no subschema" in str(info.value)


async def test_references_to_subschemas_still_work() -> None:
    """$refs to subschemas, escaped (~1, %25) or the root, validate as before."""
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/a~1b"},
            "b": {"$ref": "#/$defs/c%25d"},
            "c": {"$ref": "#/properties/a"},
        },
        "$defs": {"a/b": {"type": "string"}, "c%d": {"type": "integer"}},
    }
    mw = ValidationMiddleware(RecordingApp(), schemas={"POST /x": schema})
    async with client_for(mw) as client:
        bad = await client.post("/x", content=b'{"a": 1, "b": "x"}', headers=dict(JSON))
        good = await client.post("/x", content=b'{"a": "s", "b": 2, "c": "t"}', headers=dict(JSON))
    assert bad.status_code == 422
    assert [e["loc"] for e in orjson.loads(bad.content)["errors"]] == ["$.a", "$.b"]
    assert good.status_code == 200
