"""JWS compact parsing, signature verification (joserfc algorithms) and claim checks.

Everything here reads attacker bytes: every failure is a :class:`TokenError` carrying the
problem to answer with, never another exception.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from base64 import urlsafe_b64decode
from collections.abc import Collection, Sequence
from typing import Any, Final

from joserfc.jws import JWSRegistry

from .._asgi import Problem
from .keys import VerifyKey

__all__ = ["TokenError", "check_claims", "check_header", "check_times", "parse", "verify_signature"]

_JWS: Final = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ALG_MODELS: Final = JWSRegistry.algorithms
#: Registered header parameters this layer understands; "crit" naming any extension fails.
_UNDERSTOOD_CRIT: Final[frozenset[str]] = frozenset()


def _problem(code: str, detail: str) -> Problem:
    return Problem(401, code, "Unauthorized", detail)


INVALID: Final = _problem("jwt.invalid", "The access token is invalid.")
MALFORMED: Final = _problem("jwt.malformed", "The access token is not a well-formed JWT.")
BAD_ALG: Final = _problem("jwt.invalid_algorithm", "The access token's algorithm is not accepted.")
BAD_SIGNATURE: Final = _problem("jwt.invalid_signature", "The access token's signature is invalid.")
UNKNOWN_KEY: Final = _problem("jwt.unknown_key", "The access token was signed by an unknown key.")
EXPIRED: Final = _problem("jwt.expired", "The access token expired.")
NOT_YET_VALID: Final = _problem("jwt.not_yet_valid", "The access token is not valid yet.")
BAD_ISSUER: Final = _problem("jwt.invalid_issuer", "The access token's issuer is not accepted.")
BAD_AUDIENCE: Final = _problem(
    "jwt.invalid_audience", "The access token is not meant for this API."
)
BAD_TYPE: Final = _problem("jwt.invalid_type", "The access token's type is not accepted.")
BAD_CLAIMS: Final = _problem("jwt.invalid_claims", "The access token's claims are malformed.")
#: Every invalid_token answer this module can give.
PROBLEMS: Final = (
    INVALID, MALFORMED, BAD_ALG, BAD_SIGNATURE, UNKNOWN_KEY, EXPIRED,
    NOT_YET_VALID, BAD_ISSUER, BAD_AUDIENCE, BAD_TYPE, BAD_CLAIMS,
)  # fmt: skip


class TokenError(Exception):
    """A token was refused; ``problem`` is the answer (RFC 6750 ``invalid_token``)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A claim given twice must not let a lenient parser pick the wider value.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: not in RFC 8259


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _json_segment(segment: bytes) -> dict[str, Any]:
    if len(segment) % 4 == 1:
        raise TokenError(MALFORMED)
    try:
        raw = urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
        value = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, binascii.Error, RecursionError, UnicodeDecodeError):
        raise TokenError(MALFORMED) from None
    if not isinstance(value, dict):
        raise TokenError(MALFORMED)
    return value


def parse(token: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split and decode a compact JWS: (header, claims, signing input, signature)."""
    if not _JWS.fullmatch(token):
        raise TokenError(MALFORMED)
    head, payload, signature = token.split(b".")
    header = _json_segment(head)
    claims = _json_segment(payload)
    if len(signature) % 4 == 1:
        raise TokenError(MALFORMED)
    try:
        sig = urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
    except (ValueError, binascii.Error):  # pragma: no cover - charset checked above
        raise TokenError(MALFORMED) from None
    return header, claims, head + b"." + payload, sig


def check_header(
    header: dict[str, Any], algorithms: Collection[str], token_type: str | None
) -> str:
    """Check alg (allow-list; never ``none``), typ and crit; returns the algorithm."""
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise TokenError(BAD_ALG)
    if "crit" in header:
        crit = header["crit"]
        # RFC 7515 section 4.1.11: a non-empty list of names; items are attacker JSON (a list
        # or object item is unhashable: checked one by one, never put in a set).
        if (
            not isinstance(crit, list)
            or not crit
            or not all(isinstance(name, str) and name in _UNDERSTOOD_CRIT for name in crit)
        ):
            raise TokenError(INVALID)
    if token_type is not None:
        typ = header.get("typ")
        if not isinstance(typ, str) or _media_type(typ) != _media_type(token_type):
            raise TokenError(BAD_TYPE)
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenError(MALFORMED)
    return alg


def _media_type(typ: str) -> str:
    # RFC 7515 section 4.1.9: "application/" may be omitted and comparison is case-insensitive.
    typ = typ.lower()
    return typ[12:] if typ.startswith("application/") else typ


def verify_signature(
    alg: str, signing_input: bytes, signature: bytes, keys: Sequence[VerifyKey]
) -> VerifyKey:
    """The key (among ``keys``, all of ``alg``'s family) whose signature matches."""
    model = _ALG_MODELS[alg]
    for key in keys:
        try:
            model.check_key(key.key)
            if model.verify(signing_input, signature, key.key):
                return key
        # Any key/signature mismatch (wrong curve, bad length, ...) just means "no match".
        except Exception:  # noqa: S112  # nosec B112
            continue
    raise TokenError(BAD_SIGNATURE)


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def check_times(claims: dict[str, Any], now: float, leeway: float) -> None:
    """exp (required), nbf and iat (when present) against the clock, RFC 7519 section 4.1."""
    exp = claims.get("exp")
    if not _number(exp):
        raise TokenError(BAD_CLAIMS)
    assert exp is not None
    # The leeway moves the clock, not the claim: exp + leeway would overflow for a huge
    # integer exp, while float/int comparison is exact at any size.
    if now - leeway >= exp:
        raise TokenError(EXPIRED)
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _number(nbf):
            raise TokenError(BAD_CLAIMS)
        if now + leeway < nbf:
            raise TokenError(NOT_YET_VALID)
    iat = claims.get("iat")
    if iat is not None:
        if not _number(iat):
            raise TokenError(BAD_CLAIMS)
        if now + leeway < iat:
            raise TokenError(NOT_YET_VALID)


def check_claims(
    claims: dict[str, Any],
    issuer: str | None,
    audiences: frozenset[str] | None,
) -> None:
    """Types of the registered claims, issuer (exact) and audience (any accepted value)."""
    iss = claims.get("iss")
    if iss is not None and not isinstance(iss, str):
        raise TokenError(BAD_CLAIMS)
    if issuer is not None and iss != issuer:
        raise TokenError(BAD_ISSUER)
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise TokenError(BAD_CLAIMS)
    aud = claims.get("aud")
    if aud is not None:
        if isinstance(aud, str):
            aud = [aud]
        elif not isinstance(aud, list) or not all(isinstance(item, str) for item in aud):
            raise TokenError(BAD_CLAIMS)
    if audiences is not None and (aud is None or audiences.isdisjoint(aud)):
        raise TokenError(BAD_AUDIENCE)


def granted_scopes(claims: dict[str, Any], scope_claims: Sequence[str]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated, RFC 8693 section 4.2) and/or ``scp`` claims."""
    scopes: set[str] = set()
    for name in scope_claims:
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            scopes.update(value)
        else:
            raise TokenError(BAD_CLAIMS)
    return frozenset(scopes)
