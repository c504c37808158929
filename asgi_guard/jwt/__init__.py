"""JWT bearer authentication with OAuth2 scope enforcement (RFC 6750, RFC 7519, RFC 9068).

``middleware`` is the layer; ``rules`` what a route requires; ``tokens`` verifies a token;
``keys``, ``fetch`` and ``cache`` hold the verification keys and verified tokens; ``user`` the
authenticated caller the app sees.
"""

from .middleware import JWTAuthMiddleware
from .rules import RequireScopes, ScopeRequirement
from .user import AnonymousUser, AuthenticatedUser

__all__ = [
    "AnonymousUser",
    "AuthenticatedUser",
    "JWTAuthMiddleware",
    "RequireScopes",
    "ScopeRequirement",
]
