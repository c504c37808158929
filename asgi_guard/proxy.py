"""Trusted reverse-proxy resolution: the real client address, scheme and host."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Final, Literal

from ._asgi import ASGIApp, BoundedMemo, Receive, Scope, Send, parse_host
from .errors import ConfigurationError

__all__ = ["ProxyHeadersMiddleware"]

_INVALID: Final = 0
_UNTRUSTED: Final = 1
_TRUSTED: Final = 2
#: RFC 7239 section 5.4: ``proto`` is any URI scheme (RFC 3986 section 3.1). The four an ASGI
#: scope can carry are read as (http scheme, websocket scheme): Traefik sends ``wss``/``ws`` for
#: websocket upgrades, nginx and Envoy ``https``/``http``. Other schemes leave the scope as it was.
_SCHEMES: Final = {
    "http": ("http", "ws"),
    "ws": ("http", "ws"),
    "https": ("https", "wss"),
    "wss": ("https", "wss"),
}
#: The ``trusted`` value naming unix-socket peers; ``unix:PATH`` names one listening socket.
_UNIX: Final = "unix"

Hop = tuple[str, int]
#: (client, (http scheme, websocket scheme), Host value): what a header value resolves to.
_Resolved = tuple[Hop | None, tuple[str, str] | None, bytes | None]
_X_NAMES: Final = frozenset((b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"))
_MISS: Final = object()
#: Longer than any address: IPv6 with an IPv4 tail (45) and a zone id (15), with room.
_MAX_ADDRESS: Final = 64


def _item(raw: bytes, index: int, count: int) -> bytes:
    """The list item at ``index`` when the list has ``count`` items, else the last one."""
    if b"," not in raw:
        return raw.strip()
    items = raw.split(b",")
    return items[index if len(items) == count and index >= 0 else -1].strip()


class _TrustedProxies:
    """The ``trusted`` option, parsed once: addresses, networks and unix sockets, with a memo.

    A unix-socket peer has no address: servers give ``scope["client"] = None`` (uvicorn
    ``--uds``, Hypercorn) and ``scope["server"] = (path, None)`` (the ASGI spec's form for a
    unix socket; Hypercorn gives None). ``"unix"`` trusts such peers on any socket,
    ``"unix:/run/app.sock"`` only on that listening socket; ``"*"`` trusts them too.
    """

    def __init__(self, trusted: Iterable[str] | str) -> None:
        items = [trusted] if isinstance(trusted, str) else list(trusted)
        self.everyone = "*" in items
        self.unix_any = self.everyone
        self.unix_paths: set[str] = set()
        self.addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in items:
            if item == "*":
                continue
            if item == _UNIX:
                self.unix_any = True
                continue
            if isinstance(item, str) and item.startswith("unix:") and len(item) > 5:
                self.unix_paths.add(item[5:])
                continue
            try:
                if "/" in item:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    self.addresses.add(ipaddress.ip_address(item))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    "trusted",
                    f"{item!r} is not an IP address, a CIDR network, 'unix', 'unix:/PATH' or '*'",
                ) from None
        self.unix = self.unix_any or bool(self.unix_paths)
        # Addresses repeat from request to request: parse and classify each one once.
        self.classify = functools.lru_cache(maxsize=4096)(self._classify)

    def unix_peer(self, scope: Scope) -> bool:
        """Whether a peer without an address is a trusted unix-socket peer."""
        server = scope.get("server")
        if server is None:
            return self.unix_any
        # A server address with a port is TCP: a peer without an address there is unknown.
        if server[1] is not None:
            return False
        return self.unix_any or server[0] in self.unix_paths

    def _classify(self, host: str) -> int:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return _INVALID
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.everyone or address in self.addresses:
            return _TRUSTED
        if any(address in network for network in self.networks):
            return _TRUSTED
        return _UNTRUSTED


def _port(text: str) -> int:
    """A port number, or 0 when absent or not one (obfuscated "_abc", overlong digit strings)."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        return port if port < 65536 else 0
    return 0


def _parse_node(value: str) -> Hop | None:
    """An address with optional port: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    port = 0
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep:
            return None
        if rest:
            if rest[0] != ":":
                return None
            port = _port(rest[1:])
        return host, port
    if value.count(":") == 1:
        host, _, port_text = value.partition(":")
        return host, _port(port_text)
    return value, 0


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Parse an RFC 7239 ``Forwarded`` value into its elements, or None when malformed.

    forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] ) (section 4);
    parameter names are case-insensitive and must not repeat within an element.
    """
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] not in ",;":
            eq = value.find("=", i)
            if eq < 0:
                return None
            name = value[i:eq].strip().lower()
            if not name or not name.isascii() or not name.replace("-", "").isalnum():
                return None
            if name in element:
                return None
            i = eq + 1
            if i < n and value[i] == '"':
                chars: list[str] = []
                i += 1
                while True:
                    if i >= n:
                        return None  # unbalanced quote
                    c = value[i]
                    if c == "\\" and i + 1 < n:
                        chars.append(value[i + 1])
                        i += 2
                        continue
                    if c == '"':
                        i += 1
                        break
                    chars.append(c)
                    i += 1
                text = "".join(chars)
            else:
                start = i
                while i < n and value[i] not in ",; \t":
                    i += 1
                text = value[start:i]
                if not text or '"' in text:
                    return None
            element[name] = text
            while i < n and value[i] in " \t":
                i += 1
        if i >= n:
            if element:
                elements.append(element)
            return elements
        if value[i] == ";":
            i += 1
        elif value[i] == ",":
            if element:
                elements.append(element)
            element = {}
            i += 1
        else:
            return None


class ProxyHeadersMiddleware:
    """Take the client address, scheme and host from proxy headers, from trusted proxies only.

    Follows RFC 7239 (``Forwarded``) in ``mode="forwarded"`` and the de facto
    ``X-Forwarded-For/Proto/Host`` headers in ``mode="x-forwarded"``. The headers are honoured
    only when the direct peer (``scope["client"]``) is a trusted proxy. Each proxy appends the
    address it received the request from, so the chain is read from the right: the client is
    the rightmost address that is not a trusted proxy, and the scheme and host are taken from
    that same hop. Anything malformed on that path (unparseable addresses, ``unknown``,
    obfuscated ``_names``, broken ``Forwarded`` syntax) leaves the request as the peer sent it.

    Args:
        app: the ASGI app to wrap.
        trusted: what the proxies connect from: IP addresses and CIDR networks (v4 or v6);
            ``"unix"`` for peers on a unix domain socket (they have no address:
            ``scope["client"]`` is None), ``"unix:/path/app.sock"`` for peers on that socket
            only. ``"*"`` trusts every peer, unix ones included, which lets any client forge its
            address: only for apps that no client can reach except through a proxy.
        mode: ``"x-forwarded"`` or ``"forwarded"``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted: Iterable[str] | str = ("127.0.0.1", "::1"),
        mode: Literal["x-forwarded", "forwarded"] = "x-forwarded",
    ) -> None:
        if mode not in ("x-forwarded", "forwarded"):
            raise ConfigurationError("mode", f"must be 'x-forwarded' or 'forwarded', not {mode!r}")
        self.app = app
        self.mode = mode
        self._trusted = _TrustedProxies(trusted)
        self._classify = self._trusted.classify
        self._unix = self._trusted.unix
        # Header values repeat from request to request: resolve each distinct one once.
        self._memo = BoundedMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            client = scope.get("client")
            # A peer with no address ("" classifies as invalid) may be a trusted unix socket.
            if (client and self._classify(client[0]) == _TRUSTED) or (
                self._unix and not (client and client[0]) and self._trusted.unix_peer(scope)
            ):
                if self.mode == "x-forwarded":
                    self._x_forwarded(scope, kind)
                else:
                    self._forwarded(scope, kind)
        await self.app(scope, receive, send)

    def _pick(self, hops: list[str]) -> tuple[int, Hop] | None:
        """Index and address of the client: the rightmost hop that is not a trusted proxy."""
        classify = self._classify
        for index in range(len(hops) - 1, -1, -1):
            node = _parse_node(hops[index].strip())
            if node is None or len(node[0]) > _MAX_ADDRESS:
                return None  # the classify memo must not keep attacker-chosen long strings
            verdict = classify(node[0])
            if verdict == _INVALID:
                return None
            if verdict == _UNTRUSTED:
                return index, node
        # Every hop is a trusted proxy: the leftmost one is where the request entered.
        node = _parse_node(hops[0].strip())
        return (0, node) if node is not None else None

    def _x_chain(
        self, fors: bytes | None, protos: bytes | None, hosts: bytes | None
    ) -> _Resolved | None:
        """Resolve X-Forwarded-For/Proto/Host values to (client, proto, host); None ignores all."""
        index, count, client = -1, 0, None
        if fors is not None:
            hops = fors.decode("latin-1").split(",")
            picked = self._pick(hops)
            if picked is None:
                return None  # a malformed chain tells nothing reliable: keep the peer
            (index, client), count = picked, len(hops)
        # X-Forwarded-Proto/Host line up with X-Forwarded-For only when every proxy appended
        # to all of them; otherwise only the last value, set by our own proxy, is trusted.
        proto = None if protos is None else _item(protos, index, count).decode("latin-1")
        host = None if hosts is None else _item(hosts, index, count).decode("latin-1")
        return _resolved(client, proto, host)

    def _forwarded_chain(self, raw: bytes) -> _Resolved | None:
        """Resolve a Forwarded value to the (client, proto, host) of the client's element."""
        elements = _parse_forwarded(raw.decode("latin-1"))
        if not elements or any("for" not in element for element in elements):
            return None
        picked = self._pick([element["for"] for element in elements])
        if picked is None:
            return None
        element = elements[picked[0]]
        return _resolved(picked[1], element.get("proto"), element.get("host"))

    def _x_forwarded(self, scope: Scope, kind: str) -> None:
        fors: bytes | None = None
        protos: bytes | None = None
        hosts: bytes | None = None
        for name, value in scope["headers"]:
            if name in _X_NAMES:
                if name == b"x-forwarded-for":
                    fors = value if fors is None else fors + b"," + value
                elif name == b"x-forwarded-proto":
                    protos = value if protos is None else protos + b"," + value
                else:
                    hosts = value if hosts is None else hosts + b"," + value
        if fors is None and protos is None and hosts is None:
            return
        key = (fors, protos, hosts)
        resolved = self._memo.get(key, _MISS)
        if resolved is _MISS:
            size = len(fors or b"") + len(protos or b"") + len(hosts or b"")
            resolved = self._memo.remember(key, size, self._x_chain(fors, protos, hosts))
        if resolved is not None:
            _apply(scope, kind, resolved)

    def _forwarded(self, scope: Scope, kind: str) -> None:
        raw: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"forwarded":
                raw = value if raw is None else raw + b"," + value
        if raw is not None:
            resolved = self._memo.get(raw, _MISS)
            if resolved is _MISS:
                resolved = self._memo.remember(raw, len(raw), self._forwarded_chain(raw))
            if resolved is not None:
                _apply(scope, kind, resolved)


def _resolved(client: Hop | None, proto: str | None, host: str | None) -> _Resolved:
    """Validate a hop's proto and host once; invalid ones are dropped (left as they were)."""
    schemes = None if proto is None else _SCHEMES.get(proto.lower())
    valid_host = None if host is None or parse_host(host) is None else host.encode("latin-1")
    return client, schemes, valid_host


def _apply(scope: Scope, kind: str, resolved: _Resolved) -> None:
    client, schemes, host = resolved
    if client is not None:
        scope["client"] = client
    if schemes is not None:
        scope["scheme"] = schemes[kind == "websocket"]
    if host is not None:
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        headers.append((b"host", host))
        scope["headers"] = headers
