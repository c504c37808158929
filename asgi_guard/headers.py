"""Response security headers: nosniff, framing, CSP, referrer and cross-origin policies."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._asgi import ASGIApp, Receive, Scope, Send, request_info
from .errors import ConfigurationError
from .routes import RouteTable

__all__ = ["DEFAULT_CSP", "SecurityHeadersMiddleware", "build_csp", "inline_script_hashes"]

#: The API default (OWASP REST Security cheat sheet): load nothing, be framed by no one.
DEFAULT_CSP: Final = "default-src 'none'; frame-ancestors 'none'"

# CSP keyword sources must be quoted (CSP3 section 2.3.1): unquoted, ``self`` names a host.
_KEYWORDS: Final = frozenset(
    {
        "self",
        "none",
        "unsafe-inline",
        "unsafe-eval",
        "unsafe-hashes",
        "strict-dynamic",
        "report-sample",
        "wasm-unsafe-eval",
        "inline-speculation-rules",
    }
)
_DIRECTIVE: Final = re.compile(r"[a-z][a-z0-9-]*")
# A header value: visible ASCII, space and tab (RFC 9110 section 5.5), no CR, LF or NUL.
_VALUE: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?")
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")
_INLINE_SCRIPT: Final = re.compile(
    rb"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.S | re.I
)

# Each option: its header name and the values it may take (None: any valid header value).
_REFERRER: Final = frozenset(
    {
        "no-referrer",
        "no-referrer-when-downgrade",
        "same-origin",
        "origin",
        "strict-origin",
        "origin-when-cross-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    }
)
_OPTIONS: Final[dict[str, tuple[bytes, frozenset[str] | None]]] = {
    "content_type_options": (b"x-content-type-options", frozenset({"nosniff"})),
    # ALLOW-FROM is obsolete and ignored by browsers: frame-ancestors says it instead.
    "frame_options": (b"x-frame-options", frozenset({"deny", "sameorigin"})),
    "content_security_policy": (b"content-security-policy", None),
    "referrer_policy": (b"referrer-policy", _REFERRER),
    "cross_origin_resource_policy": (
        b"cross-origin-resource-policy",
        frozenset({"same-origin", "same-site", "cross-origin"}),
    ),
    "cross_origin_opener_policy": (
        b"cross-origin-opener-policy",
        frozenset(
            {"same-origin", "same-origin-allow-popups", "noopener-allow-popups", "unsafe-none"}
        ),
    ),
    "cross_origin_embedder_policy": (
        b"cross-origin-embedder-policy",
        frozenset({"require-corp", "credentialless", "unsafe-none"}),
    ),
    "permissions_policy": (b"permissions-policy", None),
    "cache_control": (b"cache-control", None),
}
_CACHE_CONTROL: Final = b"cache-control"
_DEFAULTS: Final[dict[str, Any]] = {
    "content_type_options": "nosniff",
    "frame_options": "DENY",
    "content_security_policy": DEFAULT_CSP,
    "referrer_policy": "no-referrer",
    "cross_origin_resource_policy": "same-origin",
    "cross_origin_opener_policy": None,
    "cross_origin_embedder_policy": None,
    "permissions_policy": None,
    "cache_control": "no-store",
}
# Framing and content headers are the app's; HSTS is the HTTPS layer's, which never sends it
# over plain HTTP (RFC 6797 section 7.2), where this layer would.
_FORBIDDEN_EXTRA: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"content-type",
        b"set-cookie",
        b"strict-transport-security",
    }
)


def build_csp(directives: Mapping[str, Iterable[str] | str]) -> str:
    """A ``Content-Security-Policy`` value from ``{directive: sources}`` (CSP Level 3).

    ``{"default-src": ["'none'"], "img-src": ["'self'", "data:"]}`` gives
    ``"default-src 'none'; img-src 'self' data:"``. Refused with
    :class:`~asgi_guard.ConfigurationError`, because a browser would read them otherwise than
    meant: a keyword without its quotes (``self`` names a host called "self"), ``'none'`` beside
    other sources (it is then ignored), a directive given twice (the second is ignored),
    separators or control characters inside a source.
    """
    parts: list[str] = []
    seen: set[str] = set()
    for name, sources in directives.items():
        where = f"content_security_policy[{name!r}]"
        if not isinstance(name, str) or not _DIRECTIVE.fullmatch(name):
            raise ConfigurationError(where, "is not a directive name")
        if name in seen:
            raise ConfigurationError(where, "is given twice: browsers ignore the second")
        seen.add(name)
        items = [sources] if isinstance(sources, str) else list(sources)
        for source in items:
            if not isinstance(source, str) or not source or not _VALUE.fullmatch(source):
                raise ConfigurationError(where, f"{source!r} is not a source expression")
            if any(c in source for c in ";, \t"):
                raise ConfigurationError(where, f"{source!r} holds a separator")
            if source.lower() in _KEYWORDS:
                raise ConfigurationError(where, f"{source!r} must be quoted: \"'{source}'\"")
        if "'none'" in items and len(items) > 1:
            raise ConfigurationError(where, "'none' with other sources is ignored by browsers")
        parts.append(" ".join([name, *items]))
    if not parts:
        raise ConfigurationError("content_security_policy", "has no directives")
    return "; ".join(parts)


def inline_script_hashes(html: str | bytes) -> list[str]:
    """``'sha256-...'`` sources for each inline ``<script>`` of a page (CSP3 section 8.2).

    For pages whose HTML is fixed at start-up, such as FastAPI's Swagger UI: hashing its inline
    script lets it run without ``'unsafe-inline'``, which would let an injected script run too.
    """
    raw = html.encode() if isinstance(html, str) else html
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(raw)
    ]


def _value(option: str, value: Any) -> str | None:
    """The header value of one option, validated; None when the header is not sent."""
    if value is None or value == "":
        return None
    if option == "content_security_policy" and isinstance(value, Mapping):
        return build_csp(value)
    if option == "content_security_policy" and isinstance(value, str) and _VALUE.fullmatch(value):
        # A policy string is held to the builder's rules too: "default-src self" would not
        # mean what it says.
        directives = [d.split() for d in value.split(";") if d.strip()]
        table = {d[0]: d[1:] for d in directives}
        if len(table) != len(directives):
            raise ConfigurationError(option, "names a directive twice: browsers ignore the second")
        return build_csp(table)
    if option == "permissions_policy" and isinstance(value, Mapping):
        return _permissions_policy(value)
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        raise ConfigurationError(option, f"{value!r} is not a valid header value")
    allowed = _OPTIONS[option][1]
    if allowed is not None:
        tokens = (
            [t.strip() for t in value.lower().split(",")]
            if option == "referrer_policy"
            else [value.lower()]
        )
        if not all(token in allowed for token in tokens):
            raise ConfigurationError(
                option, f"{value!r} is not one of {', '.join(sorted(allowed))}"
            )
        if option == "frame_options":
            return value.upper()
    return value


def _permissions_policy(features: Mapping[str, Iterable[str] | str]) -> str:
    """A Permissions-Policy structured field: ``{"camera": [], "geolocation": ["self"]}``
    gives ``camera=(), geolocation=(self)``; ``"*"`` alone allows every origin."""
    parts: list[str] = []
    for feature, origins in features.items():
        where = f"permissions_policy[{feature!r}]"
        if not isinstance(feature, str) or not _DIRECTIVE.fullmatch(feature):
            raise ConfigurationError(where, "is not a feature name")
        items = [origins] if isinstance(origins, str) else list(origins)
        if items == ["*"]:
            parts.append(f"{feature}=*")
            continue
        members = []
        for origin in items:
            if origin in ("self", "src"):
                members.append(origin)
            elif isinstance(origin, str) and re.fullmatch(r"https?://[a-z0-9.:\[\]-]+", origin):
                members.append(f'"{origin}"')
            else:
                raise ConfigurationError(where, f"{origin!r} is not self, src, * or an origin")
        parts.append(f"{feature}=({' '.join(members)})")
    return ", ".join(parts)


class _Policy:
    """The precomputed headers of one route: for every request, and for credentialed ones."""

    __slots__ = ("credentialed", "headers", "names", "scan")

    def __init__(self, settings: Mapping[str, Any], extra: Mapping[str, str]) -> None:
        pairs: list[tuple[bytes, bytes]] = []
        cache: tuple[bytes, bytes] | None = None
        for option, (name, _) in _OPTIONS.items():
            value = _value(option, settings[option])
            if value is None:
                continue
            if name == _CACHE_CONTROL:
                cache = (name, value.encode())
            else:
                pairs.append((name, value.encode()))
        for name_text, value in extra.items():
            name = name_text.lower().encode() if isinstance(name_text, str) else b""
            where = f"extra[{name_text!r}]"
            if not _TOKEN.fullmatch(name.decode()) or name in _FORBIDDEN_EXTRA:
                raise ConfigurationError(where, "is not a header this layer may add")
            if any(name == header for header, _ in _OPTIONS.values()):
                raise ConfigurationError(where, "has an option of its own: set that instead")
            if not isinstance(value, str) or not _VALUE.fullmatch(value):
                raise ConfigurationError(where, f"{value!r} is not a valid header value")
            pairs.append((name, value.encode()))
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(pairs)
        self.credentialed = self.headers + ((cache,) if cache is not None else ())
        self.names = frozenset(name for name, _ in self.credentialed)
        #: Whether requests are looked at for credentials (a Cache-Control to add).
        self.scan = cache is not None


class SecurityHeadersMiddleware:
    """Add response security headers to every response, including other layers' refusals.

    The defaults are an API's (OWASP REST Security and HTTP Headers cheat sheets):
    ``X-Content-Type-Options: nosniff`` (no MIME sniffing, Fetch section 3.5),
    ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'`` (no framing: clickjacking,
    RFC 7034, CSP3 section 6.4.2), ``Content-Security-Policy: default-src 'none'`` (a JSON
    response opened as a page runs and loads nothing), ``Referrer-Policy: no-referrer``,
    ``Cross-Origin-Resource-Policy: same-origin`` (no cross-origin ``no-cors`` reads, Fetch
    section 3.7), and ``Cache-Control: no-store`` on responses to requests that carried
    credentials (``Authorization`` or ``Cookie``, RFC 9111 section 5.2.2.5). Each option takes a
    value, or None (``""`` in TOML) to send no such header.

    A header the app (or an inner layer) set itself is kept, and not sent twice. Responses to
    websocket handshakes answered through the ``websocket.http.response`` extension get the
    same headers. Everything is encoded once, at construction.

    Args:
        app: the ASGI app to wrap.
        content_type_options: ``nosniff``.
        frame_options: ``DENY`` or ``SAMEORIGIN``.
        content_security_policy: a policy string, or ``{directive: [sources]}`` for
            :func:`build_csp`.
        referrer_policy: a Referrer-Policy token (or a comma-separated fallback list).
        cross_origin_resource_policy: ``same-origin``, ``same-site`` or ``cross-origin``.
        cross_origin_opener_policy: ``same-origin``, ``same-origin-allow-popups``, ... (off).
        cross_origin_embedder_policy: ``require-corp``, ``credentialless``, ... (off).
        permissions_policy: a Permissions-Policy string, or ``{feature: [origins]}`` (off).
        cache_control: sent on responses to credentialed requests without a Cache-Control.
        extra: any other headers to add, ``{name: value}``.
        rules: route pattern -> ``{option: value}`` overrides, e.g. a CSP for an HTML page.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        content_type_options: str | None = "nosniff",
        frame_options: str | None = "DENY",
        content_security_policy: str | Mapping[str, Any] | None = DEFAULT_CSP,
        referrer_policy: str | None = "no-referrer",
        cross_origin_resource_policy: str | None = "same-origin",
        cross_origin_opener_policy: str | None = None,
        cross_origin_embedder_policy: str | None = None,
        permissions_policy: str | Mapping[str, Any] | None = None,
        cache_control: str | None = "no-store",
        extra: Mapping[str, str] | None = None,
        rules: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.app = app
        settings = {
            "content_type_options": content_type_options,
            "frame_options": frame_options,
            "content_security_policy": content_security_policy,
            "referrer_policy": referrer_policy,
            "cross_origin_resource_policy": cross_origin_resource_policy,
            "cross_origin_opener_policy": cross_origin_opener_policy,
            "cross_origin_embedder_policy": cross_origin_embedder_policy,
            "permissions_policy": permissions_policy,
            "cache_control": cache_control,
        }
        extra = dict(extra or {})
        self._policy = _Policy(settings, extra)
        routed: dict[str, _Policy] = {}
        for pattern, overrides in (rules or {}).items():
            if not isinstance(overrides, Mapping):
                raise ConfigurationError(f"rules[{pattern!r}]", "must be a table of options")
            unknown = set(overrides) - set(_OPTIONS) - {"extra"}
            if unknown:
                raise ConfigurationError(
                    f"rules[{pattern!r}]", f"unknown option {sorted(unknown)[0]!r}"
                )
            own = {**settings, **{k: v for k, v in overrides.items() if k != "extra"}}
            try:
                routed[pattern] = _Policy(own, {**extra, **overrides.get("extra", {})})
            except ConfigurationError as exc:
                raise ConfigurationError(f"rules[{pattern!r}].{exc.option}", exc.message) from None
        self._rules: RouteTable[_Policy] | None = (
            RouteTable(routed, option="rules") if routed else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        policy = self._policy
        if self._rules is not None:
            routed = self._rules.match_scope_or_none(scope)
            if routed is not None:
                policy = routed
        extra = policy.headers
        if policy.scan:
            for key, _ in scope["headers"]:
                if key == b"authorization" or key == b"cookie":
                    extra = policy.credentialed
                    break
        if not extra:
            await self.app(scope, receive, send)
            return
        # Written by the request context's one response hook (a websocket's refusal through
        # websocket.http.response.start too); a header the response has is left out.
        send = request_info(scope).add_headers(send, extra, policy.names)
        await self.app(scope, receive, send)
