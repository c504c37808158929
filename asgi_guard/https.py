"""HTTP to HTTPS redirect and HTTP Strict Transport Security."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ._asgi import (
    ASGIApp,
    Problem,
    Receive,
    Scope,
    Send,
    header_values,
    parse_host,
    request_info,
    send_response,
)
from .errors import ConfigurationError
from .hosts import HostAllowList
from .routes import RouteTable

__all__ = ["HTTPSRedirectMiddleware"]

_REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
_ONE_YEAR: Final = 31_536_000
_HSTS: Final = b"strict-transport-security"
_HSTS_ONLY: Final = frozenset((_HSTS,))
# Bytes kept as they are in a Location path/query: RFC 3986 pchar, "/", "?" and "%" (already
# percent-encoded input stays as it was). Everything else, including "\\", is percent-encoded.
_SAFE: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)
_BAD_HOST: Final = Problem(
    400, "https.bad_host", "Bad Request", "The Host header is missing, invalid or not allowed."
)
_WS_INSECURE: Final = Problem(
    403, "https.insecure_websocket", "Forbidden", "WebSocket connections must use wss://."
)


def _escape(raw: bytes) -> bytes:
    if all(byte in _SAFE for byte in raw):
        return raw
    return b"".join(bytes((byte,)) if byte in _SAFE else b"%%%02X" % byte for byte in raw)


class HTTPSRedirectMiddleware:
    """Redirect plain-HTTP requests to HTTPS and add HSTS (RFC 6797) to HTTPS responses.

    A request whose scheme (as resolved by :class:`~asgi_guard.ProxyHeadersMiddleware`) is
    ``http`` is answered with a redirect (308 by default, so the method and body are kept by
    the client, RFC 9110 section 15.4.9) to the same path and query on ``https``; the app is
    not called and the body is not read. A ``ws`` websocket is refused before accept.

    The redirect's host is ``host`` when given; else the request's ``Host`` when it is in
    ``allowed_hosts`` (exact names, or ``*.example.com`` for any subdomain); with neither, any
    syntactically valid ``Host``. A missing or invalid Host gets 400 ``https.bad_host`` and
    never a ``Location``. The ``Location`` is always absolute, so no path can turn it into a
    scheme-relative or foreign-host URL.

    HSTS (RFC 6797 section 6.1) is added once to every HTTPS response, including rejections by
    inner layers, unless the app set its own; never on plain HTTP (section 7.2).

    Args:
        hsts_max_age: ``max-age`` in seconds; 0 tells browsers to forget the policy.
        hsts_include_subdomains: add ``includeSubDomains``.
        hsts_preload: add ``preload``; needs a max-age of at least a year and includeSubDomains.
        allowed_hosts: host names a redirect may point to.
        host: a fixed canonical host for every redirect (``host`` or ``host:port``).
        https_port: the port of the HTTPS site; 443 is left out of the URL.
        exempt: route patterns served over plain HTTP (health checks, ACME challenges).
        status_code: 301, 302, 303, 307 or 308.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts_max_age: int = _ONE_YEAR,
        hsts_include_subdomains: bool = True,
        hsts_preload: bool = False,
        allowed_hosts: Iterable[str] | None = None,
        host: str | None = None,
        https_port: int = 443,
        exempt: Iterable[str] = (),
        status_code: int = 308,
        keep_port: bool = False,
    ) -> None:
        if status_code not in _REDIRECT_CODES:
            raise ConfigurationError(
                "status_code", f"must be one of 301, 302, 303, 307, 308, not {status_code!r}"
            )
        if not isinstance(hsts_max_age, int) or isinstance(hsts_max_age, bool) or hsts_max_age < 0:
            raise ConfigurationError("hsts_max_age", "must be a whole number of seconds >= 0")
        if hsts_preload and (hsts_max_age < _ONE_YEAR or not hsts_include_subdomains):
            raise ConfigurationError(
                "hsts_preload",
                "preload needs hsts_max_age >= 31536000 and hsts_include_subdomains=True",
            )
        if not isinstance(https_port, int) or not 0 < https_port < 65536:
            raise ConfigurationError("https_port", f"invalid port {https_port!r}")
        self.app = app
        self.status_code = status_code
        self._port_suffix = "" if https_port == 443 else f":{https_port}"
        self._keep_port = keep_port

        self._host: str | None = None
        if host is not None:
            parsed = parse_host(host) if isinstance(host, str) else None
            if parsed is None:
                raise ConfigurationError("host", f"{host!r} is not a valid host[:port]")
            self._host = parsed[0] + (f":{parsed[1]}" if parsed[1] else self._port_suffix)

        self._allowed: HostAllowList | None = None
        if allowed_hosts is not None:
            self._allowed = HostAllowList(allowed_hosts, option="allowed_hosts")

        self._exempt = RouteTable.of_patterns(exempt, option="exempt")
        directives = f"max-age={hsts_max_age}"
        if hsts_include_subdomains:
            directives += "; includeSubDomains"
        if hsts_preload:
            directives += "; preload"
        self._hsts = ((_HSTS, directives.encode()),)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            scheme = scope.get("scheme", "http")
            if scheme == "https":
                # Through the request context's one response hook; an app's own HSTS is kept.
                send = request_info(scope).add_headers(send, self._hsts, _HSTS_ONLY)
                await self.app(scope, receive, send)
                return
            if self._exempt and self._is_exempt(scope):
                await self.app(scope, receive, send)
                return
            await self._redirect(scope, receive, send)
        elif kind == "websocket" and scope.get("scheme", "ws") != "wss":
            if self._exempt and self._is_exempt(scope):
                await self.app(scope, receive, send)
                return
            await _WS_INSECURE.send(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _is_exempt(self, scope: Scope) -> bool:
        return self._exempt.match_scope_or_none(scope) is not None

    def _redirect_host(self, scope: Scope) -> str | None:
        if self._host is not None:
            return self._host
        hosts = header_values(scope["headers"], b"host")
        if len(hosts) != 1:
            return None  # none, or several lines: 400 (RFC 9112 section 3.2)
        parsed = parse_host(hosts[0].decode("latin-1"))
        if parsed is None:
            return None
        # A fully qualified name's trailing dot names the same host (RFC 1034 section 3.1):
        # matched, and redirected to, without it.
        name = parsed[0].removesuffix(".")
        if self._allowed is not None and name not in self._allowed:
            return None
        if self._keep_port and parsed[1] is not None:
            return f"{name}:{parsed[1]}"
        return name + self._port_suffix

    async def _redirect(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self._redirect_host(scope)
        if host is None:
            await _BAD_HOST.send(scope, receive, send)
            return
        root_path: str = scope.get("root_path", "")
        raw_path: bytes | None = scope.get("raw_path")
        # Without raw_path, the decoded path; a server decoding with surrogateescape can leave
        # lone surrogates in it, which plain encode() refuses.
        path = raw_path if raw_path is not None else scope["path"].encode("utf-8", "surrogatepass")
        if root_path and not path.startswith(root_path.encode()):
            path = root_path.encode() + path
        if not path.startswith(b"/"):
            path = b"/" + path
        # A decision too: the access log and the metrics name the layer that answered.
        request_info(scope).code = "https.redirect"
        location = b"https://" + host.encode() + _escape(path)
        query: bytes = scope.get("query_string", b"")
        if query:
            location += b"?" + _escape(query)
        await send_response(send, self.status_code, [(b"location", location)])
