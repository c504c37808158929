"""asgi_guard: composable, framework-agnostic pure-ASGI security middlewares."""

from __future__ import annotations

from .errors import ConfigurationError
from .https import HTTPSRedirectMiddleware
from .jwt import AnonymousUser, AuthenticatedUser, JWTAuthMiddleware
from .proxy import ProxyHeadersMiddleware
from .ratelimit import RateLimitMiddleware
from .routes import RouteTable

__all__ = [
    "AnonymousUser",
    "AuthenticatedUser",
    "ConfigurationError",
    "HTTPSRedirectMiddleware",
    "JWTAuthMiddleware",
    "ProxyHeadersMiddleware",
    "RateLimitMiddleware",
    "RouteTable",
]
__version__ = "0.1.0"
