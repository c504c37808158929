"""The stack :func:`asgi_guard.guard` builds, as data: which layers, in which order, with which
options, and how a ``[[routes]]`` entry merges into the layers' own rules.

:data:`STACK` lists the layers outermost first, one row per layer: its config section, its
class, how its options are built from the config, and why it stands where it does.
:data:`ROUTE_RULES` lists what each field of a route becomes in its layer's options.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from ._asgi import ASGIApp
from .config import GuardConfig, RouteConfig, resolve
from .errors import ConfigurationError
from .ratelimit import is_claim_limit, policy_of
from .routes import RouteTable, parse_pattern

__all__ = ["ROUTE_RULES", "STACK", "Layer", "Plan", "RouteRule", "build"]


class Plan:
    """A config with its routes merged into the layers' rules: what the rows build from."""

    def __init__(self, cfg: GuardConfig) -> None:
        self.cfg = cfg
        self.jwt_rules: dict[str, Any] = dict(cfg.jwt.rules) if cfg.jwt else {}
        self.limit_rules: dict[str, Any] = dict(cfg.rate_limit.rules) if cfg.rate_limit else {}
        validation = cfg.validation
        self.schemas = {
            k: _schema(v, f"validation.schemas[{k!r}]")
            for k, v in (validation.schemas if validation else {}).items()
        }
        self.queries = {
            k: _schema(v, f"validation.query[{k!r}]")
            for k, v in (validation.query if validation else {}).items()
        }
        self.exempt: list[str] = list(cfg.https.exempt) if cfg.https else []
        self.excluded: list[str] = list(cfg.access_log.exclude) if cfg.access_log else []
        self.header_rules: dict[str, Any] = dict(cfg.headers.rules) if cfg.headers else {}
        for index, route in enumerate(cfg.routes):
            where = f"routes[{index}]"
            parse_pattern(route.path, f"{where}.path")
            for rule in ROUTE_RULES:
                rule.merge(self, route, where)
        self.ip_limits, self.identity_limits = _split_limits(self)


def _schema(value: Any, where: str) -> Any:
    return resolve(value, where) if isinstance(value, str) else value


@dataclass(frozen=True)
class RouteRule:
    """How one field of a route merges: into which section's rules, as what."""

    field: str
    section: str
    #: The needed section as the error names it ("a [jwt] section").
    needs: str
    #: The value the rules get, or None when the route leaves this layer alone.
    value: Callable[[RouteConfig, str], Any]
    #: Where it goes: the Plan's rule table (dict, keyed by path) or list (of paths).
    into: str

    def merge(self, plan: Plan, route: RouteConfig, where: str) -> None:
        """Merge ``route``'s field into ``plan``, or refuse it without its section."""
        value = self.value(route, where)
        if value is None:
            return
        if getattr(plan.cfg, self.section) is None:
            raise ConfigurationError(f"{where}.{self.field}", f"needs {self.needs}")
        target = getattr(plan, self.into)
        if isinstance(target, list):
            target.append(route.path)
        else:
            target[route.path] = value


def _scopes(route: RouteConfig, where: str) -> Any:
    if route.scopes is None and not route.public:
        return None
    if route.scopes is not None and route.public:
        raise ConfigurationError(f"{where}.public", "a public route cannot require scopes")
    return "public" if route.public else list(route.scopes or [])


def _limit(route: RouteConfig, where: str) -> Any:
    if route.limit is None:
        return None
    limit = _builtin(route.limit)
    policy_of(f"{where}.limit", limit, "", route.cost)
    return {"limit": limit, "cost": route.cost} if route.cost != 1 else limit


def _builtin(value: Any) -> Any:
    """A limit option as the layer takes it: a string, or a dict for a ClaimLimit."""
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


#: What each route field becomes, checked in this order.
ROUTE_RULES: tuple[RouteRule, ...] = (
    RouteRule("scopes", "jwt", "a [jwt] section", _scopes, "jwt_rules"),
    RouteRule("limit", "rate_limit", "a [rate_limit] section", _limit, "limit_rules"),
    RouteRule(
        "schema",
        "validation",
        "a [validation] section",
        lambda r, w: None if r.schema is None else _schema(r.schema, f"{w}.schema"),
        "schemas",
    ),
    RouteRule(
        "query",
        "validation",
        "a [validation] section",
        lambda r, w: None if r.query is None else _schema(r.query, f"{w}.query"),
        "queries",
    ),
    RouteRule(
        "redirect_exempt",
        "https",
        "an [https] section",
        lambda r, w: True if r.redirect_exempt else None,
        "exempt",
    ),
    RouteRule(
        "log",
        "access_log",
        "an [access_log] section",
        lambda r, w: None if r.log else True,
        "excluded",
    ),
    RouteRule("headers", "headers", "a [headers] section", lambda r, w: r.headers, "header_rules"),
)


def _identity_key(key: str) -> bool:
    return key == "sub" or key.startswith("claim:")


def _split_limits(plan: Plan) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The options of the IP-keyed and of the identity-keyed rate-limit layer."""
    rl = plan.cfg.rate_limit
    if rl is None:
        return None, None
    common = _options(rl)
    for own in ("limit", "rules", "key", "identity_limit"):
        del common[own]
    ip_limits = identity_limits = None
    limit, identity_limit = _builtin(rl.limit), _builtin(rl.identity_limit)
    if _identity_key(rl.key):
        if rl.identity_limit is not None:
            raise ConfigurationError("rate_limit.identity_limit", "with an identity key, use limit")
        identity_limits = {"limit": limit, "rules": plan.limit_rules, "key": rl.key, **common}
    else:
        _no_claim_limit_before_jwt(limit, plan.limit_rules, plan.cfg.routes)
        ip_limits = {"limit": limit, "rules": plan.limit_rules, "key": rl.key, **common}
        if rl.identity_limit is not None:
            identity_limits = {"limit": identity_limit, "rules": {}, "key": "sub", **common}
    if identity_limits is not None and plan.cfg.jwt is None:
        raise ConfigurationError("rate_limit.key", "identity-keyed limits need a [jwt] section")
    return ip_limits, identity_limits


def _no_claim_limit_before_jwt(
    limit: Any, rules: dict[str, Any], routes: list[RouteConfig]
) -> None:
    """Refuse a claim-chosen limit in the IP-keyed layer, which runs before JWT: no verified
    claim exists there, so every caller would silently get the default."""
    found = "rate_limit.limit" if is_claim_limit(limit) else None
    for pattern, value in rules.items():
        if found is None and (
            is_claim_limit(value)
            or (isinstance(value, dict) and is_claim_limit(value.get("limit")))
        ):
            index = next((i for i, r in enumerate(routes) if r.path == pattern), None)
            found = f"rate_limit.rules[{pattern!r}]" if index is None else f"routes[{index}].limit"
    if found is not None:
        raise ConfigurationError(
            found,
            "a limit chosen by a claim needs the verified token: the IP-keyed limit runs before"
            ' JWT. Use key = "sub" (or "claim:<name>"), or put it in identity_limit',
        )


def _options(section: Any) -> dict[str, Any]:
    """A section's fields as keyword arguments for its layer (sections use the layers' own
    option names)."""
    return msgspec.structs.asdict(section)


def _section(name: str, **merged: str) -> Callable[[Plan], dict[str, Any] | None]:
    """Options of a layer on when its section is: the section's fields, with the rules merged
    from ``routes`` (Plan attribute names) overriding."""

    def options(plan: Plan) -> dict[str, Any] | None:
        section = getattr(plan.cfg, name)
        if section is None:
            return None
        return {**_options(section), **{k: getattr(plan, v) for k, v in merged.items()}}

    return options


def _https(plan: Plan) -> dict[str, Any] | None:
    options = _section("https", exempt="exempt")(plan)
    if options is not None and options["allowed_hosts"] is None and plan.cfg.hosts is not None:
        options["allowed_hosts"] = plan.cfg.hosts.allowed  # redirect only where it is served
    return options


def _jwt(plan: Plan) -> dict[str, Any] | None:
    options = _section("jwt", rules="jwt_rules")(plan)
    jwt = plan.cfg.jwt
    if options is not None and jwt is not None and jwt.issuers is not None:
        options["issuers"] = [_options(entry) for entry in jwt.issuers]
    return options


def _metrics(plan: Plan) -> dict[str, Any] | None:
    cfg = plan.cfg
    if cfg.metrics is None:
        return None
    deciding = [
        ("host", cfg.hosts is not None),
        ("https", cfg.https is not None),
        ("ratelimit", plan.ip_limits is not None),
        ("jwt", cfg.jwt is not None),
        ("ratelimit", plan.identity_limits is not None),
        ("validation", cfg.validation is not None),
    ]
    patterns = [
        *(route.path for route in cfg.routes),
        *plan.jwt_rules,
        *plan.limit_rules,
        *plan.schemas,
        *plan.queries,
        *plan.exempt,
        *plan.excluded,
    ]
    hook = cfg.metrics.on_decision
    return {
        "layers": [layer for layer, present in deciding if present],
        "routes": _distinct_routes(patterns),
        "otel": cfg.metrics.otel,
        "histogram": cfg.metrics.histogram,
        "on_decision": None if hook is None else resolve(hook, "metrics.on_decision"),
    }


def _app_timer(plan: Plan) -> dict[str, Any] | None:
    metrics = plan.cfg.metrics
    return {} if metrics is not None and metrics.otel and metrics.histogram else None


@dataclass(frozen=True)
class Layer:
    """One row of the stack: a layer, where its options come from, and why it is there."""

    section: str
    #: The layer's class, "module:Class", imported when a config enables it.
    factory: str
    #: Its keyword options from the plan, or None when the config leaves it out.
    options: Callable[[Plan], dict[str, Any] | None]
    why: str


#: The stack, outermost first.
STACK: tuple[Layer, ...] = (
    Layer(
        "proxy",
        "asgi_guard.proxy:ProxyHeadersMiddleware",
        _section("proxy"),
        "first: every later layer sees the real client address and scheme",
    ),
    Layer(
        "metrics",
        "asgi_guard.metrics:MetricsMiddleware",
        _metrics,
        "outside every layer that refuses: it sees each decision's final code",
    ),
    Layer(
        "access_log",
        "asgi_guard.accesslog:AccessLogMiddleware",
        _section("access_log", exclude="excluded"),
        "outside every layer that refuses: one record per request, with the refusal's code",
    ),
    Layer(
        "hosts",
        "asgi_guard.hosts:AllowedHostsMiddleware",
        _section("hosts"),
        "after the proxy (the forwarded Host is checked), before everything else",
    ),
    Layer(
        "https",
        "asgi_guard.https:HTTPSRedirectMiddleware",
        _https,
        "before anything that reads credentials: a token sent in clear is never examined",
    ),
    Layer(
        "headers",
        "asgi_guard.headers:SecurityHeadersMiddleware",
        _section("headers", rules="header_rules"),
        "outside every layer that refuses (429, 401, 403, 413, 422): refusals carry them too",
    ),
    Layer(
        "rate_limit",
        "asgi_guard.ratelimit:RateLimitMiddleware",
        lambda plan: plan.ip_limits,
        "an IP-keyed limit before JWT: floods are refused before a signature check",
    ),
    Layer(
        "jwt",
        "asgi_guard.jwt:JWTAuthMiddleware",
        _jwt,
        "before the identity-keyed limit, which needs the verified subject",
    ),
    Layer(
        "rate_limit",
        "asgi_guard.ratelimit:RateLimitMiddleware",
        lambda plan: plan.identity_limits,
        "an identity-keyed limit (sub, claim:...) after JWT, where the identity is known",
    ),
    Layer(
        "validation",
        "asgi_guard.validation:ValidationMiddleware",
        _section("validation", schemas="schemas", query="queries"),
        "last: only authenticated, admitted requests pay for reading a body",
    ),
    Layer(
        "metrics",
        "asgi_guard.metrics:AppTimer",
        _app_timer,
        "innermost: the app's own time, subtracted from the stack's",
    ),
)


def build(app: ASGIApp, cfg: GuardConfig) -> ASGIApp:
    """Wrap ``app`` in the layers of :data:`STACK` that ``cfg`` enables."""
    plan = Plan(cfg)
    enabled = [(layer, options) for layer in STACK if (options := layer.options(plan)) is not None]
    stack = app
    for layer, options in reversed(enabled):  # built from the inside out
        module, _, name = layer.factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
        try:
            stack = factory(stack, **options)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{layer.section}.{exc.option}", exc.message) from None
    return stack


def _distinct_routes(patterns: list[str]) -> list[str]:
    """The patterns, each route once: sections may name the same route in other spellings
    (``GET /a`` in one, ``GET|HEAD /a`` in another), which one table cannot hold twice."""
    kept: list[str] = []
    for pattern in dict.fromkeys(patterns):
        try:
            RouteTable.of_patterns([*kept, pattern], option="routes")
        except ConfigurationError:
            continue
        kept.append(pattern)
    return kept
