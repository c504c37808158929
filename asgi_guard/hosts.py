"""The Host allow-list: every request must name a host this service answers to."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from ._asgi import ASGIApp, BoundedMemo, Problem, Receive, Scope, Send, parse_host
from .errors import ConfigurationError
from .routes import RouteTable

__all__ = ["AllowedHostsMiddleware", "HostAllowList"]

_NOT_ALLOWED: Final = Problem(
    400,
    "host.not_allowed",
    "Bad Request",
    "The Host header is missing, invalid or names a host this service does not serve.",
)
#: A request with several Host lines: never allowed (RFC 9112 section 3.2).
_SEVERAL: Final = b"\x00several"


def _a_label(name: str, option: str) -> str:
    """``name`` as it travels on the wire: ASCII, lowercase, IDNA 2008 A-labels (UTS 46
    mapping, as browsers apply it: ``Bücher.example`` is ``xn--bcher-kva.example``)."""
    if name.isascii():
        return name.lower()
    import idna

    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ConfigurationError(option, f"{name!r} is not a valid host name: {exc}") from None


class HostAllowList:
    """Host names normalised once: exact names, IP literals, and ``*.example.com`` for any
    subdomain (not ``example.com`` itself: list it too).

    Entries are lowercased, converted to A-labels and lose a trailing dot (RFC 1034 section 3.1:
    ``example.com.`` names the same host). A port is no part of an entry, and ``*`` alone is
    refused: an allow-list that allows everything is a missing one.
    """

    __slots__ = ("exact", "suffixes")

    def __init__(self, names: Iterable[str] | str, *, option: str) -> None:
        exact: set[str] = set()
        suffixes: list[str] = []
        for name in [names] if isinstance(names, str) else names:
            if not isinstance(name, str):
                raise ConfigurationError(option, f"{name!r} is not a host name")
            wildcard = name.startswith("*.")
            base = _a_label(name[2:] if wildcard else name, option).removesuffix(".")
            parsed = parse_host(base)
            port = base.rpartition("]")[2] if base.startswith("[") else base
            if parsed is None or ":" in port or (wildcard and _is_ip(base)):
                raise ConfigurationError(
                    option, f"{name!r} is not a host name (ports are not part of an entry)"
                )
            if wildcard:
                suffixes.append("." + parsed[0])
            else:
                exact.add(parsed[0])
        self.exact: frozenset[str] = frozenset(exact)
        self.suffixes: tuple[str, ...] = tuple(suffixes)

    def __contains__(self, host: object) -> bool:
        """Whether ``host`` (lowercase, as :func:`~asgi_guard._asgi.parse_host` gives it) is
        allowed; a trailing dot is ignored."""
        if not isinstance(host, str):
            return False
        name = host.removesuffix(".")
        return name in self.exact or any(name.endswith(suffix) for suffix in self.suffixes)

    def __bool__(self) -> bool:
        return bool(self.exact or self.suffixes)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


class AllowedHostsMiddleware:
    """Refuse every request whose ``Host`` is not in an allow-list (host header attacks).

    The ``Host`` header (RFC 9110 section 7.2), as :class:`~asgi_guard.ProxyHeadersMiddleware`
    left it (so behind a trusted proxy, the forwarded host), must name an allowed host: an
    exact name or IP literal, or a subdomain of a ``*.example.com`` entry. The port is ignored,
    as are case and a trailing dot; internationalised names are compared as A-labels, which is
    what clients send. A missing, malformed or repeated ``Host`` (RFC 9112 section 3.2) is
    refused like a foreign one: 400 problem+json ``host.not_allowed``, the app never called.
    A websocket handshake is refused before ``websocket.accept``.

    Args:
        app: the ASGI app to wrap.
        allowed: host names: ``"api.example.com"``, ``"*.example.com"``, ``"[::1]"``,
            ``"bücher.example"``. Must not be empty.
        exempt: route patterns answered whatever the Host (a load balancer's health check
            addressed by IP).
    """

    def __init__(
        self, app: ASGIApp, *, allowed: Iterable[str] | str, exempt: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.allowed = HostAllowList(allowed, option="allowed")
        if not self.allowed:
            raise ConfigurationError("allowed", "is empty: every request would be refused")
        self._exempt = RouteTable.of_patterns(exempt, option="exempt")
        # Host values repeat from request to request: judge each distinct one once.
        self._memo = BoundedMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        host: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"host":
                if host is not None:
                    host = _SEVERAL
                    break
                host = value
        if host is not None:
            allowed = self._memo.get(host)
            if allowed is None:
                allowed = self._memo.remember(host, len(host), self._judge(host))
            if allowed:
                await self.app(scope, receive, send)
                return
        if self._exempt and self._exempt.match_scope_or_none(scope) is not None:
            await self.app(scope, receive, send)
            return
        await _NOT_ALLOWED.send(scope, receive, send)

    def _judge(self, value: bytes) -> bool:
        if value is _SEVERAL:
            return False
        parsed = parse_host(value.decode("latin-1"))
        return parsed is not None and parsed[0] in self.allowed
