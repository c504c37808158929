"""FastAPI dependencies over what the asgi_guard layers put in the scope.

``require_scopes("orders:write")`` checks scopes at the handler and documents them: the
OpenAPI document gets a ``bearerAuth`` HTTP bearer scheme and each operation lists its scopes.
Authentication itself is done by :class:`~asgi_guard.JWTAuthMiddleware` (add it with
``app.add_middleware``); these dependencies only read its result. :func:`openapi_responses`
documents the guard's RFC 9457 answers in place of FastAPI's own 422 shape.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import HTTPException, Request, Security
from fastapi.params import Security as SecurityParam
from fastapi.security import HTTPBearer, SecurityScopes

from ..jwt import AnonymousUser, AuthenticatedUser

__all__ = [
    "bearer_scheme",
    "current_user",
    "openapi_responses",
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


_PROBLEM: Final[dict[str, Any]] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; code is stable, detail is for people.",
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Where the body or query fails its schema (422 only).",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "string"}, "msg": {"type": "string"}},
                "required": ["loc", "msg"],
            },
        },
    },
    "required": ["type", "title", "status", "code"],
}
#: What each status means coming from the guard, with the codes it carries.
_ANSWERS: Final = {
    400: "Malformed request: validation.malformed, jwt.invalid_request, https.bad_host.",
    401: "No valid access token: jwt.missing, jwt.invalid_token, jwt.expired, ...",
    403: "The token lacks a required scope: jwt.insufficient_scope (or the route is denied).",
    413: "The body is over the size limit: validation.too_large.",
    415: "The body is not JSON: validation.unsupported_media_type, unsupported_encoding.",
    422: "The body or query does not match its schema: validation.invalid_body, invalid_query.",
    429: "Too many requests: ratelimit.exceeded (see Retry-After).",
    503: "Keys or the rate-limit storage are unavailable: jwt.keys_unavailable, ratelimit.unavailable.",
}


def openapi_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the guard's problem+json answers (all of them by default).

    Give them to ``FastAPI(responses=...)`` for every route, or to one route's decorator;
    a 422 among them replaces FastAPI's own ``HTTPValidationError`` shape.
    """
    unknown = set(statuses) - set(_ANSWERS)
    if unknown:
        raise ValueError(f"no guard answer has status {sorted(unknown)}; known: {sorted(_ANSWERS)}")
    return {
        status: {
            "description": _ANSWERS[status],
            "content": {"application/problem+json": {"schema": _PROBLEM}},
        }
        for status in statuses or tuple(_ANSWERS)
    }
