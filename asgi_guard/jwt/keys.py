"""Verification keys: local JWKS or HMAC secret, and remote JWKS / OIDC discovery with caching.

The token never supplies key material or a key location: ``jwk``, ``jku``, ``x5u`` and ``x5c``
header parameters are never read, so they cause no fetch. A ``kid`` is only a dict key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Final

import orjson
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

from ..errors import ConfigurationError
from .fetch import get_bounded, tls_context

__all__ = ["ALG_FAMILY", "MAX_KIDLESS_KEYS", "KeyStore", "RemoteKeys", "VerifyKey", "load_jwks"]

logger = logging.getLogger("asgi_guard.jwt")

#: JWS algorithm -> (key type, curve or None). A key verifies only its own family, so an RSA
#: public key can never be used as an HMAC secret (the classic RS256/HS256 confusion).
ALG_FAMILY: Final[dict[str, tuple[str, str | None]]] = {
    "HS256": ("oct", None),
    "HS384": ("oct", None),
    "HS512": ("oct", None),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
    "Ed25519": ("OKP", "Ed25519"),
}
_KEY_CLASSES: Final[dict[str, type[RSAKey] | type[ECKey] | type[OKPKey]]] = {
    "RSA": RSAKey,
    "EC": ECKey,
    "OKP": OKPKey,
}
_MAX_JWKS_BYTES: Final = 64 * 1024
#: Most keys a token without a ``kid`` is tried against. Each try is a signature check
#: (measured: RS256 75 µs, ES256 37 µs, EdDSA 295 µs): with every key of a 401-key set tried,
#: one bogus token held the event loop for tens of ms. Issuers that omit the kid publish one
#: or two keys.
MAX_KIDLESS_KEYS: Final = 4
#: Least time between two fetch attempts that are not for an unknown kid (cold start, refresh).
_RETRY_AFTER: Final = 5.0
_TTL_MIN, _TTL_MAX, _TTL_DEFAULT = 300.0, 3600.0, 600.0
_MAX_AGE: Final = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d{1,9})(?:$|[,\s])", re.IGNORECASE)


class VerifyKey:
    """One public (or HMAC) key, with the parameters that restrict what it may verify."""

    __slots__ = ("alg", "crv", "key", "kid", "kty")

    def __init__(self, key: Key) -> None:
        self.key = key
        self.kid: str | None = key.kid
        self.kty: str = key.key_type
        self.alg: str | None = key.alg
        self.crv: str | None = getattr(key, "curve_name", None)

    def fits(self, alg: str) -> bool:
        """Whether this key may verify a token signed with ``alg``."""
        family = ALG_FAMILY.get(alg)
        if family is None or family[0] != self.kty:
            return False
        if family[1] is not None and family[1] != self.crv:
            return False
        if alg == "EdDSA" and self.crv not in ("Ed25519", "Ed448"):
            return False
        return self.alg is None or self.alg == alg or {self.alg, alg} == {"EdDSA", "Ed25519"}


def _import_jwk(data: Any) -> VerifyKey | None:
    """A signing key from one JWK dict, or None if it is not one we can use."""
    if not isinstance(data, dict):
        return None
    kty = data.get("kty")
    if not isinstance(kty, str) or data.get("use", "sig") != "sig" or kty not in _KEY_CLASSES:
        return None  # encryption keys and HMAC keys in a published JWKS are never used
    ops = data.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    kid = data.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    public = {k: v for k, v in data.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
    try:
        key: Key = _KEY_CLASSES[kty].import_key(public)
    # Whatever the key library makes of a broken member, it is one unusable key to skip, not a
    # reason to refuse the other keys of the set.
    except Exception:
        return None
    return VerifyKey(key)


def load_jwks(
    source: Mapping[str, Any] | str | Path | bytes, option: str = "jwks"
) -> list[VerifyKey]:
    """Usable signing keys of a JWKS given as a dict, JSON bytes, or a JSON file path."""
    data: Any = source
    if isinstance(source, (str, Path)):
        try:
            data = orjson.loads(Path(source).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigurationError(
                option, f"cannot read JWKS file {str(source)!r}: {exc}"
            ) from None
    elif isinstance(source, bytes):
        try:
            data = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(option, f"the JWKS is not JSON: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise ConfigurationError(option, "a JWKS must be an object with a 'keys' list")
    return [key for key in map(_import_jwk, data["keys"]) if key is not None]


def secret_key(secret: str | bytes) -> VerifyKey:
    """An HMAC key from a shared secret."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not raw:
        raise ConfigurationError("secret", "must not be empty")
    return VerifyKey(OctKey.import_key(raw))


class KeyStore:
    """The current key set, indexed by ``kid``, and whether it changed."""

    def __init__(self, keys: Collection[VerifyKey] = ()) -> None:
        self.by_kid: dict[str, VerifyKey] = {}
        self.keys: list[VerifyKey] = []
        self._kidless: dict[str, tuple[list[VerifyKey], bool]] = {}
        self.replace(keys)

    def replace(self, keys: Collection[VerifyKey]) -> None:
        self.keys = list(keys)
        self.by_kid = {key.kid: key for key in self.keys if key.kid is not None}
        self._kidless = {}

    def candidates(self, kid: str | None, alg: str) -> list[VerifyKey]:
        """Keys that may verify a token with this ``kid`` and ``alg``.

        A token without a ``kid`` is tried only against keys that can match: of the keys whose
        family fits ``alg``, those without a ``kid`` if any, else all of them; and only when
        they are at most :data:`MAX_KIDLESS_KEYS` (else none: see :meth:`kidless_refused`).
        """
        if kid is not None:
            key = self.by_kid.get(kid)
            return [key] if key is not None and key.fits(alg) else []
        return self._kidless_for(alg)[0]

    def kidless_refused(self, alg: str) -> bool:
        """Whether a token without a ``kid`` is refused for naming no key among too many."""
        return self._kidless_for(alg)[1]

    def _kidless_for(self, alg: str) -> tuple[list[VerifyKey], bool]:
        # Per algorithm, computed once per key set: a refused token costs one dict lookup.
        found = self._kidless.get(alg)
        if found is None:
            fitting = [key for key in self.keys if key.fits(alg)]
            chosen = [key for key in fitting if key.kid is None] or fitting
            too_many = len(chosen) > MAX_KIDLESS_KEYS
            found = self._kidless[alg] = ([] if too_many else chosen, too_many)
        return found


class RemoteKeys:
    """A JWKS fetched over HTTP(S), cached, refreshed, and refetched on an unknown ``kid``.

    - The TTL comes from ``Cache-Control: max-age``, clamped to 5-60 minutes (default 10).
    - A request arriving in the last fifth of the TTL starts a refresh in the background.
    - An unknown ``kid`` triggers at most one refetch per ``min_refetch`` seconds, whatever the
      traffic; concurrent misses share one fetch (single flight). Only these refetches count
      toward that bound: a key rotated in right after the start-up fetch or a scheduled
      refresh is fetched by the first token that names it.
    - Each fetch (discovery document and key set together) has one deadline of ``timeout``
      seconds, however slowly the server sends its answer.
    - On fetch failure the last good set keeps serving for ``max_stale`` seconds past its TTL.
    - Responses over 64 KiB (decoded: a gzip answer is inflated only up to the cap),
      redirects, non-200 answers and sets without a usable key are refused.
    """

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        discovery_url: str | None = None,
        timeout: float = 3.0,
        min_refetch: float = 30.0,
        max_stale: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[set[str]], None] | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise ConfigurationError(
                "jwks_url", "remote keys need httpx: pip install 'asgi-guard[remote]'"
            ) from None
        self._httpx = httpx
        self._tls = tls_context()
        self.jwks_url = jwks_url
        self.discovery_url = discovery_url
        self.timeout = timeout
        self.min_refetch = min_refetch
        self.max_stale = max_stale
        self.clock = clock
        self.on_change = on_change
        self.store = KeyStore()
        self.loaded = False
        self._expires = 0.0
        self._ttl = _TTL_DEFAULT
        self._last_attempt = -1e18
        self._last_kid_refetch = -1e18
        self._inflight: asyncio.Task[None] | None = None

    # -- fetching --------------------------------------------------------------------------

    async def _fetch(self) -> None:
        self._last_attempt = self.clock()
        try:
            # One deadline for the whole exchange: httpx's timeout applies to each read, so a
            # server trickling one byte a second would otherwise never time out.
            async with (
                asyncio.timeout(self.timeout),
                # No connection reuse: a server closing the discovery answer's connection
                # without "Connection: close" failed the JWKS GET sent on it (about one
                # discovery fetch in two against such a server).
                self._httpx.AsyncClient(
                    timeout=self.timeout,
                    follow_redirects=False,
                    verify=self._tls,
                    limits=self._httpx.Limits(max_keepalive_connections=0),
                ) as client,
            ):
                url = self.jwks_url
                if url is None:
                    assert self.discovery_url is not None
                    body, _ = await get_bounded(client, self.discovery_url, _MAX_JWKS_BYTES)
                    meta = orjson.loads(body)
                    url = meta.get("jwks_uri") if isinstance(meta, dict) else None
                    if not isinstance(url, str):
                        raise ValueError("discovery document has no jwks_uri")
                    self.jwks_url = url
                body, headers = await get_bounded(client, url, _MAX_JWKS_BYTES)
            keys = load_jwks(orjson.loads(body), option="jwks_url")
            if not keys:
                raise ValueError("no usable signing key")
        except TimeoutError:
            logger.warning("JWKS fetch failed: no complete answer within %s s", self.timeout)
            self._after_failure()
            return
        except Exception as exc:  # any network, HTTP or JSON failure keeps the old set
            logger.warning(
                "JWKS fetch failed: %s", type(exc).__name__ + (f": {exc}" if str(exc) else "")
            )
            self._after_failure()
            return
        old = {kid: _material(key) for kid, key in self.store.by_kid.items()}
        self.store.replace(keys)
        self.loaded = True
        self._ttl = _ttl(headers.get("cache-control"))
        self._expires = self.clock() + self._ttl
        # A kid now naming other key material counts as removed: what the old key verified
        # must not outlive it in the cache.
        new = self.store.by_kid
        removed = {kid for kid, was in old.items() if kid not in new or _material(new[kid]) != was}
        if removed and self.on_change is not None:
            self.on_change(removed)

    def _after_failure(self) -> None:
        if self.loaded and self.clock() > self._expires + self.max_stale:
            self._drop()

    def _start(self) -> asyncio.Task[None]:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._done)
        return self._inflight

    async def _single_flight(self) -> None:
        await asyncio.shield(self._start())

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None

    # -- what the middleware calls ---------------------------------------------------------

    async def ready(self) -> bool:
        """Make sure a key set is loaded (fetching if cold); refresh it ahead of expiry."""
        now = self.clock()
        may_retry = now - self._last_attempt >= _RETRY_AFTER
        if not self.loaded:
            if self._inflight is not None or may_retry:
                await self._single_flight()
            return self.loaded
        if now > self._expires + self.max_stale:
            self._drop()
            return False
        if now >= self._expires - self._ttl / 5 and may_retry:
            self._start()  # in the background: this request goes on with the current set
        return True

    def _drop(self) -> None:
        """Forget a key set too stale to trust (stale-if-error is bounded)."""
        removed = set(self.store.by_kid)
        self.store.replace(())
        self.loaded = False
        if removed and self.on_change is not None:
            self.on_change(removed)

    async def refetch_for_unknown_kid(self) -> bool:
        """Refetch once for a token naming an unknown ``kid``; False when rate-limited.

        The bound counts only the refetches unknown kids trigger: the start-up fetch and
        scheduled refreshes do not delay a key rotated in just after them.
        """
        if self._inflight is not None:
            await asyncio.shield(self._inflight)
            return True
        now = self.clock()
        if now - self._last_kid_refetch < self.min_refetch:
            return False
        self._last_kid_refetch = now
        await self._single_flight()
        return True


def _material(key: VerifyKey) -> dict[str, Any]:
    """The public members of a key (what it verifies with), for comparing two fetches."""
    return dict(key.key.as_dict(private=False))


def _ttl(cache_control: str | None) -> float:
    if cache_control:
        match = _MAX_AGE.search(cache_control)
        if match:
            return min(max(float(match.group(1)), _TTL_MIN), _TTL_MAX)
    return _TTL_DEFAULT
