"""asgi_guard: composable, framework-agnostic pure-ASGI security middlewares."""

from __future__ import annotations

from .accesslog import AccessLogMiddleware, JSONLinesHandler, RequestIdFilter, current_request_id
from .check import Finding, check
from .config import GuardConfig, guard, load_config
from .errors import ConfigurationError
from .headers import SecurityHeadersMiddleware, build_csp, inline_script_hashes
from .hosts import AllowedHostsMiddleware
from .https import HTTPSRedirectMiddleware
from .jwt import AnonymousUser, AuthenticatedUser, JWTAuthMiddleware, RequireScopes
from .metrics import Decision, MetricsMiddleware
from .proxy import ProxyHeadersMiddleware
from .ratelimit import RateLimitMiddleware
from .routes import RouteTable
from .validation import ValidationMiddleware, compile_schema, openapi_components

__all__ = [
    "AccessLogMiddleware",
    "AllowedHostsMiddleware",
    "AnonymousUser",
    "AuthenticatedUser",
    "ConfigurationError",
    "Decision",
    "Finding",
    "GuardConfig",
    "HTTPSRedirectMiddleware",
    "JSONLinesHandler",
    "JWTAuthMiddleware",
    "MetricsMiddleware",
    "ProxyHeadersMiddleware",
    "RateLimitMiddleware",
    "RequestIdFilter",
    "RequireScopes",
    "RouteTable",
    "SecurityHeadersMiddleware",
    "ValidationMiddleware",
    "build_csp",
    "check",
    "compile_schema",
    "current_request_id",
    "guard",
    "inline_script_hashes",
    "load_config",
    "openapi_components",
]
__version__ = "0.1.0"
