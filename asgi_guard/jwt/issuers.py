"""The issuers a JWT layer accepts: each with its own ``iss``, audiences, algorithms and keys.

One issuer is what the single-issuer options describe; ``issuers=[...]`` lists several. A
token's ``iss`` (read before verification, only to choose) selects one entry; its keys alone
may verify the token and its ``iss`` and ``aud`` are then checked against that entry, so a key
of one issuer never verifies another's tokens, whatever ``kid`` the token names. An ``iss``
no entry names is refused before any key is looked up or fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigurationError
from .keys import ALG_FAMILY, KeyStore, RemoteKeys, load_jwks, secret_key

__all__ = ["ISSUER_OPTIONS", "Issuer", "build_issuer", "build_issuers"]

DEFAULT_ALGORITHMS: Final = ("RS256", "ES256", "EdDSA")
_HMAC: Final = frozenset({"HS256", "HS384", "HS512"})
#: Longest fetch deadline: a request waits for a cold fetch, so more holds it past any proxy's.
_MAX_TIMEOUT: Final = 60.0
#: The options of one entry of ``issuers``.
ISSUER_OPTIONS: Final = frozenset(
    {"issuer", "audience", "algorithms", "jwks", "jwks_url", "discovery", "secret"}
)


class Issuer:
    """One accepted issuer: the ``iss`` it must name, its audiences, algorithms and keys.

    ``tag`` prefixes the ``kid`` recorded with each cached verification, so a key leaving one
    issuer's set forgets only that issuer's verifications.
    """

    __slots__ = ("algorithms", "audiences", "issuer", "keys", "remote", "tag")

    def __init__(
        self,
        issuer: str | None,
        audiences: frozenset[str] | None,
        algorithms: frozenset[str],
        keys: KeyStore,
        remote: RemoteKeys | None,
        tag: str,
    ) -> None:
        self.issuer = issuer
        self.audiences = audiences
        self.algorithms = algorithms
        self.keys = keys
        self.remote = remote
        self.tag = tag


def build_issuer(
    *,
    where: str = "",
    issuer: str | None = None,
    audience: str | Iterable[str] | None = None,
    algorithms: Sequence[str] | None = None,
    jwks: Mapping[str, Any] | str | Path | bytes | None = None,
    jwks_url: str | None = None,
    discovery: bool = False,
    secret: str | bytes | None = None,
    timeout: float = 3.0,
    tag: str = "",
    on_change: Callable[[set[str]], None] | None = None,
) -> Issuer:
    """One :class:`Issuer` from its options; errors name ``where`` + the option."""
    sources = [s for s in (jwks, jwks_url, secret) if s is not None] + ([True] if discovery else [])
    if len(sources) != 1:
        raise ConfigurationError(
            f"{where}jwks", "give exactly one of jwks, jwks_url, discovery=True, secret"
        )
    if algorithms is None:
        algorithms = ("HS256",) if secret is not None else DEFAULT_ALGORITHMS
    if isinstance(algorithms, str):
        algorithms = (algorithms,)
    if not algorithms:
        raise ConfigurationError(f"{where}algorithms", "must name at least one algorithm")
    for alg in algorithms:
        if not isinstance(alg, str) or alg.lower() == "none" or alg not in ALG_FAMILY:
            raise ConfigurationError(
                f"{where}algorithms", f"{alg!r} is not an accepted signature algorithm"
            )
    if secret is not None and not set(algorithms) <= _HMAC:
        raise ConfigurationError(
            f"{where}algorithms", "with secret=, only HS256, HS384, HS512 are allowed"
        )
    if secret is None and set(algorithms) & _HMAC:
        raise ConfigurationError(
            f"{where}algorithms", "HMAC algorithms need secret=, never a public key"
        )
    if discovery and not issuer:
        raise ConfigurationError(
            f"{where}discovery", "needs issuer= to find the discovery document"
        )
    if isinstance(audience, str):
        audience = (audience,)
    if audience is not None:
        audience = tuple(audience) if isinstance(audience, Iterable) else (None,)
    if audience is not None and not all(isinstance(aud, str) and aud for aud in audience):
        # An aud no token can name (a number, "") would match none, or fail at start-up.
        raise ConfigurationError(f"{where}audience", "must be a string or a list of strings")
    audiences = frozenset(audience) if audience is not None else None
    if audiences is not None and not audiences:
        raise ConfigurationError(f"{where}audience", "must name at least one audience")
    if secret is not None and not isinstance(secret, (str, bytes)):
        raise ConfigurationError(f"{where}secret", "must be a string or bytes")
    if jwks_url is not None and (
        not isinstance(jwks_url, str) or not jwks_url.startswith(("https://", "http://"))
    ):
        # Accepted, it would fail at every fetch and refuse every token (503) at run time.
        raise ConfigurationError(f"{where}jwks_url", "must be an https:// (or http://) URL")
    if (
        not isinstance(timeout, (int, float))
        or isinstance(timeout, bool)
        or not 0 < timeout <= _MAX_TIMEOUT
    ):
        raise ConfigurationError(
            "jwks_timeout", f"must be a number of seconds > 0 and <= {_MAX_TIMEOUT:g}"
        )

    remote: RemoteKeys | None = None
    if jwks is not None:
        keys = KeyStore(load_jwks(jwks, option=f"{where}jwks"))
        if not keys.keys:
            raise ConfigurationError(f"{where}jwks", "contains no usable signing key")
    elif secret is not None:
        try:
            keys = KeyStore([secret_key(secret)])
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where}secret", exc.message) from None
    else:
        discovery_url = None
        if discovery:
            assert issuer is not None
            discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        remote = RemoteKeys(
            jwks_url=jwks_url, discovery_url=discovery_url, timeout=timeout, on_change=on_change
        )
        keys = remote.store
    return Issuer(issuer, audiences, frozenset(algorithms), keys, remote, tag)


def build_issuers(
    entries: Any,
    timeout: float,
    forget_kids: Callable[[set[str]], None],
) -> dict[str, Issuer]:
    """The ``issuers`` option: ``iss`` -> :class:`Issuer`, each with its own keys."""
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigurationError("issuers", "must be a list of {issuer, audience, keys...}")
    if not entries:
        raise ConfigurationError("issuers", "must list at least one issuer")
    found: dict[str, Issuer] = {}
    for index, entry in enumerate(entries):
        where = f"issuers[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigurationError(where, "must be a table of issuer options")
        unknown = set(entry) - ISSUER_OPTIONS
        if unknown:
            raise ConfigurationError(where, f"unknown options {sorted(unknown)}")
        iss = entry.get("issuer")
        if not isinstance(iss, str) or not iss:
            # The iss is what selects the entry: an entry without one could match nothing, or
            # (as a catch-all) any issuer at all.
            raise ConfigurationError(f"{where}.issuer", "is required: the exact iss of its tokens")
        if iss in found:
            raise ConfigurationError(f"{where}.issuer", f"{iss!r} is listed twice")
        if not isinstance(entry.get("discovery", False), bool):
            raise ConfigurationError(f"{where}.discovery", "must be true or false")
        tag = f"{index}\x00"
        options = {k: v for k, v in entry.items() if v is not None and k != "discovery"}
        found[iss] = build_issuer(
            where=f"{where}.",
            discovery=bool(entry.get("discovery", False)),
            timeout=timeout,
            tag=tag,
            on_change=_forgetting(tag, forget_kids),
            **options,
        )
    return found


def _forgetting(tag: str, forget_kids: Callable[[set[str]], None]) -> Callable[[set[str]], None]:
    def on_change(kids: set[str]) -> None:
        forget_kids({tag + kid for kid in kids})

    return on_change
