"""The query string of a validated route: parsed as the frameworks parse it, then converted."""

from __future__ import annotations

from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import msgspec

from .._asgi import Receive, Scope, Send, scope_state
from .body import error_entry
from .json_schema import safe_loc
from .patterns import Checker
from .problems import BAD_QUERY, INVALID_QUERY
from .types import non_finite

__all__ = ["QueryRoute", "check_query"]

_MAX_QUERY_FIELDS: Final = 256
#: As msgspec words a string its ``Meta(pattern=...)`` refuses, never quoting the value.
_NO_MATCH: Final = "Expected `str` matching regex"


class QueryRoute(Protocol):
    """What a route says about its query string."""

    #: The msgspec type of the query parameters.
    query: Any
    #: Parameters that take several values (array fields, see ``types.list_fields``).
    query_lists: frozenset[str]
    #: Whether a float may be in it (NaN and infinities are then looked for).
    query_floats: bool
    #: Finds a string failing its JSON Schema ``pattern`` (see ``patterns.pattern_checker``).
    query_patterns: Checker | None
    #: Whether the result is stored as plain values (a JSON Schema route) or as the type.
    query_builtins: bool


async def check_query(route: QueryRoute, scope: Scope, receive: Receive, send: Send) -> bool:
    """Validate the query string against ``route.query``; False when a problem was sent.

    The result is stored at ``scope["state"]["validated_query"]``.
    """
    raw: bytes = scope.get("query_string", b"")
    try:
        pairs = parse_qsl(
            raw.decode("latin-1"),
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except ValueError:  # too many fields, or percent-encoded bytes that are not UTF-8
        await BAD_QUERY.send(scope, receive, send)
        return False
    data: dict[str, Any] = {}
    for name, value in pairs:
        if name in route.query_lists:
            data.setdefault(name, []).append(value)
        elif name in data:
            # A repeated single-valued parameter is ambiguous (HTTP parameter pollution).
            await INVALID_QUERY.send(
                scope,
                receive,
                send,
                extra={"errors": [{"loc": "query", "msg": "Parameter given more than once"}]},
            )
            return False
        else:
            data[name] = value
    try:
        validated = msgspec.convert(data, route.query, strict=False)
    except msgspec.ValidationError as error:
        await INVALID_QUERY.send(
            scope, receive, send, extra={"errors": [error_entry(error, "query")]}
        )
        return False
    path = route.query_patterns(validated) if route.query_patterns is not None else None
    if path is not None:
        await INVALID_QUERY.send(
            scope,
            receive,
            send,
            extra={"errors": [{"loc": f"query{safe_loc(path)[1:]}", "msg": _NO_MATCH}]},
        )
        return False
    # NaN and infinities are no numbers (RFC 8259 section 6), and NaN passes every
    # comparison an app might make: refused, as in bodies.
    where = non_finite(validated, "query") if route.query_floats else None
    if where is not None:
        await INVALID_QUERY.send(
            scope,
            receive,
            send,
            extra={"errors": [{"loc": where, "msg": "Expected a finite number"}]},
        )
        return False
    scope_state(scope)["validated_query"] = (
        msgspec.to_builtins(validated) if route.query_builtins else validated
    )
    return True
