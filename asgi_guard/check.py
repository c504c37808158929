"""``asgi_guard.check``: insecure or suspicious settings in a config, each with a fix."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
from joserfc.errors import SecurityWarning

from .config import GuardConfig, IssuerConfig, JWTConfig, guard, load_config
from .errors import ConfigurationError
from .routes import parse_pattern

__all__ = ["Finding", "check", "check_app"]

_SIX_MONTHS: Final = 15_552_000
_TEN_MIB: Final = 10 * 1024 * 1024
#: Routes that issue or exchange credentials: limits there must not fail open.
_CREDENTIAL_ROUTE: Final = re.compile(
    r"(login|token|oauth|signin|sign-in|auth|password|session)", re.I
)


class Finding(msgspec.Struct, frozen=True):
    """One problem found in a config."""

    code: str
    """Stable identifier, e.g. ``AG001``."""
    level: Literal["error", "warning"]
    """``error`` findings make ``asgi-guard check`` exit non-zero."""
    message: str
    """What is wrong."""
    fix: str
    """What to change."""

    def __str__(self) -> str:
        return f"{self.code} [{self.level}] {self.message} Fix: {self.fix}"


def check(
    config: GuardConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    workers: int = 1,
    environ: Mapping[str, str] | None = None,
    app: Any = None,
) -> list[Finding]:
    """Review ``config`` like a deployment checklist; returns the findings (empty when clean).

    The config is first built as :func:`~asgi_guard.guard` builds it, so whatever ``guard()``
    refuses raises the same :class:`ConfigurationError` here. ``workers`` is the number of
    server processes the app will run in (memory storage is per process, so limits multiply
    with workers). With ``app`` (an ASGI app or ``"module:app"``), the findings of
    :func:`check_app` are added.
    """
    cfg = load_config(config, environ)
    with warnings.catch_warnings(), _logging_untouched(cfg):
        # joserfc warns of a short HMAC key; AG006 below says so with a fix.
        warnings.simplefilter("ignore", SecurityWarning)
        guard(_no_app, cfg, environ={})  # the environment is applied already
    found: list[Finding] = []
    if app is not None:
        found += check_app(cfg, app)

    def add(code: str, level: Literal["error", "warning"], message: str, fix: str) -> None:
        found.append(Finding(code, level, message, fix))

    if cfg.https is None:
        add("AG001", "error", "HTTPS redirect and HSTS are off.", "Add an [https] section.")
    elif cfg.https.hsts_max_age < _SIX_MONTHS:
        add(
            "AG002",
            "warning",
            f"HSTS max-age is {cfg.https.hsts_max_age} s, under six months.",
            "Set https.hsts_max_age = 31536000 once HTTPS works everywhere.",
        )
    https_hosts = cfg.https is not None and cfg.https.allowed_hosts is not None
    if cfg.proxy is not None and cfg.hosts is None and not https_hosts:
        add(
            "AG024",
            "warning",
            "Behind a proxy, no Host allow-list: any Host (or X-Forwarded-Host) reaches the app"
            " and its redirects, links and caches (host header attacks).",
            "Add [hosts] allowed = ['api.example.com'] (https.allowed_hosts follows it).",
        )
    if cfg.proxy is not None and "*" in cfg.proxy.trusted:
        add(
            "AG003",
            "error",
            "proxy.trusted contains '*': any client can forge its address and scheme.",
            "List the proxies' addresses or networks (e.g. 10.0.0.0/8).",
        )
    if cfg.jwt is not None:
        j = cfg.jwt
        entries = _issuer_entries(j)
        if not all(e.audience for e in entries):
            add(
                "AG004",
                "warning",
                "JWT audience is not checked: tokens for other APIs are accepted.",
                "Set jwt.audience.",
            )
        if not all(e.issuer for e in entries):
            add("AG005", "warning", "JWT issuer is not checked.", "Set jwt.issuer.")
        if any(e.secret is not None and len(e.secret.encode()) < 32 for e in entries):
            add(
                "AG006",
                "error",
                "The HMAC secret is shorter than 32 bytes (RFC 7518 section 3.2 wants at least 256 bits).",
                "Use a random secret of 32+ bytes, from ASGI_GUARD_JWT__SECRET.",
            )
        if j.leeway > 60:
            add(
                "AG007",
                "warning",
                f"JWT leeway is {j.leeway:g} s.",
                "Keep jwt.leeway at 60 s or less.",
            )
        if j.default == "public":
            add(
                "AG008",
                "warning",
                "Routes without a rule are public: a new route is open until someone adds a rule.",
                "Set jwt.default = 'authenticated' and mark public routes explicitly.",
            )
    else:
        add(
            "AG009",
            "warning",
            "No JWT authentication is configured.",
            "Add a [jwt] section unless the app authenticates itself.",
        )
    if cfg.rate_limit is not None:
        rl = cfg.rate_limit
        if rl.on_storage_error == "open":
            patterns = list(rl.rules) + [r.path for r in cfg.routes if r.limit is not None]
            sensitive = [p for p in patterns if _CREDENTIAL_ROUTE.search(p)]
            if sensitive:
                add(
                    "AG010",
                    "warning",
                    f"Rate limits fail open on credential routes ({', '.join(sensitive)}): a storage outage opens them to brute force.",
                    "Set rate_limit.on_storage_error = 'closed'.",
                )
        if rl.storage.startswith(("memory", "async+memory")) and workers > 1:
            add(
                "AG011",
                "error",
                f"Memory storage with {workers} workers: each process counts alone, so limits are {workers}x looser.",
                "Use a shared storage: rate_limit.storage = 'redis://...'.",
            )
    else:
        add("AG012", "warning", "No rate limiting is configured.", "Add a [rate_limit] section.")
    if cfg.validation is not None and cfg.validation.max_body_size > _TEN_MIB:
        add(
            "AG013",
            "warning",
            f"validation.max_body_size is {cfg.validation.max_body_size} bytes (over 10 MiB).",
            "Lower it, or stream large uploads to a dedicated route.",
        )
    if cfg.access_log is None:
        add(
            "AG014",
            "warning",
            "No access log: incidents cannot be traced.",
            "Add an [access_log] section.",
        )
    else:
        quiet = dict.fromkeys([*cfg.access_log.exclude, *(r.path for r in cfg.routes if not r.log)])
        risky = [p for p in quiet if _CREDENTIAL_ROUTE.search(p) or not _read_only(p)]
        if risky:
            add(
                "AG015",
                "warning",
                f"Successful requests to {', '.join(risky)} are not logged, and these routes may"
                " change state or handle credentials.",
                "Exclude only read-only routes whose successes tell nothing, named with their"
                " methods: 'GET /health'.",
            )
        if _access_log_off(cfg.access_log.logger, cfg.access_log.output):
            add(
                "AG016",
                "warning",
                f"access_log.output = 'logging' and no logging handler receives the records of"
                f" {cfg.access_log.logger!r} at INFO in this process: the access log is off"
                " unless the app configures logging before guard() runs.",
                "Set access_log.output = 'auto' (JSON lines to stdout when nothing else"
                " receives them), or configure a handler for that logger.",
            )
    found += _first_hour_findings(cfg)
    return found


@contextlib.contextmanager
def _logging_untouched(cfg: GuardConfig) -> Iterator[None]:
    """Build without side effects on logging: an access log built by ``guard()`` may attach a
    handler to its logger or set its level (``output = "auto"``) and warns when nothing
    receives its records; ``check`` runs in processes that have their own logging (a server,
    a test) and reports that case itself (AG016)."""
    names = ["asgi_guard"] + ([cfg.access_log.logger] if cfg.access_log is not None else [])
    saved = [
        (logger, logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        for logger in map(logging.getLogger, names)
    ]
    for logger, *_ in saved[:1]:
        logger.disabled = True  # the start-up warning: AG016 says the same with a fix
    try:
        yield
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """The app check builds the stack around: never called."""


#: JWK members that only a private (or symmetric) key has (RFC 7518 section 6).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def _issuer_entries(j: JWTConfig) -> list[JWTConfig] | list[IssuerConfig]:
    """The issuers a [jwt] section accepts: its entries of ``issuers``, or itself."""
    return [j] if j.issuers is None else j.issuers


def _private_jwks(jwks: str | dict[str, Any] | None) -> bool:
    """Whether a jwks option (inline or a file) holds private or secret key material."""
    if isinstance(jwks, str):
        try:
            jwks = json.loads(Path(jwks).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False  # guard() reports a file it cannot use
    if not isinstance(jwks, dict):
        return False
    keys = jwks.get("keys", [jwks])
    return isinstance(keys, list) and any(
        isinstance(key, dict) and not _PRIVATE_MEMBERS.isdisjoint(key) for key in keys
    )


def _first_hour_findings(cfg: GuardConfig) -> list[Finding]:
    """Settings that work on a laptop and fail in production."""
    found: list[Finding] = []
    if cfg.dev:
        found.append(
            Finding(
                "AG020",
                "error",
                "The local mode is on (dev = true or ASGI_GUARD_DEV): loopback is a trusted"
                " proxy and HSTS is off.",
                "Remove dev from the config and ASGI_GUARD_DEV from the environment.",
            )
        )
    j = cfg.jwt
    if j is not None:
        plain = [
            u
            for e in _issuer_entries(j)
            for u in (e.jwks_url, e.issuer if e.discovery else None)
            if u
        ]
        if any(u.lower().startswith("http://") for u in plain):
            found.append(
                Finding(
                    "AG021",
                    "error",
                    "Signing keys are fetched over plain http://: anyone on the path can"
                    " replace them and sign their own tokens.",
                    "Use an https:// jwks_url (or issuer, with discovery).",
                )
            )
        if any(_private_jwks(e.jwks) for e in _issuer_entries(j)):
            found.append(
                Finding(
                    "AG022",
                    "error",
                    "jwt.jwks holds private key material: whoever reads the config can"
                    " sign tokens.",
                    "Give the public JWKS (asgi-guard keys writes it as *.public.json).",
                )
            )
    if cfg.https is not None and cfg.proxy is None and not cfg.dev:
        found.append(
            Finding(
                "AG023",
                "warning",
                "[https] without [proxy]: behind a TLS-terminating proxy every request"
                " arrives as http and is redirected again, forever.",
                "Add a [proxy] section listing the proxy (proxy.trusted), unless the"
                " server terminates TLS itself.",
            )
        )
    if (
        cfg.https is not None
        and cfg.https.host is None
        and cfg.https.allowed_hosts is None
        and cfg.hosts is None
        and cfg.proxy is None  # behind a proxy, AG024 says it
    ):
        found.append(
            Finding(
                "AG025",
                "warning",
                "The HTTPS redirect goes to whatever Host the client sent.",
                "Set https.allowed_hosts = ['api.example.com'] or https.host.",
            )
        )
    return found


def _read_only(pattern: str) -> bool:
    """Whether a route pattern names only GET and HEAD (a bad pattern is guard()'s to report)."""
    try:
        methods, _ = parse_pattern(pattern)
    except ConfigurationError:
        return True
    return set(methods) <= {"GET", "HEAD"}


_PROBE_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _rule_patterns(cfg: GuardConfig) -> list[tuple[str, str]]:
    """Every route pattern of the config, with the option that holds it."""
    sections: list[tuple[str, Any]] = [
        ("jwt.rules", cfg.jwt.rules if cfg.jwt else {}),
        ("rate_limit.rules", cfg.rate_limit.rules if cfg.rate_limit else {}),
        ("validation.schemas", cfg.validation.schemas if cfg.validation else {}),
        ("validation.query", cfg.validation.query if cfg.validation else {}),
        ("https.exempt", cfg.https.exempt if cfg.https else []),
        ("access_log.exclude", cfg.access_log.exclude if cfg.access_log else []),
    ]
    found = [(option, pattern) for option, patterns in sections for pattern in patterns]
    return found + [(f"routes[{i}].path", route.path) for i, route in enumerate(cfg.routes)]


def check_app(
    config: GuardConfig | Mapping[str, Any] | str | os.PathLike[str],
    app: Any,
    *,
    environ: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Compare ``config`` with the routes of ``app`` (Starlette, FastAPI or Litestar, or
    ``"module:app"``): rules that match no route (``AG030``, a typo leaves its route
    unguarded) and routes that fall to ``jwt.default = "public"`` (``AG031``)."""
    from .approutes import app_routes, overlaps
    from .config import resolve
    from .routes import RouteTable

    cfg = load_config(config, environ)
    if isinstance(app, str):
        app = resolve(app, "app")
    routes = app_routes(app)
    if routes is None:
        raise ConfigurationError("app", "no Starlette, FastAPI or Litestar router found in it")
    found: list[Finding] = []
    shapes = [(route.methods, route.segments) for route in routes]
    for option, pattern in _rule_patterns(cfg):
        methods, segments = parse_pattern(pattern, option)
        wanted = None if "*" in methods else {*methods, *(["HEAD"] if "GET" in methods else [])}
        if not any(
            (wanted is None or served is None or wanted & served) and overlaps(segments, path)
            for served, path in shapes
        ):
            found.append(
                Finding(
                    "AG030",
                    "error",
                    f"{option}: {pattern!r} matches no route of the app, so it guards nothing.",
                    "Correct the pattern to the app's route (methods are case-sensitive), or"
                    " remove the rule.",
                )
            )
    if cfg.jwt is not None and cfg.jwt.default == "public":
        ruled = dict.fromkeys(cfg.jwt.rules, True)
        ruled.update((r.path, True) for r in cfg.routes if r.scopes is not None or r.public)
        table: RouteTable[bool] = RouteTable(ruled, option="jwt.rules")
        public = []
        for route in routes:
            sample = "/" + "/".join(s if isinstance(s, str) else "{x}" for s in route.segments)
            served = sorted(route.methods - {"HEAD", "OPTIONS"}) if route.methods else None
            public += [
                f"{method} {route.path}"
                for method in served or _PROBE_METHODS
                if table.match(method, sample) is None
            ]
        if public:
            public.sort(key=lambda route: route.split(" ")[::-1])  # by path, then method
            found.append(
                Finding(
                    "AG031",
                    "warning",
                    f"{', '.join(public)} fall to jwt.default = 'public': no token is needed.",
                    "Give each a rule (scopes, or 'public' to say it is meant), or set"
                    " jwt.default = 'authenticated'.",
                )
            )
    return found


def _access_log_off(logger: str, output: str) -> bool:
    """Whether access records would reach no handler: only with output = "logging" (the
    other outputs write them to stdout then), judged by this process's logging setup."""
    import logging

    from .accesslog import receives

    return output == "logging" and not receives(logging.getLogger(logger), logging.INFO)
