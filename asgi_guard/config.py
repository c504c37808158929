"""One typed config for the whole stack, and :func:`guard` that builds it around an app."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from ._asgi import ASGIApp
from ._teach import did_you_mean, env_value, struct_fields, teach
from .errors import ConfigurationError

__all__ = [
    "AccessLogConfig",
    "ClaimLimit",
    "GuardConfig",
    "HTTPSConfig",
    "HeadersConfig",
    "HostsConfig",
    "IssuerConfig",
    "JWTConfig",
    "MetricsConfig",
    "ProxyConfig",
    "RateLimitConfig",
    "RouteConfig",
    "ValidationConfig",
    "guard",
    "load_config",
]

_ENV_PREFIX = "ASGI_GUARD_"


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ProxyConfig(_Section, frozen=True):
    """Trusted proxies (:class:`~asgi_guard.ProxyHeadersMiddleware`)."""

    trusted: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    """IPs and CIDRs of the proxies, "unix" (unix-socket peers) or "unix:PATH" (one socket)."""
    mode: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    """Which headers to read: X-Forwarded-* or RFC 7239 Forwarded."""


class HTTPSConfig(_Section, frozen=True):
    """HTTPS redirect and HSTS (:class:`~asgi_guard.HTTPSRedirectMiddleware`)."""

    hsts_max_age: int = 31_536_000
    """HSTS max-age in seconds."""
    hsts_include_subdomains: bool = True
    """Add includeSubDomains to HSTS."""
    hsts_preload: bool = False
    """Add preload to HSTS."""
    allowed_hosts: list[str] | None = None
    """Hosts a redirect may point to (exact or *.suffix)."""
    host: str | None = None
    """A fixed canonical host for redirects."""
    https_port: int = 443
    """The port of the HTTPS site."""
    exempt: list[str] = msgspec.field(default_factory=list)
    """Route patterns served over plain HTTP."""
    status_code: int = 308
    """Redirect status."""
    keep_port: bool = False
    """Keep the port of the request's Host in the redirect (one port for HTTP and HTTPS)."""


class ClaimLimit(_Section, frozen=True):
    """A limit chosen by a claim of the verified token, e.g. the caller's plan."""

    claim: str
    """The claim, e.g. "plan"."""
    values: dict[str, str]
    """Claim value -> limit, e.g. {free = "10/minute", pro = "1000/minute"}."""
    default: str
    """The limit of callers whose token lacks the claim or names another value."""


class RateLimitConfig(_Section, frozen=True):
    """Rate limiting (:class:`~asgi_guard.RateLimitMiddleware`)."""

    limit: str | ClaimLimit | None = None
    """Default limit for routes without a rule, e.g. "100/minute", or {claim, values, default}."""
    rules: dict[str, Any] = msgspec.field(default_factory=dict)
    """Route pattern -> limit, "exempt", or {limit, cost, group}."""
    strategy: Literal["sliding-window", "moving-window", "fixed-window"] = "sliding-window"
    """Counting strategy."""
    storage: str = "memory://"
    """A limits storage URI (memory://, redis://...)."""
    key: str = "ip"
    """ip, sub, claim:<name> or header:<name>; identity keys run after JWT authentication."""
    identity_limit: str | ClaimLimit | None = None
    """A second default limit keyed by the JWT subject, applied after authentication."""
    headers: bool | Literal["legacy"] = True
    """IETF RateLimit headers; "legacy" adds X-RateLimit-*."""
    shadow: bool = False
    """Count and log, never refuse."""
    on_storage_error: Literal["open", "closed", "local"] = "open"
    """Admit (open), refuse with 503 (closed) or count in process (local) while the storage fails."""
    processes: int = 1
    """Processes sharing the storage: the local fallback enforces each limit divided by it."""
    storage_timeout: float = 0.5
    """Seconds a network storage may take."""
    ipv6_prefix: int = 64
    """IPv6 clients are counted per network of this prefix length (128: per address)."""


class IssuerConfig(_Section, frozen=True):
    """One of several accepted token issuers (``jwt.issuers``)."""

    issuer: str
    """The exact iss of its tokens; it selects this entry."""
    audience: str | list[str] | None = None
    """Accepted aud values for its tokens."""
    algorithms: list[str] | None = None
    """Allowed algorithms."""
    jwks: str | dict[str, Any] | None = None
    """A JWKS file path or inline JWKS."""
    jwks_url: str | None = None
    """Remote JWKS URL."""
    discovery: bool = False
    """Use OIDC discovery from the issuer."""
    secret: str | None = None
    """HMAC secret."""


class JWTConfig(_Section, frozen=True):
    """JWT bearer authentication (:class:`~asgi_guard.JWTAuthMiddleware`)."""

    issuer: str | None = None
    """Required iss."""
    audience: str | list[str] | None = None
    """Accepted aud values."""
    algorithms: list[str] | None = None
    """Allowed algorithms."""
    jwks: str | dict[str, Any] | None = None
    """A JWKS file path or inline JWKS."""
    jwks_url: str | None = None
    """Remote JWKS URL."""
    discovery: bool = False
    """Use OIDC discovery from the issuer."""
    secret: str | None = None
    """HMAC secret (better supplied as ASGI_GUARD_JWT__SECRET)."""
    rules: dict[str, Any] = msgspec.field(default_factory=dict)
    """Route pattern -> scopes, "public", "authenticated" or "deny"."""
    default: Literal["authenticated", "public", "deny"] = "authenticated"
    """Policy of routes without a rule."""
    leeway: float = 30
    """Clock skew allowance in seconds."""
    token_type: str | None = None
    """Required typ header, e.g. at+jwt."""
    scope_claims: list[str] = msgspec.field(default_factory=lambda: ["scope", "scp"])
    """Claims that grant scopes."""
    realm: str = "api"
    """WWW-Authenticate realm."""
    cache_size: int = 10_000
    """Verified-token cache entries."""
    cache_max_bytes: int = 32 * 1024 * 1024
    """Memory the verified-token cache may hold, in bytes."""
    public_preflight: bool = True
    """Let CORS preflights through as on a public route (browsers send them without credentials)."""
    issuers: list[IssuerConfig] | None = None
    """Several issuers, each with its own keys and audience (instead of issuer, jwks...)."""


class ValidationConfig(_Section, frozen=True):
    """Request validation (:class:`~asgi_guard.ValidationMiddleware`)."""

    schemas: dict[str, Any] = msgspec.field(default_factory=dict)
    """Route pattern -> "module:Type" or a JSON Schema."""
    query: dict[str, Any] = msgspec.field(default_factory=dict)
    """Route pattern -> "module:Type" or a JSON Schema for the query string."""
    max_body_size: int = 1024 * 1024
    """Largest accepted body in bytes."""
    max_depth: int = 64
    """Deepest accepted JSON nesting."""
    body_timeout: float | None = 10.0
    """Seconds for receiving a whole body before 408 (None: no limit)."""


class AccessLogConfig(_Section, frozen=True):
    """The access log (:class:`~asgi_guard.AccessLogMiddleware`)."""

    logger: str = "asgi_guard.access"
    """Logger name."""
    redact_headers: list[str] = msgspec.field(default_factory=list)
    """More headers to redact."""
    redact_query: list[str] = msgspec.field(default_factory=list)
    """More query parameters to redact."""
    request_id_header: str | None = "x-request-id"
    """Request id header; null disables request ids."""
    log_headers: list[str] = msgspec.field(default_factory=list)
    """Request headers to include in records (redacted)."""
    exclude: list[str] = msgspec.field(default_factory=list)
    """Route patterns whose answers are logged only when they are errors (status >= 400)."""
    redact_values: list[str] = msgspec.field(default_factory=list)
    """More regular expressions of credentials, redacted wherever they appear."""
    output: Literal["auto", "stdout", "logging"] = "auto"
    """When no logging handler would receive the records: "auto" writes them as JSON lines to
    stdout; "stdout" always does; "logging" leaves logging alone and warns."""


class HeadersConfig(_Section, frozen=True):
    """Response security headers (:class:`~asgi_guard.SecurityHeadersMiddleware`).

    Each header option takes a value, or "" to send no such header.
    """

    content_type_options: str | None = "nosniff"
    """X-Content-Type-Options."""
    frame_options: str | None = "DENY"
    """X-Frame-Options: DENY or SAMEORIGIN."""
    content_security_policy: str | dict[str, list[str]] | None = (
        "default-src 'none'; frame-ancestors 'none'"
    )
    """Content-Security-Policy, as a string or a table of directive -> sources."""
    referrer_policy: str | None = "no-referrer"
    """Referrer-Policy."""
    cross_origin_resource_policy: str | None = "same-origin"
    """Cross-Origin-Resource-Policy."""
    cross_origin_opener_policy: str | None = None
    """Cross-Origin-Opener-Policy (off by default)."""
    cross_origin_embedder_policy: str | None = None
    """Cross-Origin-Embedder-Policy (off by default)."""
    permissions_policy: str | dict[str, list[str]] | None = None
    """Permissions-Policy, as a string or a table of feature -> origins (off by default)."""
    cache_control: str | None = "no-store"
    """Cache-Control on responses to requests with Authorization or Cookie, unless the app set one."""
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    """Any other response headers to add."""
    rules: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Route pattern -> {option = value} overrides (a page with its own CSP)."""


class HostsConfig(_Section, frozen=True):
    """The Host allow-list (:class:`~asgi_guard.AllowedHostsMiddleware`)."""

    allowed: list[str]
    """Host names this service answers to: "api.example.com", "*.example.com"."""
    exempt: list[str] = msgspec.field(default_factory=list)
    """Route patterns answered whatever the Host (a health check addressed by IP)."""


class MetricsConfig(_Section, frozen=True):
    """Decision metrics (:class:`~asgi_guard.MetricsMiddleware`)."""

    otel: bool = True
    """Record through the OpenTelemetry metrics API (the ``metrics`` extra)."""
    histogram: bool = True
    """Also record asgi_guard.added_duration, the time the stack adds per request."""
    on_decision: str | None = None
    """A "module:function" called with every :class:`~asgi_guard.metrics.Decision`."""


class RouteConfig(_Section, frozen=True):
    """Everything about one route, in one place; merged into the layers' own rules."""

    path: str
    """Route pattern, e.g. "POST /orders"."""
    scopes: list[str] | None = None
    """Scopes a token must grant."""
    public: bool = False
    """No token needed."""
    limit: str | ClaimLimit | None = None
    """Rate limit of this route, or {claim, values, default}."""
    cost: int = 1
    """Hits one request counts for."""
    schema: str | dict[str, Any] | None = None
    """Body type ("module:Type") or JSON Schema."""
    query: str | dict[str, Any] | None = None
    """Query type or JSON Schema."""
    redirect_exempt: bool = False
    """Serve over plain HTTP without redirect."""
    log: bool = True
    """false: log this route's answers only when they are errors (access_log.exclude)."""
    headers: dict[str, Any] | None = None
    """Security-header overrides for this route, e.g. {content_security_policy = "..."}."""


class GuardConfig(_Section, frozen=True):
    """The whole stack. A present section enables its layer."""

    proxy: ProxyConfig | None = None
    https: HTTPSConfig | None = None
    rate_limit: RateLimitConfig | None = None
    jwt: JWTConfig | None = None
    validation: ValidationConfig | None = None
    access_log: AccessLogConfig | None = None
    headers: HeadersConfig | None = None
    hosts: HostsConfig | None = None
    metrics: MetricsConfig | None = None
    routes: list[RouteConfig] = msgspec.field(default_factory=list)
    dev: bool = False
    """Local development: loopback is a trusted proxy, no HSTS, redirects keep the request's
    port (``asgi-guard serve --dev`` or ``ASGI_GUARD_DEV=1``). ``check`` reports it as an error."""


_SECTIONS = {
    "proxy": ProxyConfig,
    "https": HTTPSConfig,
    "rate_limit": RateLimitConfig,
    "jwt": JWTConfig,
    "validation": ValidationConfig,
    "access_log": AccessLogConfig,
    "headers": HeadersConfig,
    "hosts": HostsConfig,
    "metrics": MetricsConfig,
}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError("config", f"cannot read {str(path)!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError("config", f"{path.name} is not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("asgi-guard")
        if not isinstance(data, dict):
            raise ConfigurationError("config", "pyproject.toml has no [tool.asgi-guard] table")
    return data


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """ASGI_GUARD_<SECTION>__<OPTION>=value overrides (secrets stay out of files), and
    ASGI_GUARD_DEV for the local mode."""
    for name, value in environ.items():
        if name == _ENV_PREFIX + "DEV":
            data["dev"] = value
            continue
        if not name.startswith(_ENV_PREFIX) or "__" not in name:
            continue
        section, _, option = name[len(_ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigurationError(
                name, f"unknown section {section!r}{did_you_mean(section, _SECTIONS)}"
            )
        fields = struct_fields(_SECTIONS[section])
        if option not in fields:
            raise ConfigurationError(
                name,
                f"unknown option {option!r} of [{section}]{did_you_mean(option, fields)}",
            )
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigurationError(name, f"[{section}] is not a table")
        target[option] = env_value(name, value, fields[option])
    return data


def load_config(
    config: GuardConfig | Mapping[str, Any] | str | os.PathLike[str],
    environ: Mapping[str, str] | None = None,
) -> GuardConfig:
    """A validated :class:`GuardConfig` from a config object, a dict, or a TOML file path.

    Errors name the exact place, e.g. ``routes[2].limit: invalid rate '5/fortnight'``.
    """
    environ = os.environ if environ is None else environ
    if isinstance(config, GuardConfig):
        if not any(k.startswith(_ENV_PREFIX) for k in environ):
            return config
        config = msgspec.to_builtins(config)
    if isinstance(config, (str, os.PathLike)):
        data = _read_file(Path(config))
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        raise ConfigurationError("config", "must be a GuardConfig, a dict or a TOML file path")
    data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    data = _apply_env(data, environ)
    try:
        return msgspec.convert(data, GuardConfig, strict=False)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).partition(" - at `")
        where = where.rstrip("`").removeprefix("$").lstrip(".") or "config"
        raise ConfigurationError(where, teach(GuardConfig, where, message)) from None


def resolve(reference: str, where: str) -> Any:
    """The object named by ``"module:attribute"``."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(where, f"expected 'module:attribute', not {reference!r}")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(where, f"cannot import {reference!r}: {exc}") from None
    return value


def guard(
    app: ASGIApp,
    config: GuardConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> ASGIApp:
    """Wrap ``app`` in the layers ``config`` enables, in the order that keeps them correct::

        ProxyHeaders -> Metrics -> AccessLog -> AllowedHosts -> HTTPSRedirect
            -> SecurityHeaders -> RateLimit(ip) -> JWTAuth -> RateLimit(identity)
            -> Validation -> app

    The order, each layer's options and how ``routes`` merge into the layers' rules are
    tables in :mod:`asgi_guard.stack` (``STACK``, ``ROUTE_RULES``).

    ``config`` is a :class:`GuardConfig`, a dict of the same shape, or the path of a TOML file
    (``pyproject.toml`` is read from ``[tool.asgi-guard]``). ``ASGI_GUARD_<SECTION>__<OPTION>``
    environment variables override file values. A bad config raises
    :class:`ConfigurationError` here, at start-up, never at the first request.
    """
    from .stack import build

    cfg = load_config(config, environ)
    if cfg.dev:
        from .local import local_mode

        cfg = local_mode(cfg)
    return build(app, cfg)
