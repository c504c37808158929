"""Litestar glue: per-handler policies through ``opt``, checked at start-up, and dependencies.

Litestar runs middleware after routing, so a handler's ``opt`` can carry policies::

    @post("/orders", opt={"scopes": "orders:write", "limit": "5/minute", "schema": Order})

:class:`GuardPlugin` (``Litestar(plugins=[GuardPlugin(config)])``) builds every handler's
policies when the app is created, so a typo is a :class:`~asgi_guard.ConfigurationError`
naming the handler, never a 500 at the first request; it takes the rate-limit storage and
options from the guard config, and documents the bearer scheme, each handler's scopes and its
request body in Litestar's OpenAPI. Authentication stays global: wrap the Litestar app object
in :func:`~asgi_guard.guard` (or :class:`~asgi_guard.JWTAuthMiddleware`) so tokens are checked
before routing.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from litestar import Request
from litestar._asgi.utils import get_route_handlers
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi.spec import Components, OpenAPIMediaType, RequestBody, SecurityScheme
from litestar.plugins import InitPluginProtocol, ReceiveRoutePlugin
from litestar.routes import BaseRoute

from .._asgi import ASGIApp, Receive, Scope, Send
from .._teach import did_you_mean
from ..config import GuardConfig, load_config, resolve
from ..errors import ConfigurationError
from ..jwt import AnonymousUser, AuthenticatedUser, RequireScopes
from ..ratelimit import RateLimitMiddleware
from ..validation import ValidationMiddleware
from .pydantic import decoder_for

__all__ = ["GuardPlugin", "HandlerPolicies", "provide_user", "provide_validated_body"]

_EVERY_PATH: Final = "/{rest:path}"
_KEYS: Final = ("scopes", "limit", "schema")
_SCHEME: Final = "bearerAuth"
#: RateLimitConfig fields a handler's limit shares with the guard's own limits.
_SHARED_LIMIT_OPTIONS: Final = (
    "storage",
    "key",
    "strategy",
    "headers",
    "shadow",
    "on_storage_error",
    "storage_timeout",
    "ipv6_prefix",
)


def _scopes(value: Any) -> Any:
    """A scope string reads as the JWT rules read it: space-separated scopes."""
    return value.split() if isinstance(value, str) else value


def _name(handler: Any) -> str:
    return str(getattr(handler, "handler_name", None) or getattr(handler, "name", None) or handler)


def _identity(handler: Any) -> str:
    """A handler's counter name, the same in every process: its function's module and
    qualified name (``handler_name`` alone is ``get`` for every controller's ``get``)."""
    fn = getattr(handler, "fn", None)
    fn = getattr(fn, "func", fn)  # a functools.partial, as Litestar unwraps it
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(qualname, str):
        return _name(handler)
    return f"{getattr(fn, '__module__', '')}.{qualname}"


def build_policies(
    app: ASGIApp,
    handler: Any,
    opt: Mapping[str, Any],
    realm: str,
    limits: Mapping[str, Any],
    made: list[RateLimitMiddleware] | None = None,
) -> ASGIApp:
    """The layers ``opt`` asks for around ``app``; a bad policy names the handler. Rate
    limiters built are added to ``made`` (their storages are closed at shutdown)."""
    chain = app
    key = ""
    try:
        if "schema" in opt:
            key = "schema"
            schema = opt["schema"]
            if isinstance(schema, str):
                schema = resolve(schema, "schema")
            chain = ValidationMiddleware(chain, schemas={_EVERY_PATH: schema})
        if "limit" in opt:
            key = "limit"
            group = f"litestar:{_identity(handler)}"
            chain = RateLimitMiddleware(
                chain, rules={_EVERY_PATH: {"limit": opt["limit"], "group": group}}, **limits
            )
            if made is not None:
                made.append(chain)
        if "scopes" in opt:
            key = "scopes"
            chain = RequireScopes(chain, scopes=_scopes(opt["scopes"]), realm=realm)
    except ConfigurationError as exc:
        raise ConfigurationError(f"handler {_name(handler)!r} opt[{key!r}]", exc.message) from None
    return chain


class HandlerPolicies:
    """Enforce ``opt={"scopes": ..., "limit": "...", "schema": Type}`` of Litestar handlers.

    :class:`GuardPlugin` adds it with the guard config's options. Added by hand (with
    ``DefineMiddleware``), ``storage`` and ``key`` are those of
    :class:`~asgi_guard.RateLimitMiddleware`, and a handler's layers are built at its first
    request. Each handler counts separately.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        storage: str = "memory://",
        key: str = "ip",
        realm: str = "api",
        limits: Mapping[str, Any] | None = None,
        made: list[RateLimitMiddleware] | None = None,
    ) -> None:
        self.app = app
        self._made = made
        self.storage = storage
        self.key = key
        self.realm = realm
        self._limits = dict(limits) if limits is not None else {"storage": storage, "key": key}
        self._chains: dict[int, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        opt = getattr(handler, "opt", None)
        if not opt or not any(name in opt for name in _KEYS):
            await self.app(scope, receive, send)
            return
        chain = self._chains.get(id(handler))
        if chain is None:
            chain = build_policies(self.app, handler, opt, self.realm, self._limits, self._made)
            self._chains[id(handler)] = chain
        await chain(scope, receive, send)


async def _never(scope: Scope, receive: Receive, send: Send) -> None:
    """The app a policy is built around to check it at start-up: never called."""


def _body_schema(schema: Any) -> dict[str, Any]:
    """A request body's JSON Schema, self-contained: Litestar writes the document's
    components from its own registry, so definitions are inlined (a recursive one as ``{}``)."""
    if isinstance(schema, str):
        schema = resolve(schema, "schema")
    if isinstance(schema, Mapping):
        return dict(schema)
    if decoder_for(schema) is not None:  # a pydantic model
        document = schema.model_json_schema()
    else:
        document = msgspec.json.schema(schema)
    definitions = document.pop("$defs", {})

    def inline(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen or name not in definitions:
                    return {}
                return inline(definitions[name], seen | {name})
            return {key: inline(value, seen) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item, seen) for item in node]
        return node

    body: dict[str, Any] = inline(document, frozenset())
    return body


class GuardPlugin(InitPluginProtocol, ReceiveRoutePlugin):
    """Handler ``opt`` policies for a Litestar app, checked and documented at start-up.

    Args:
        config: the guard config (a :class:`~asgi_guard.GuardConfig`, a dict or a TOML path)
            whose ``[rate_limit]`` (storage, key, strategy, ...) and ``jwt.realm`` the
            handlers' policies share; None for the defaults (memory storage, per address).
        environ: environment overrides, as for :func:`~asgi_guard.guard`.
    """

    def __init__(
        self,
        config: GuardConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        cfg = GuardConfig() if config is None else load_config(config, environ)
        rate_limit = msgspec.structs.asdict(cfg.rate_limit) if cfg.rate_limit else {}
        self.limits: dict[str, Any] = {
            name: rate_limit[name] for name in _SHARED_LIMIT_OPTIONS if name in rate_limit
        }
        self.realm = cfg.jwt.realm if cfg.jwt else "api"
        self._components: Components | None = None
        self._made: list[RateLimitMiddleware] = []

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the policies' middleware and the bearer security scheme."""
        app_config.middleware.append(
            DefineMiddleware(
                HandlerPolicies,  # type: ignore[arg-type]
                realm=self.realm,
                limits=self.limits,
                made=self._made,
            )
        )
        app_config.on_shutdown.append(self.aclose)
        openapi = app_config.openapi_config
        if openapi is not None:
            # A config of this app's own: Litestar's default one is shared by every app.
            parts = (
                openapi.components if isinstance(openapi.components, list) else [openapi.components]
            )
            self._components = Components(
                security_schemes={
                    _SCHEME: SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            )
            app_config.openapi_config = copy.copy(openapi)
            app_config.openapi_config.components = [self._components, *parts]
        return app_config

    async def aclose(self) -> None:
        """Close the handlers' rate-limit storages (run at the app's shutdown)."""
        made, self._made[:] = list(self._made), []
        for limiter in made:
            await limiter.aclose()

    def receive_route(self, route: BaseRoute) -> None:
        """Build each handler's policies now (errors name the handler) and document them."""
        for handler in get_route_handlers(route):
            opt = getattr(handler, "opt", None) or {}
            for name in opt:
                # A misspelt policy ("scope", "limits") would leave the handler unguarded in
                # silence; a key of the app's own ("schema_name", "limit_by") is not that close.
                near = did_you_mean(name, _KEYS, cutoff=0.85) if name not in _KEYS else ""
                if near:
                    raise ConfigurationError(
                        f"handler {_name(handler)!r} opt[{name!r}]", f"not a policy{near}"
                    )
            if not any(name in opt for name in _KEYS):
                continue
            build_policies(_never, handler, opt, self.realm, self.limits, self._made)
            if self._components is None:
                continue
            if "scopes" in opt and hasattr(handler, "security"):
                requirement = {_SCHEME: list(_scopes(opt["scopes"]))}
                handler.security = [*(handler.security or ()), requirement]
            if "schema" in opt and hasattr(handler, "operation_class"):
                body = _body_schema(opt["schema"])
                handler.operation_class = _with_body(handler.operation_class, body)


def _with_body(operation_class: Any, schema: dict[str, Any]) -> Any:
    """``operation_class`` documenting ``schema`` as the JSON request body, unless the handler
    has a body parameter of its own (then Litestar's description stands)."""
    body = RequestBody(
        content={"application/json": OpenAPIMediaType(schema=schema)},  # type: ignore[arg-type]
        required=True,
    )

    class _GuardedOperation(operation_class):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if getattr(self, "request_body", None) is None:
                self.request_body = body

    return _GuardedOperation


def provide_user(request: Request[Any, Any, Any]) -> AuthenticatedUser | AnonymousUser:
    """Dependency: the caller (``Provide(provide_user, sync_to_thread=False)``)."""
    user = request.scope.get("user")
    return user if isinstance(user, AuthenticatedUser) else AnonymousUser()


def provide_validated_body(request: Request[Any, Any, Any]) -> Any:
    """Dependency: the body ValidationMiddleware decoded."""
    return request.scope.get("state", {}).get("validated_body")
