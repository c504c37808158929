"""The request context: one per request, shared by every guard layer it passes.

The first layer that sees a request makes the context (``scope["state"]["asgi_guard"]``;
any layer used alone makes its own). It owns the per-request facts the layers decide and the
access log and metrics report, each with a stated merge rule:

- ``request_id``: set by the access log (kept from the client when safe, else made);
- ``code``: the stable code of the refusal that answered; a later refusal overwrites a shadow
  decision's code (only one refusal can answer);
- ``shadow``: a rate limit counted over its limit but let the request through;
- ``ratelimit``: ``(limit, remaining, reset)`` of the tightest limit applied (see
  :meth:`RequestContext.note_limit`), and ``ratelimit_fields``, the one RateLimit pair shown;
- ``sub``: the subject of a verified token whose request a later layer refused;

and ONE response hook. Layers that add response headers (HSTS, security headers, the
RateLimit fields, the request-id echo) append them with :meth:`RequestContext.add_headers`;
the first of them installs one ``send`` wrapper and the others reuse it, so the response start
is rewritten once, whatever the number of layers. A header the app set itself is kept: each
addition names the headers it yields to.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, Protocol

__all__ = ["RequestContext", "ResponseFields", "request_context", "tighter"]

_Message = MutableMapping[str, Any]
_Send = Callable[[_Message], Awaitable[None]]
_Pairs = tuple[tuple[bytes, bytes], ...]
_NONE: Final[frozenset[bytes]] = frozenset()
STATE_KEY: Final = "asgi_guard"


class ResponseFields(Protocol):
    """Headers computed when the response starts (a record inner layers may still update)."""

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The header lines to add."""
        ...


def tighter(remaining: int, reset: int, than: tuple[int, int, int] | None) -> bool:
    """Whether ``(remaining, reset)`` is tighter than the ``(limit, remaining, reset)`` record:
    fewer requests remaining, and among equals the longer wait."""
    return than is None or (remaining, -reset) < (than[1], -than[2])


class RequestContext:
    """The per-request facts of the guard's layers, and the one response hook.

    Layers fill the facts in; the access log and the metrics read them at the end.
    """

    # Class-level defaults and no __init__: made on every request, and most requests set
    # few of these (a context costs one object, its attributes are written only when used).
    request_id: str | None = None
    code: str | None = None
    shadow: bool = False
    ratelimit: tuple[int, int, int] | None = None
    sub: str | None = None
    #: The RateLimit fields the response shows (:class:`asgi_guard.ratelimit.fields.Shown`),
    #: filed by the first rate-limit layer and updated by the others under the same rule.
    ratelimit_fields: Any = None
    #: Whether a layer writes the response headers (the hook is installed).
    hooked: bool = False
    _added: list[tuple[_Pairs | ResponseFields, frozenset[bytes]]] | None = None

    def note_limit(self, limit: int, remaining: int, reset: int, refused: bool) -> None:
        """Record a limit applied to the request: a refusal always wins (its limit is the
        one the client waits for), otherwise the tightest (:func:`tighter`) is kept."""
        if refused or tighter(remaining, reset, self.ratelimit):
            self.ratelimit = (limit, remaining, reset)

    def add_headers(
        self, send: _Send, headers: _Pairs | ResponseFields, unless: frozenset[bytes] = _NONE
    ) -> _Send:
        """Have the response start carry ``headers``; returns the ``send`` to pass inward.

        ``headers`` is a tuple of lines, or a :class:`ResponseFields` read when the response
        starts. A line whose name is in ``unless`` is left out when the response already
        has that header (the app's own value is never doubled). The first caller gets
        ``send`` wrapped by the hook; later (inner) callers get ``send`` back unchanged,
        since the hook outside them writes their headers too.
        """
        added = self._added
        if added is None:
            self._added = [(headers, unless)]
        else:
            added.append((headers, unless))
        if self.hooked:
            return send
        self.hooked = True
        write = self.write

        def send_with_headers(message: _Message) -> Awaitable[None]:
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                write(message)
            return send(message)

        return send_with_headers

    def claim_hook(self) -> bool:
        """Take the hook for a layer that wraps ``send`` anyway (the access log): when this
        returns True the caller calls :meth:`write` on the response start itself."""
        if self.hooked:
            return False
        self.hooked = True
        return True

    def write(self, message: _Message) -> None:
        """Add every layer's headers to a response-start ``message``, once.

        The innermost layer's come first (the order separate wrappers gave). The message gets
        a new list: the app's may be shared between responses, or any iterable, which ASGI
        allows and which may be read only once.
        """
        added = self._added
        if not added:
            return
        out = [*message.get("headers", ())]
        for source, unless in reversed(added):
            lines = source if type(source) is tuple else source.headers()  # type: ignore[union-attr]
            if unless:
                # Plain loops, no set or generator: most responses have none of these names.
                for key, _ in out:
                    if key.lower() in unless:
                        present = {key.lower() for key, _ in out}
                        lines = [
                            line
                            for line in lines
                            if line[0] not in unless or line[0] not in present
                        ]
                        break
            out += lines
        message["headers"] = out


def request_context(scope: MutableMapping[str, Any]) -> RequestContext:
    """The request's :class:`RequestContext`, made by the first layer that asks.

    It lives in ``scope["state"]``, which is created when missing and never replaced:
    frameworks such as Litestar keep their own data in it.
    """
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        state = scope["state"] = {}
    context: RequestContext | None = state.get(STATE_KEY)
    if context is None:
        context = state[STATE_KEY] = RequestContext()
    return context
