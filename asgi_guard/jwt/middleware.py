"""JWTAuthMiddleware: bearer tokens verified per route (RFC 6750, RFC 7519, RFC 9068)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from .._asgi import ASGIApp, Problem, Receive, Scope, Send, get_header, request_info
from ..errors import ConfigurationError
from ..routes import RouteTable
from ..target import TargetError
from . import tokens
from .cache import DEFAULT_MAX_BYTES, TokenCache
from .issuers import Issuer, build_issuer, build_issuers
from .keys import VerifyKey
from .rules import MISSING, PREFLIGHT, Rule, ScopeRequirement, parse_rule
from .tokens import TokenError
from .user import ANONYMOUS, AuthenticatedUser

__all__ = ["JWTAuthMiddleware"]

_AUTHORIZATION: Final = b"authorization"
#: RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
_MAX_TOKEN: Final = 16 * 1024
_MAX_LEEWAY: Final = 300

_INVALID_REQUEST: Final = Problem(
    400, "jwt.invalid_request", "Bad Request", "The Authorization header is malformed."
)
_TOO_LARGE: Final = Problem(401, "jwt.malformed", "Unauthorized", "The access token is too large.")
_DENIED: Final = Problem(403, "jwt.denied", "Forbidden", "This route is not available.")
_NO_KEYS: Final = Problem(
    503, "jwt.keys_unavailable", "Service Unavailable", "Signing keys are not available yet."
)


def _bearer(headers: Iterable[tuple[bytes, bytes]]) -> bytes | Problem | None:
    """The bearer token of the Authorization header (RFC 6750 section 2.1).

    None when no bearer credentials were sent (no header, or another scheme); a Problem when
    the header is malformed: two Authorization headers, an empty token, several tokens,
    characters outside b64token, or an oversized token.
    """
    value: bytes | None = None
    for name, header in headers:
        if name == _AUTHORIZATION:
            if value is not None:
                return _INVALID_REQUEST
            value = header
    if value is None:
        return None
    scheme, _, token = value.strip(b" \t").partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = token.strip(b" ")
    if len(token) > _MAX_TOKEN:
        return _TOO_LARGE
    # The b64token syntax is checked on a cache miss only: a hit is a token checked before.
    return token if token else _INVALID_REQUEST


def _is_preflight(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an OPTIONS request is a CORS preflight: it names an origin and the method of
    the request to come (Fetch standard, CORS protocol), as Starlette's CORSMiddleware checks."""
    return (
        get_header(headers, b"origin") is not None
        and get_header(headers, b"access-control-request-method") is not None
    )


def _refusal_headers(problem: Problem, challenge: str) -> tuple[tuple[bytes, bytes], ...]:
    """The RFC 6750 section 3 challenge (or Retry-After) answering with ``problem``.

    The description is our own fixed text: never attacker bytes (no CR/LF, no quotes).
    """
    if problem is _NO_KEYS:
        return ((b"retry-after", b"5"),)
    if problem is MISSING:
        value = challenge
    else:
        error = "invalid_request" if problem.status == 400 else "invalid_token"
        value = f'{challenge}, error="{error}", error_description="{problem.detail}"'
    return ((b"www-authenticate", value.encode()),)


class JWTAuthMiddleware:
    """Authenticate ``Authorization: Bearer`` JWTs and enforce OAuth2 scopes per route.

    Follows RFC 6750 (bearer tokens and their errors), RFC 7519 (claims), RFC 7515 (JWS) and
    RFC 9068 (``typ: at+jwt``). Tokens are read from the Authorization header only, never from
    query strings or cookies. ``alg`` must be in ``algorithms`` (``none`` never is) and match
    the key's family; ``exp`` is required; ``nbf``/``iat`` are checked when present; ``issuer``
    and ``audience`` must match when set; unknown ``crit`` parameters and duplicate JSON
    members invalidate a token. ``jwk``/``jku``/``x5u``/``x5c`` headers are never used.

    On success, ``scope["auth"]`` holds the verified claims and ``scope["user"]`` an
    :class:`AuthenticatedUser`. Public routes pass without a token (a valid one is still
    attached, an invalid one ignored; ``scope["user"]`` is then anonymous). Refusals are
    problem+json with ``WWW-Authenticate: Bearer`` (RFC 6750 section 3): 401 without error for a
    missing token, 400 ``invalid_request``, 401 ``invalid_token``, 403 ``insufficient_scope``.

    Verified tokens are cached (an LRU keyed by a digest of the token, bounded in entries and
    in bytes; tokens over 8 KiB are not cached); a hit still checks ``exp``/``nbf`` and the
    route's scopes.

    Args:
        issuer: required ``iss`` (exact match); with ``discovery=True``, also where keys are found.
        audience: accepted ``aud`` value(s); the token must name at least one.
        algorithms: allowed algorithms; default RS256, ES256, EdDSA (HS256 with ``secret``).
        jwks: a JWKS dict, JSON bytes, or path to a JWKS file.
        jwks_url: a remote JWKS URL (needs the ``remote`` extra).
        discovery: read ``{issuer}/.well-known/openid-configuration`` for ``jwks_uri``.
        secret: an HMAC shared secret (then only HS256/384/512 are allowed).
        rules: route pattern -> scopes (list or space-separated string), ``"public"``,
            ``"authenticated"`` or ``"deny"``.
        default: policy of routes no rule matches: ``"authenticated"``, ``"public"`` or ``"deny"``.
        leeway: clock skew allowed on exp/nbf/iat, in seconds (at most 300).
        token_type: required header ``typ`` (e.g. ``"at+jwt"``), compared per RFC 7515 4.1.9.
        scope_claims: claims that grant scopes, in order.
        realm: the ``realm`` of WWW-Authenticate challenges.
        cache_size: verified-token cache entries; 0 disables the cache.
        cache_max_bytes: memory the cached verifications may hold (claims as Python objects).
        cache_max_age: longest time, in seconds, a verification is reused.
        clock: returns the current Unix time; injectable for tests.
        public_preflight: let CORS preflights (``OPTIONS`` with ``Origin`` and
            ``Access-Control-Request-Method``) through as on a public route, for the app's
            CORS middleware to answer: browsers never send credentials with them (Fetch
            standard, CORS-preflight request). ``deny`` rules still refuse them.
        issuers: several issuers instead of one: a list of dicts, each with ``issuer``
            (required), ``audience``, ``algorithms`` and one of ``jwks``, ``jwks_url``,
            ``discovery``, ``secret``, as the single-issuer options (which must then be left
            out). A token's ``iss`` selects its entry: only that issuer's keys may verify it
            and its audience applies; an ``iss`` no entry names is refused (401
            ``invalid_token``) before any key is fetched. Each issuer's remote keys are
            fetched, cached and rotated on their own.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        issuer: str | None = None,
        audience: str | Iterable[str] | None = None,
        algorithms: Sequence[str] | None = None,
        jwks: Mapping[str, Any] | str | Path | bytes | None = None,
        jwks_url: str | None = None,
        discovery: bool = False,
        secret: str | bytes | None = None,
        rules: Mapping[str, Any] | None = None,
        default: Literal["authenticated", "public", "deny"] = "authenticated",
        leeway: float = 30,
        token_type: str | None = None,
        scope_claims: Sequence[str] = ("scope", "scp"),
        realm: str = "api",
        cache_size: int = 10_000,
        cache_max_bytes: int = DEFAULT_MAX_BYTES,
        cache_max_age: float = 300,
        clock: Callable[[], float] = time.time,
        jwks_timeout: float = 3.0,
        public_preflight: bool = True,
        issuers: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.app = app
        self.public_preflight = public_preflight
        if not isinstance(leeway, (int, float)) or not 0 <= leeway <= _MAX_LEEWAY:
            raise ConfigurationError("leeway", f"must be between 0 and {_MAX_LEEWAY} seconds")
        if default not in ("authenticated", "public", "deny"):
            raise ConfigurationError("default", "must be 'authenticated', 'public' or 'deny'")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigurationError("cache_size", "must be a whole number >= 0")
        if not isinstance(cache_max_bytes, int) or cache_max_bytes < 0:
            raise ConfigurationError("cache_max_bytes", "must be a whole number >= 0")
        self.leeway = float(leeway)
        self.token_type = token_type
        self.scope_claims = tuple(scope_claims)
        self.clock = clock
        self.cache_size = cache_size
        self.cache_max_age = float(cache_max_age)
        self._cache = TokenCache(cache_size, cache_max_bytes, self.cache_max_age)

        #: iss -> its issuer, when several are accepted; else None and ``_single`` is the one.
        self._issuers: dict[str, Issuer] | None = None
        if issuers is not None:
            single = {
                "issuer": issuer,
                "audience": audience,
                "algorithms": algorithms,
                "jwks": jwks,
                "jwks_url": jwks_url,
                "secret": secret,
                "discovery": discovery or None,
            }
            given = [name for name, value in single.items() if value is not None]
            if given:
                raise ConfigurationError(
                    "issuers",
                    f"give each issuer's options in its entry, not {', '.join(given)} beside issuers",
                )
            self._issuers = build_issuers(issuers, jwks_timeout, self._forget_kids)
            self._single: Issuer | None = None
        else:
            self._single = build_issuer(
                issuer=issuer,
                audience=audience,
                algorithms=algorithms,
                jwks=jwks,
                jwks_url=jwks_url,
                discovery=discovery,
                secret=secret,
                timeout=jwks_timeout,
                on_change=self._forget_kids,
            )
            # The single issuer's parts, as attributes (as before several issuers existed).
            self.issuer = issuer
            self.audiences = self._single.audiences
            self.algorithms = self._single.algorithms
            self._keys = self._single.keys
            self._remote = self._single.remote

        if '"' in realm or "\\" in realm or not realm.isprintable():
            raise ConfigurationError("realm", "must be printable without quotes or backslashes")
        challenge = f'Bearer realm="{realm}"'
        # The headers of every refusal, built once (keyed by the Problem itself: two problems
        # may share a code but not a description).
        self._refusal_headers = {
            problem: _refusal_headers(problem, challenge)
            for problem in (*tokens.PROBLEMS, MISSING, _INVALID_REQUEST, _TOO_LARGE, _NO_KEYS)
        }

        self._default = parse_rule("default", default)
        parsed = {
            pattern: parse_rule(f"rules[{pattern!r}]", value)
            for pattern, value in (rules or {}).items()
        }
        for rule in [self._default, *parsed.values()]:
            if rule.scopes:
                rule.requirement = ScopeRequirement(rule.scopes, realm)
        self._rules: RouteTable[Rule] = RouteTable(parsed, option="rules")

    # -- per request -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        rule = self._default
        if self._rules:
            try:
                rule = self._rules.match_scope(scope) or self._default
            except TargetError as error:  # a path the app may route elsewhere: no policy fits
                await error.problem.send(scope, receive, send)
                return
        if rule.deny:
            await _DENIED.send(scope, receive, send)
            return
        if (
            self.public_preflight
            and scope.get("method") == "OPTIONS"
            and _is_preflight(scope["headers"])
        ):
            rule = PREFLIGHT

        token = _bearer(scope["headers"])
        if token.__class__ is bytes:
            assert isinstance(token, bytes)
            try:
                # Cache key: SHA-256 of the whole token, so no two tokens can share an entry.
                user = (
                    self._cached(hashlib.sha256(token).digest(), self.clock())
                    if self.cache_size
                    else None
                ) or await self._authenticate(token)
            except TokenError as error:
                problem = error.problem
            else:
                if rule.public or rule.scopes <= user.scopes:
                    scope["auth"] = user.claims
                    scope["user"] = user
                    await self.app(scope, receive, send)
                    return
                assert rule.requirement is not None
                # The token was valid: the access record names whose request was refused.
                request_info(scope).sub = user.sub
                await rule.requirement.refuse(scope, receive, send)
                return
        else:
            problem = MISSING if token is None else token  # type: ignore[assignment]
        if rule.public:  # no usable token on a public route: the caller is anonymous
            scope["auth"] = None
            scope["user"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        await problem.send(scope, receive, send, self._refusal_headers[problem])

    def _cached(self, digest: bytes, now: float) -> AuthenticatedUser | None:
        """The user of a cached verification still within exp/nbf and the cache's max age."""
        return self._cache.lookup(digest, now, self.leeway)

    async def _authenticate(self, token: bytes) -> AuthenticatedUser:
        """Verify ``token`` (a cache miss) and remember the result."""
        if token.translate(None, _B64TOKEN) or b"=" in token.rstrip(b"="):
            raise TokenError(_INVALID_REQUEST)  # several tokens, quotes, control bytes...
        now = self.clock()
        user, kid = await self._verify(token, now)
        if self.cache_size:
            self._cache.store(hashlib.sha256(token).digest(), len(token), user, kid, now)
        return user

    async def _verify(self, token: bytes, now: float) -> tuple[AuthenticatedUser, str | None]:
        header, claims, signing_input, signature = tokens.parse(token)
        entry = self._single
        if entry is None:
            assert self._issuers is not None
            # The unverified iss only chooses whose keys and rules apply; it is checked again,
            # exactly, once the signature holds. An unknown one costs no key lookup, no fetch.
            iss = claims.get("iss")
            entry = self._issuers.get(iss) if iss.__class__ is str else None
            if entry is None:
                raise TokenError(tokens.BAD_ISSUER)
        alg = tokens.check_header(header, entry.algorithms, self.token_type)
        kid: str | None = header.get("kid")
        keys = await _candidates(entry, kid, alg)
        key = tokens.verify_signature(alg, signing_input, signature, keys)
        tokens.check_times(claims, now, self.leeway)
        tokens.check_claims(claims, entry.issuer, entry.audiences)
        scopes = tokens.granted_scopes(claims, self.scope_claims)
        user = AuthenticatedUser(claims.get("sub"), scopes, claims)
        return user, None if key.kid is None else entry.tag + key.kid

    def _forget_kids(self, kids: set[str]) -> None:
        """Drop cached verifications made with keys that left the key set."""
        self._cache.forget_kids(kids)


async def _candidates(issuer: Issuer, kid: str | None, alg: str) -> list[VerifyKey]:
    """The keys of ``issuer`` that may verify a token naming ``kid`` and ``alg``."""
    remote = issuer.remote
    if remote is not None and not await remote.ready():
        raise TokenError(_NO_KEYS)
    store = issuer.keys
    keys = store.candidates(kid, alg)
    if keys:
        return keys
    # An unknown kid may be a freshly rotated key: refetch (rate-limited, single flight).
    unknown = kid is not None and kid not in store.by_kid
    if remote is not None and unknown and await remote.refetch_for_unknown_kid():
        keys = store.candidates(kid, alg)
        if keys:
            return keys
    if store.kidless_refused(alg) if kid is None else kid not in store.by_kid:
        raise TokenError(tokens.UNKNOWN_KEY)
    raise TokenError(tokens.BAD_ALG)
