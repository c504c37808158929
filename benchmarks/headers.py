"""Security headers and the Host allow-list, beside the HSTS wrapper they are measured against."""

from __future__ import annotations

from typing import Any

from asgi_guard import AllowedHostsMiddleware, HTTPSRedirectMiddleware, SecurityHeadersMiddleware

from .groups import HEADERS, raw_app, scope_factory
from .harness import Case, Group, Scope


def with_host(host: bytes) -> Any:
    """Fresh scopes whose only Host is ``host``."""
    make = scope_factory()
    headers = [(b"host", host), *HEADERS[1:]]

    def scope() -> Scope:
        made = make()
        made["headers"] = headers
        return made

    return scope


def headers_peer(app: Any) -> Any:
    """The hand-written alternative: a BaseHTTPMiddleware setting the same headers."""
    from starlette.middleware.base import BaseHTTPMiddleware

    values = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "same-origin",
    }

    class HeadersMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Any, call_next: Any) -> Any:
            response = await call_next(request)
            for name, value in values.items():
                response.headers.setdefault(name, value)
            return response

    return HeadersMiddleware(app)


def headers_layer() -> Group:
    get = scope_factory()
    credentialed = scope_factory([(b"authorization", b"Bearer x")])
    routed = SecurityHeadersMiddleware(
        raw_app,
        rules={
            f"GET /docs{i}": {"content_security_policy": "default-src 'self'"} for i in range(20)
        },
    )
    return Group(
        "layer:headers",
        [
            Case("raw ASGI app", raw_app, get),
            Case("HTTPSRedirect https pass-through + HSTS", HTTPSRedirectMiddleware(raw_app), get),
            Case(
                "SecurityHeaders, default set (5 headers)", SecurityHeadersMiddleware(raw_app), get
            ),
            Case(
                "SecurityHeaders, credentialed request (+ Cache-Control)",
                SecurityHeadersMiddleware(raw_app),
                credentialed,
            ),
            Case("SecurityHeaders, 20 route rules, none matching", routed, get),
            Case("peer: BaseHTTPMiddleware setting the same headers", headers_peer(raw_app), get),
        ],
        "HSTS is the yardstick: one precomputed header appended by a send wrapper.",
    )


def hosts_layer() -> Group:
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    allowed = ["api.example.com", "*.apps.example.com"]
    layer = AllowedHostsMiddleware(raw_app, allowed=allowed)
    return Group(
        "layer:hosts",
        [
            Case("raw ASGI app", raw_app, scope_factory()),
            Case("AllowedHosts, exact host", layer, scope_factory()),
            Case(
                "AllowedHosts, wildcard host",
                layer,
                with_host(b"a.apps.example.com"),
            ),
            Case(
                "peer: Starlette TrustedHostMiddleware, exact host",
                TrustedHostMiddleware(raw_app, allowed_hosts=allowed),
                scope_factory(),
            ),
            Case("AllowedHosts, refused host (400)", layer, with_host(b"evil.example")),
        ],
    )


def build() -> list[Group]:
    """Both groups (benchmarks.groups lists this builder)."""
    return [headers_layer(), hosts_layer()]
