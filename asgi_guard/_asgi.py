"""The ASGI core every layer shares: types, raw-header helpers, responses and problems.

Headers are read straight from ``scope["headers"]`` (a list of ``(name, value)`` byte pairs,
names lowercase per the ASGI spec) and decoded only where a value is used.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any, Final

import orjson

from .context import RequestContext, request_context

__all__ = [
    "ASGIApp",
    "BoundedMemo",
    "Headers",
    "Message",
    "Problem",
    "Receive",
    "RequestInfo",
    "Scope",
    "Send",
    "append_headers",
    "get_header",
    "header_values",
    "parse_host",
    "request_info",
    "scope_state",
    "send_response",
    "split_comma",
    "with_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

#: WebSocket close code "policy violation" (RFC 6455 section 7.4.1).
WS_POLICY_VIOLATION: Final = 1008
_WS_HTTP_EXT: Final = "websocket.http.response"
_PROBLEM_CT: Final = (b"content-type", b"application/problem+json")


# --- raw headers ----------------------------------------------------------------------------


def get_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lowercase bytes), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name``, in the order the lines arrived."""
    return [value for key, value in headers if key == name]


def split_comma(values: Iterable[bytes]) -> list[bytes]:
    """Split comma-separated list headers (RFC 9110 section 5.6.1) into stripped, non-empty items.

    Repeated header lines are joined in order, as RFC 9110 section 5.3 says a recipient may.
    Quoted strings are not special here; callers that need them parse the joined value.
    """
    items: list[bytes] = []
    for value in values:
        for part in value.split(b","):
            part = part.strip(b" \t")
            if part:
                items.append(part)
    return items


# --- per-request record shared through scope["state"] ---------------------------------------


#: The request context (:mod:`asgi_guard.context`), under the name the layers first knew it by.
RequestInfo = RequestContext
request_info = request_context


def scope_state(scope: Scope) -> dict[str, Any]:
    """``scope["state"]``, created when missing and never replaced: frameworks such as
    Litestar keep their own data in it."""
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    return state


# --- responses ------------------------------------------------------------------------------


async def send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """Send a complete http response; ``content-length`` is added here."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def with_headers(send: Send, extra: Headers, *, unless: bytes | None = None) -> Send:
    """Wrap ``send`` so that ``extra`` headers are appended to ``http.response.start``.

    Bodies pass through uncopied. With ``unless`` (a lowercase header name), nothing is added
    when the response already carries that header, so an app's own value is never duplicated.
    """

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            append_headers(message, extra, unless)
        await send(message)

    return send_with_headers


def append_headers(message: Message, extra: Headers, unless: bytes | None = None) -> None:
    """Append ``extra`` to a response-start message's headers, unless they hold ``unless``.

    The message gets a new list: the app's may be shared between responses, or any iterable,
    which ASGI allows and which may be read only once.
    """
    headers = message.get("headers", ())
    if type(headers) is not list and type(headers) is not tuple:
        headers = message["headers"] = list(headers)
    if unless is not None:
        for key, _ in headers:
            if key.lower() == unless:
                return  # the app set its own: never a second value
    message["headers"] = [*headers, *extra]


class Problem:
    """An RFC 9457 ``application/problem+json`` answer with a stable ``code``.

    Built once (the body bytes are precomputed), sent many times. The body never echoes the
    offending input: ``detail`` is fixed text chosen by the layer.
    """

    __slots__ = ("_body", "code", "detail", "status", "title")

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self._body = self.body()

    def body(self, extra: dict[str, Any] | None = None) -> bytes:
        """The JSON body, with ``extra`` members (RFC 9457 section 3.2) after the standard ones."""
        doc: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if extra:
            doc.update(extra)
        return orjson.dumps(doc)

    async def send(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Iterable[tuple[bytes, bytes]] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Answer the request with this problem and record its code for the access log.

        An http request gets the problem document; a websocket handshake is refused before
        ``websocket.accept``: through the ``websocket.http.response`` extension when the server
        offers it, else with close code 1008.
        """
        request_info(scope).code = self.code
        body = self._body if extra is None else self.body(extra)
        response_headers = [_PROBLEM_CT, *headers]
        if scope["type"] == "http":
            await send_response(send, self.status, response_headers, body)
            return
        # websocket: consume the handshake's connect event first, as the ASGI spec orders.
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if _WS_HTTP_EXT in (scope.get("extensions") or {}):
            response_headers.append((b"content-length", str(len(body)).encode()))
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": self.status,
                    "headers": response_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})


# --- hosts ----------------------------------------------------------------------------------

_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")


_IPV6_CHARS: Final = "0123456789abcdef:."


def parse_host(value: str) -> tuple[str, int | None] | None:
    """Parse a ``Host``-style ``host[:port]`` (RFC 9110 section 7.2, RFC 3986 section 3.2.2).

    Returns the lowercased host (IPv6 literals keep their brackets) and the port, or None
    for anything else: userinfo, paths, backslashes, whitespace, control bytes, bad ports.
    """
    if not value or len(value) > 261 or not value.isascii():
        return None
    value = value.lower()
    port_text = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[: end + 1], value[end + 1 :]
        # Hex digits, colons and dots only: ipaddress also takes a zone id ("%" and then
        # anything, CR/LF and "@" included), which is no part of a Host (RFC 3986 3.2.2).
        if host[1:-1].strip(_IPV6_CHARS):
            return None
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        if rest:
            if rest[0] != ":":
                return None
            port_text = rest[1:]
    else:
        host, _, port_text = value.partition(":")
        if len(host) > 253 or not _HOSTNAME.fullmatch(host):
            return None
    if not port_text:  # an empty port is no port (RFC 3986 sections 3.2.3 and 6.2.3)
        return host, None
    if len(port_text) > 5 or not port_text.isdigit():
        return None
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    return host, port


# --- memo -----------------------------------------------------------------------------------


class BoundedMemo(dict[Any, Any]):
    """A memo for results computed from header values, which repeat from request to request.

    Bounded in entries (cleared when full) and in key size: values longer than ``max_key``
    bytes are never stored, so hostile input cannot pin much memory.
    """

    __slots__ = ("max_entries", "max_key")

    def __init__(self, max_entries: int = 4096, max_key: int = 256) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_key = max_key

    def remember(self, key: Any, size: int, value: Any) -> Any:
        """Store ``value`` under ``key`` (of ``size`` bytes) if small enough; returns ``value``."""
        if size <= self.max_key:
            if len(self) >= self.max_entries:
                self.clear()
            self[key] = value
        return value
