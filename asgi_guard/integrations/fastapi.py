"""FastAPI dependencies over what the asgi_guard layers put in the scope.

``require_scopes("orders:write")`` checks scopes at the handler and documents them: the
OpenAPI document gets a ``bearerAuth`` HTTP bearer scheme and each operation lists its scopes.
Authentication itself is done by :class:`~asgi_guard.JWTAuthMiddleware` (add it with
``app.add_middleware``); these dependencies only read its result.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.params import Security as SecurityParam
from fastapi.security import HTTPBearer, SecurityScopes

from ..jwt import AnonymousUser, AuthenticatedUser

__all__ = [
    "bearer_scheme",
    "current_user",
    "optional_user",
    "require_scopes",
    "validated_body",
    "validated_query",
]


class _GuardBearer(HTTPBearer):
    """Declares the bearer scheme for OpenAPI; the middleware already verified the token."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


bearer_scheme = _GuardBearer(scheme_name="bearerAuth", bearerFormat="JWT", auto_error=False)


async def current_user(
    request: Request, security_scopes: SecurityScopes, _: None = Security(bearer_scheme)
) -> AuthenticatedUser:
    """The authenticated caller; 401 if anonymous, 403 if a scope the operation needs is missing."""
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        raise HTTPException(
            401, "An access token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    missing = set(security_scopes.scopes) - user.scopes
    if missing:
        listed = " ".join(sorted(security_scopes.scopes))
        raise HTTPException(
            403,
            f"The access token lacks a required scope: {listed}.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{listed}"'},
        )
    return user


def optional_user(request: Request) -> AuthenticatedUser | AnonymousUser:
    """The caller, authenticated or anonymous (on public routes)."""
    user = request.scope.get("user")
    return user if isinstance(user, AuthenticatedUser) else AnonymousUser()


def require_scopes(*scopes: str) -> SecurityParam:
    """A dependency requiring every scope in ``scopes``; use as ``user = require_scopes(...)``."""
    return Security(current_user, scopes=list(scopes))  # type: ignore[no-any-return]


def validated_body(request: Request) -> Any:
    """The body :class:`~asgi_guard.ValidationMiddleware` decoded for this route."""
    return request.scope.get("state", {}).get("validated_body")


def validated_query(request: Request) -> Any:
    """The query :class:`~asgi_guard.ValidationMiddleware` decoded for this route."""
    return request.scope.get("state", {}).get("validated_query")
