"""Litestar glue: per-handler policies through ``opt``, and dependencies.

Litestar runs middleware after routing, so a handler's ``opt`` can carry policies::

    @post("/orders", opt={"scopes": ["orders:write"], "limit": "5/minute", "schema": Order})

:class:`HandlerPolicies` (added with ``DefineMiddleware``) enforces them per handler with the
same layers as everywhere else. Authentication stays global: wrap the Litestar app object in
:class:`~asgi_guard.JWTAuthMiddleware` (or :func:`~asgi_guard.guard`) so tokens are checked
before routing.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request

from .._asgi import ASGIApp, Receive, Scope, Send
from ..jwt import AnonymousUser, AuthenticatedUser, RequireScopes
from ..ratelimit import RateLimitMiddleware
from ..validation import ValidationMiddleware

__all__ = ["HandlerPolicies", "provide_user", "provide_validated_body"]

_EVERY_PATH: Final = "/{rest:path}"
_KEYS: Final = ("scopes", "limit", "schema")


class HandlerPolicies:
    """Enforce ``opt={"scopes": [...], "limit": "...", "schema": Type}`` of Litestar handlers.

    The layers for a handler are built on its first request and kept. ``storage`` and ``key``
    are those of :class:`~asgi_guard.RateLimitMiddleware`; each handler counts separately.
    """

    def __init__(
        self, app: ASGIApp, *, storage: str = "memory://", key: str = "ip", realm: str = "api"
    ) -> None:
        self.app = app
        self.storage = storage
        self.key = key
        self.realm = realm
        self._chains: dict[int, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", None)
        if not opt or not any(name in opt for name in _KEYS):
            await self.app(scope, receive, send)
            return
        chain = self._chains.get(id(handler))
        if chain is None:
            chain = self._chains[id(handler)] = self._build(handler, opt)
        await chain(scope, receive, send)

    def _build(self, handler: Any, opt: dict[str, Any]) -> ASGIApp:
        chain = self.app
        if "schema" in opt:
            chain = ValidationMiddleware(chain, schemas={_EVERY_PATH: opt["schema"]})
        if "limit" in opt:
            group = f"litestar:{getattr(handler, 'handler_name', id(handler))}"
            chain = RateLimitMiddleware(
                chain,
                rules={_EVERY_PATH: {"limit": opt["limit"], "group": group}},
                storage=self.storage,
                key=self.key,
            )
        if "scopes" in opt:
            chain = RequireScopes(chain, scopes=opt["scopes"], realm=self.realm)
        return chain


def provide_user(request: Request[Any, Any, Any]) -> AuthenticatedUser | AnonymousUser:
    """Dependency: the caller (``Provide(provide_user, sync_to_thread=False)``)."""
    user = request.scope.get("user")
    return user if isinstance(user, AuthenticatedUser) else AnonymousUser()


def provide_validated_body(request: Request[Any, Any, Any]) -> Any:
    """Dependency: the body ValidationMiddleware decoded."""
    return request.scope.get("state", {}).get("validated_body")
