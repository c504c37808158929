"""ValidationMiddleware: request bodies and query strings checked against msgspec types."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from .._asgi import (
    ASGIApp,
    BoundedMemo,
    Message,
    Problem,
    Receive,
    Scope,
    Send,
    split_comma,
)
from ..errors import ConfigurationError
from ..integrations.pydantic import decoder_for
from ..routes import RouteTable
from ..target import TargetError
from .body import check_media_type, error_entry, too_deep
from .deadline import Deadlines
from .json_schema import SchemaValidator
from .patterns import Checker, pattern_checker
from .problems import (
    AMBIGUOUS,
    CLOSE,
    EMPTY,
    ENCODING,
    INVALID_BODY,
    MALFORMED,
    MEDIA_TYPE,
    TIMEOUT,
    TOO_DEEP,
    TOO_LARGE,
)
from .query import check_query
from .schema import compile_schema
from .types import has_float, list_fields, nesting, skips_input

__all__ = ["ValidationMiddleware"]

#: Decodes a whole body to plain JSON values, as strictly as msgspec reads JSON: UTF-8 with
#: no lone surrogates, integers within 4300 digits, floats within range, no NaN.
_PLAIN: Final = msgspec.json.Decoder()
#: The request fields that describe a body; most of a request's header lines are none of them.
_BODY_FIELDS: Final = frozenset((b"content-type", b"content-length", b"content-encoding"))


def _to_type(value: Any, option: str) -> Any:
    """A msgspec type from a type or a JSON Schema dict, checked at construction."""
    compiled = compile_schema(value, option) if isinstance(value, Mapping) else value
    try:
        msgspec.json.Decoder(compiled)
        # Custom classes would be accepted by the decoder and then reject every body; schema
        # generation refuses them, and it is what openapi_components needs anyway.
        msgspec.json.schema(compiled)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(option, f"not a type msgspec can validate: {exc}") from None
    return compiled


class _Route:
    __slots__ = (
        "body",
        "body_type",
        "bounded",
        "builtins",
        "query",
        "query_builtins",
        "query_floats",
        "query_lists",
        "query_patterns",
        "schema",
        "strict",
    )

    def __init__(self) -> None:
        self.body: msgspec.json.Decoder[Any] | None = None
        # A JSON Schema, validated on the body decoded as plain JSON values.
        self.schema: SchemaValidator | None = None
        # The type passes over part of the body: it is decoded whole once more, as the app
        # will, so that nothing the app's parser refuses (or reads as inf) gets through.
        self.strict = False
        self.body_type: Any = None
        # The type cannot nest deeper than max_depth: see ValidationMiddleware.__call__.
        self.bounded = False
        # Given as JSON Schema: the app gets plain dicts and lists, as from json.loads.
        self.builtins = False
        self.query: Any = None
        self.query_builtins = False
        self.query_lists: frozenset[str] = frozenset()
        # The type can hold a float: msgspec turns "nan" and "inf" into floats, checked after.
        self.query_floats = False
        # The JSON Schema has patterns: matched after conversion, in linear time (patterns.py).
        self.query_patterns: Checker | None = None


class ValidationMiddleware:
    """Validate JSON bodies and query strings per route, at msgspec speed, before the app runs.

    For a route with a body schema: a ``Content-Length`` over ``max_body_size`` gets 413 before
    anything is read, and a streamed body is cut off (413) as soon as it passes the limit. The
    content type must be ``application/json`` or ``application/*+json`` (charset utf-8 only),
    without ``Content-Encoding``: otherwise 415. A body not received within ``body_timeout``
    is 408. Malformed JSON (invalid UTF-8 or a number out of range anywhere in the body, unknown
    members included; trailing data, NaN, nesting deeper than ``max_depth``, an empty body) is
    400 ``validation.malformed``, so nothing reaches the app that its own JSON parser would
    fail on; a schema violation is 422 ``validation.invalid_body`` with ``errors: [{loc, msg}]``
    that never echo submitted values (an unknown member is named when its name is short and
    printable). On success the app receives the exact body through a replaying
    ``receive`` and the decoded object at ``scope["state"]["validated_body"]`` (an instance of
    the msgspec type; plain dicts and lists for a JSON Schema).

    Args:
        schemas: route pattern -> a msgspec type (Struct, dict, list, Annotated, ...) or a
            JSON Schema (draft 2020-12) dict, validated as the specification says by
            jsonschema-rs; a schema needing remote documents, another draft, an unknown format
            or keyword is a :class:`ConfigurationError`.
        query: route pattern -> a type or JSON Schema for the query string; values are coerced
            from strings; the result is at ``scope["state"]["validated_query"]``.
        max_body_size: largest accepted body, in bytes.
        max_depth: deepest accepted nesting of arrays and objects.
        body_timeout: seconds allowed for receiving the whole body; past it (checked four
            times per timeout, at most once a second), 408 with ``Connection: close``
            (None: no limit, for a server that bounds it already).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        schemas: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        max_body_size: int = 1024 * 1024,
        max_depth: int = 64,
        body_timeout: float | None = 10.0,
    ) -> None:
        if (
            not isinstance(max_body_size, int)
            or isinstance(max_body_size, bool)
            or max_body_size < 0
        ):
            raise ConfigurationError("max_body_size", "must be a whole number of bytes >= 0")
        if not isinstance(max_depth, int) or isinstance(max_depth, bool) or max_depth < 1:
            raise ConfigurationError("max_depth", "must be a whole number >= 1")
        if body_timeout is not None and (
            not isinstance(body_timeout, (int, float))
            or isinstance(body_timeout, bool)
            or not 0 < body_timeout < math.inf
        ):
            raise ConfigurationError("body_timeout", "must be a number of seconds > 0, or None")
        self.body_timeout = body_timeout
        self._deadlines = (
            None
            if body_timeout is None
            else Deadlines(body_timeout, self, ValidationMiddleware.__call__.__code__)
        )
        self.app = app
        self.max_body_size = max_body_size
        self.max_depth = max_depth
        routes: dict[str, _Route] = {}
        schemas = dict(schemas or {})
        for pattern, value in list(schemas.items()):
            # A pydantic model is validated by pydantic (integrations/pydantic.py), after the
            # same size, media type, depth and strict-JSON checks as every other schema.
            pydantic_body = decoder_for(value)
            if pydantic_body is not None:
                del schemas[pattern]
                route = routes.setdefault(pattern, _Route())
                route.body_type = value
                route.body = pydantic_body
                route.strict = True  # the whole body read as the app's json.loads reads it
        for pattern, value in (schemas or {}).items():
            route = routes.setdefault(pattern, _Route())
            option = f"schemas[{pattern!r}]"
            if isinstance(value, (Mapping, bool)):  # a boolean is a JSON Schema too
                # JSON Schema as the specification says (jsonschema-rs), on the body decoded
                # whole as plain JSON values: nothing is skipped, nothing is coerced.
                route.schema = SchemaValidator(value, option)
                route.body_type = Any
                route.builtins = True
            else:
                route.body_type = _to_type(value, option)
            info = msgspec.inspect.type_info(route.body_type)
            route.body = msgspec.json.Decoder(route.body_type)
            route.bounded = nesting(info, set()) <= max_depth
            route.strict = skips_input(info, set())
        for pattern, value in (query or {}).items():
            route = routes.setdefault(pattern, _Route())
            route.query = _to_type(value, f"query[{pattern!r}]")
            route.query_builtins = isinstance(value, Mapping)
            route.query_lists = list_fields(route.query)
            route.query_floats = has_float(msgspec.inspect.type_info(route.query), set())
            route.query_patterns = pattern_checker(route.query)
        self._routes: RouteTable[_Route] = RouteTable(routes, option="schemas")
        self._any = bool(routes)  # read per request: RouteTable.__bool__ is a Python call
        self._limit_digits = len(str(max_body_size))
        self._media_types = BoundedMemo(max_entries=256)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or not self._any:
            await self.app(scope, receive, send)
            return
        try:
            route = self._routes.match_scope(scope)
        except TargetError as error:  # a path the app may route elsewhere: no schema fits
            await error.problem.send(scope, receive, send)
            return
        if route is None:
            await self.app(scope, receive, send)
            return
        # A websocket handshake's query is checked like a request's, before accept; it has
        # no body to validate.
        if route.query is not None and not await check_query(route, scope, receive, send):
            return
        if route.body is None or kind != "http":
            await self.app(scope, receive, send)
            return

        content_type = content_length = encoding = None
        for name, value in scope["headers"]:
            if name not in _BODY_FIELDS:
                continue  # one set lookup skips a field that none of the three tests match
            if name == b"content-type":
                if content_type is not None:
                    # A singleton field given twice: the app's framework may read the other
                    # line than the one checked here (RFC 9110 section 5.3).
                    await AMBIGUOUS.send(scope, receive, send)
                    return
                content_type = value
            elif name == b"content-length":
                if content_length is not None and value != content_length:
                    await AMBIGUOUS.send(scope, receive, send)  # RFC 9112 section 6.3
                    return
                content_length = value
            elif name == b"content-encoding":
                # A list field: repeated lines are one list (RFC 9110 section 5.3).
                encoding = value if encoding is None else encoding + b"," + value
        # Fewer digits than the limit has cannot exceed it: the common case skips the call.
        if content_length is not None and (
            len(content_length) >= self._limit_digits or not content_length.isdigit()
        ):
            problem = self._length_problem(content_length)
            if problem is not None:
                await problem.send(scope, receive, send)
                return
        if encoding is not None and any(
            coding.lower() != b"identity" for coding in split_comma((encoding,))
        ):
            await ENCODING.send(scope, receive, send)
            return
        acceptable = self._media_types.get(content_type)
        if acceptable is None:
            acceptable = content_type is not None and self._media_types.remember(
                content_type, len(content_type), check_media_type(content_type)
            )
        if not acceptable:
            await MEDIA_TYPE.send(scope, receive, send)
            return

        # One deadline for the whole body: a client trickling a byte at a time would
        # otherwise hold the connection and this task forever. Nothing is sent while it runs.
        # The watchdog finds this read by the local below (see deadline.py), where a timer
        # per request cost about 24,000 instructions and a clock read about 700.
        deadlines = self._deadlines
        reading = True
        if deadlines is not None:
            watch = deadlines.local.watch  # this thread's loop's: a layer may serve several
            if watch is None or watch.done:
                deadlines.start()
        try:
            message = await receive()
            body: bytes = message.get("body", b"")
            if message.get("more_body", False) and len(body) <= self.max_body_size:
                rest = await self._read_rest(body, receive)
                message = {"type": "http.request", "body": rest, "more_body": False}
                body = rest
        except asyncio.CancelledError:
            if deadlines is None or not deadlines.expired():
                raise
            await TIMEOUT.send(scope, receive, send, headers=CLOSE)
            return
        except _Gone:
            return  # client gone: nothing to answer, nothing to log as an error
        finally:
            reading = False  # noqa: F841 - read by the watchdog, through the frame
        if message["type"] != "http.request":
            return
        if len(body) > self.max_body_size:
            await TOO_LARGE.send(scope, receive, send)
            return
        if not body:
            await EMPTY.send(scope, receive, send)
            return
        # The nesting limit guards the decoder. A type that cannot nest deeper than the limit
        # (a Struct forbidding unknown fields, without Any) makes the decoder stop at the first
        # level the type does not have, so the scan is only needed to word a refusal.
        if not route.bounded and too_deep(body, self.max_depth):
            await TOO_DEEP.send(scope, receive, send)
            return
        if route.strict:
            try:
                _PLAIN.decode(body)
            except Exception:  # unreadable somewhere, if only in a member the type skips
                await MALFORMED.send(scope, receive, send)
                return
        try:
            value = route.body.decode(body)
        except Exception as error:  # whatever the decoder raises is the client's input
            if route.bounded and too_deep(body, self.max_depth):
                await TOO_DEEP.send(scope, receive, send)
            elif isinstance(error, msgspec.ValidationError) and route.schema is None:
                await INVALID_BODY.send(
                    scope, receive, send, extra={"errors": [error_entry(error, "")]}
                )
            else:
                await MALFORMED.send(scope, receive, send)
            return
        if route.schema is not None:
            errors = route.schema.errors(value)
            if errors is not None:
                await INVALID_BODY.send(scope, receive, send, extra={"errors": errors})
                return
        elif route.builtins:
            value = msgspec.to_builtins(value)
        state = scope.get("state")
        if state is None:  # scope_state's rule, inline: this runs on every validated request
            state = scope["state"] = {}
        state["validated_body"] = value
        await self.app(scope, _Replay(message, receive), send)

    def _length_problem(self, value: bytes) -> Problem | None:
        """The answer to a ``Content-Length`` that is malformed or over the limit, or None."""
        if not value.isdigit():
            value = value.strip()  # servers strip whitespace (RFC 9110 section 5.5), not all
            if not value.isdigit():
                return MALFORMED
        # Fewer digits than the limit has cannot exceed it: int() is skipped. Leading zeros
        # are valid (1*DIGIT, RFC 9110 section 8.6); past 18 significant digits is over any
        # limit (and int() refuses strings past 4300 digits).
        if len(value) >= self._limit_digits:
            digits = value.lstrip(b"0")
            if len(digits) > 18 or int(digits or b"0") > self.max_body_size:
                return TOO_LARGE
        return None

    async def _read_rest(self, first: bytes, receive: Receive) -> bytes:
        """The rest of a body sent in several chunks, stopping one chunk past the limit (the
        caller answers 413); :class:`_Gone` when the client disconnects."""
        chunks = [first]
        total = len(first)
        more = True
        while more and total <= self.max_body_size:
            message = await receive()
            if message["type"] != "http.request":
                raise _Gone
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


class _Gone(Exception):
    """The client disconnected while its body was being read."""


class _Replay:
    """A receive that returns the whole-body message once, then defers to the server (so
    ``http.disconnect`` still arrives)."""

    __slots__ = ("message", "receive")

    def __init__(self, message: Message, receive: Receive) -> None:
        self.message: Message | None = message
        self.receive = receive

    async def __call__(self) -> Message:
        message = self.message
        if message is None:
            return await self.receive()
        self.message = None
        return message
