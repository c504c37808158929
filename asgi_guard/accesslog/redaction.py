"""What an access record must never hold: credentials, found by name and by shape, and text a
log viewer would show as something else.

Two rules, applied to every field taken from a request:

- **By name.** A query parameter, fragment parameter or logged header whose name, normalised
  (lowercase, letters and digits only: ``access_token``, ``Access-Token``, ``accessToken`` and
  ``ACCESS_TOKEN`` are all ``accesstoken``), is in :data:`SENSITIVE_NAMES` or contains one of
  :data:`SENSITIVE_PARTS` has its value replaced by ``[REDACTED]``.
- **By shape.** Whatever looks like a credential (:data:`CREDENTIAL_SHAPES`: JWS and JWE compact
  serialisations, URL userinfo, well-known API-key formats) is redacted wherever it appears:
  path, query, referer, user agent, logged headers.

Then every field is made safe to display: C0 and C1 controls, Unicode format and bidi controls
(U+202E, U+2066...), separators and other characters that are not printable are escaped
(``\\u202e``), and long values are cut with a ``[TRUNCATED]`` marker.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from typing import Final
from urllib.parse import unquote_plus

__all__ = [
    "CREDENTIAL_SHAPES",
    "REDACTED",
    "SENSITIVE_NAMES",
    "SENSITIVE_PARTS",
    "TRUNCATED",
    "clean",
    "normalise",
    "query_text",
    "redact_header",
    "redact_query",
    "redact_shapes",
    "referer_text",
    "sensitive_name",
    "text",
]

REDACTED: Final = "[REDACTED]"
TRUNCATED: Final = "[TRUNCATED]"

#: Normalised names whose values are credentials: OAuth 2.0 (RFC 6749), PKCE (RFC 7636, a
#: "plain" challenge is the verifier), token exchange (RFC 8693), JWT assertions (RFC 7523),
#: pushed requests (RFC 9126), device codes (RFC 8628), OpenID Connect, Azure SAS (``sig``), Google API keys (``key``),
#: and the usual spellings of passwords, sessions and keys.
SENSITIVE_NAMES: Final = frozenset(
    {
        "auth",
        "authkey",
        "authorization",
        "code",
        "codechallenge",
        "cookie",
        "devicecode",
        "hmac",
        "jwt",
        "key",
        "otp",
        "pass",
        "passcode",
        "passphrase",
        "pwd",
        "request",
        "requesturi",
        "session",
        "setcookie",
        "sid",
        "sig",
        "ticket",
    }
)
#: Pieces that make any normalised name sensitive: ``access_token``, ``X-Amz-Security-Token``,
#: ``client_secret``, ``passwd``, ``x-api-key``, ``X-Amz-Signature``, ``X-Goog-Credential``,
#: ``AWSAccessKeyId``, ``client_assertion``, ``code_verifier``, ``JSESSIONID``,
#: ``Ocp-Apim-Subscription-Key``...
SENSITIVE_PARTS: Final = (
    "token",
    "secret",
    "passw",
    "apikey",
    "signature",
    "credential",
    "accesskey",
    "privatekey",
    "sessionid",
    "sessid",
    "assertion",
    "verifier",
    "subscriptionkey",
)

_B64URL: Final = r"[A-Za-z0-9_-]"
#: Values shaped like credentials, redacted wherever they appear. Extend with
#: ``AccessLogMiddleware(redact_values=[...])``.
CREDENTIAL_SHAPES: Final = (
    # JWS (3 parts) and JWE (5 parts) compact serialisations (RFC 7515 section 7.1, RFC 7516
    # section 7.1): a base64url JSON header, which starts "ey" ('{"') or "ew" ('{' and a
    # newline); dots maybe percent-encoded. The header is decoded before a match counts.
    # Possessive, and only where a base64url run starts: hostile text ("eyeyey...") cannot
    # make the search quadratic.
    rf"(?<![A-Za-z0-9_-])(?P<jose>e[wy]{_B64URL}{{8,}}+(?:(?:\.|%2[Ee]){_B64URL}*+){{2,4}}+)",
    # Userinfo of an absolute or scheme-relative URL (RFC 3986 section 3.2.1); "\" counts as
    # "/" as browsers read it. Up to the last "@" of the authority.
    r"(?<=[/\\]{2})(?P<userinfo>[^/\\?#\s]*)@",
    # Credentials after an HTTP authentication scheme, in any field.
    r"(?i:\b(?P<scheme>bearer|basic|digest|dpop)\s++)[A-Za-z0-9._~+/=-]{6,}+",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"AIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}",  # GitHub tokens
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab tokens
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe keys
)
_SHAPES: Final = re.compile("|".join(CREDENTIAL_SHAPES))
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]+")
#: Where a cut value may end without leaving part of a credential behind.
_BOUNDARIES: Final = "/?&;#=, \t"
_QUERY_SEPARATORS: Final = re.compile(r"([&;#])")


def normalise(name: str) -> str:
    """A parameter or header name as the rules compare it: lowercase letters and digits."""
    return _NOT_ALNUM.sub("", name.lower())


def sensitive_name(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether values under ``name`` are credentials (``extra``: more normalised names)."""
    key = normalise(name)
    return key in SENSITIVE_NAMES or key in extra or any(part in key for part in SENSITIVE_PARTS)


def _is_jose_header(segment: str) -> bool:
    """Whether a base64url segment decodes to a JSON object's start (a JOSE header)."""
    segment = segment[: len(segment) - len(segment) % 4]  # whole quanta: enough for "{"
    try:
        return base64.urlsafe_b64decode(segment).lstrip().startswith(b"{")
    except (binascii.Error, ValueError):
        return False


def _replace(match: re.Match[str]) -> str:
    jose = match.group("jose")
    if jose is not None:
        return REDACTED if _is_jose_header(re.split(r"\.|%2[Ee]", jose, maxsplit=1)[0]) else jose
    if match.group("userinfo") is not None:
        return REDACTED + "@"
    scheme = match.group("scheme")
    return f"{scheme} {REDACTED}" if scheme is not None else REDACTED


def redact_shapes(value: str, shapes: re.Pattern[str] = _SHAPES) -> str:
    """``value`` with everything shaped like a credential replaced by ``[REDACTED]``."""
    return shapes.sub(_replace, value)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


#: Escapes of the characters that are not printable in the ranges where the controls, format,
#: bidi and separator characters live (the rest are found one by one).
_ESCAPES: Final = {
    code: _escape(code)
    for code in itertools.chain(
        range(0x0000, 0x2070), (0x3000,), range(0xFE00, 0x10000), range(0xE0000, 0xE0080)
    )
    if not chr(code).isprintable()
}


def clean(value: str) -> str:
    """``value`` with every character that is not printable escaped: C0/C1 controls, line and
    paragraph separators, format and bidi controls (a log viewer would show a reordered,
    spoofed line), unassigned and private-use code points, lone surrogates."""
    if value.isprintable():
        return value
    value = value.translate(_ESCAPES)
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else _escape(ord(c)) for c in value)


def _cut(value: str, limit: int) -> str:
    """The first ``limit`` characters of ``value``, back to the last boundary: a credential
    cut in two would no longer have its shape, so its first part goes too."""
    value = value[:limit]
    return value[: max(map(value.rfind, _BOUNDARIES)) + 1]


def bounded(value: str, limit: int, shapes: re.Pattern[str] = _SHAPES) -> str:
    """A field for the log: at most ``limit`` characters of ``value`` (then the marker),
    credentials redacted, safe to display."""
    cut = len(value) > limit
    if cut:
        value = _cut(value, limit)
    value = clean(shapes.sub(_replace, value))
    return value + TRUNCATED if cut else value


def _decoded(raw: bytes, limit: int) -> tuple[str, bool]:
    """Bytes as text (invalid UTF-8 escaped), cut at ``limit``; and whether it was cut."""
    if len(raw) <= limit:
        return raw.decode("utf-8", "backslashreplace"), False
    return _cut(raw[:limit].decode("utf-8", "backslashreplace"), limit), True


def text(raw: bytes, limit: int = 512, shapes: re.Pattern[str] = _SHAPES) -> str:
    """Header bytes for the log: invalid UTF-8 escaped, then as :func:`bounded`."""
    value, cut = _decoded(raw, limit)
    value = clean(shapes.sub(_replace, value))
    return value + TRUNCATED if cut else value


def query_text(
    raw: bytes,
    limit: int = 2048,
    sensitive: frozenset[str] = frozenset(),
    shapes: re.Pattern[str] = _SHAPES,
) -> str:
    """A query string for the log: cut, redacted (:func:`redact_query`), safe to display."""
    value, cut = _decoded(raw, limit)
    value = clean(redact_query(value, sensitive, shapes))
    return value + TRUNCATED if cut else value


def _has_shape(value: str, shapes: re.Pattern[str]) -> bool:
    """Whether ``value``, percent-decoded, holds something shaped like a credential."""
    if "%" in value or "+" in value:
        value = unquote_plus(value)
    return shapes.sub(_replace, value) != value


def redact_query(
    query: str, sensitive: frozenset[str] = frozenset(), shapes: re.Pattern[str] = _SHAPES
) -> str:
    """Replace the values of sensitive parameters, and any name or value shaped like a
    credential once percent-decoded, by ``[REDACTED]``.

    Names are matched percent-decoded and normalised (:func:`sensitive_name`; ``sensitive``
    holds more normalised names). Parameters are separated by ``&``, and also by ``;`` (which
    some parsers split on) and ``#`` (a fragment's parameters: an OAuth implicit-flow callback
    carries its token there).
    """
    if not query:
        return query
    if ";" in query or "#" in query:
        parts = _QUERY_SEPARATORS.split(query)  # parameters at even indices, separators between
        step, glue = 2, ""
    else:
        parts = query.split("&")
        step, glue = 1, "&"
    for index in range(0, len(parts), step):
        name, sep, value = parts[index].partition("=")
        if _has_shape(name, shapes):
            name = REDACTED
        if sep and (sensitive_name(unquote_plus(name), sensitive) or _has_shape(value, shapes)):
            value = REDACTED
        parts[index] = name + sep + value
    return glue.join(parts)


#: HTTP authentication schemes (RFC 9110 section 11, the IANA registry and common
#: non-registered ones) kept in front of a redacted credential; any other first word may be
#: the secret itself.
_SCHEMES: Final = frozenset(
    {
        "basic",
        "bearer",
        "digest",
        "dpop",
        "gnap",
        "hoba",
        "mutual",
        "negotiate",
        "ntlm",
        "scram-sha-1",
        "scram-sha-256",
        "vapid",
        "aws4-hmac-sha256",
        "token",
    }
)


def redact_header(name: str, value: str) -> str:
    """A sensitive header's value (``name`` lowercase), keeping its structure: the scheme of
    credentials (``Bearer [REDACTED]``), the names of cookies (``session=[REDACTED]``)."""
    if name in ("authorization", "proxy-authorization"):
        scheme, sep, _ = value.strip().partition(" ")
        return f"{scheme} {REDACTED}" if sep and scheme.lower() in _SCHEMES else REDACTED
    if name in ("cookie", "set-cookie"):
        pieces = [piece.strip() for piece in value.split(";")]
        # A piece without "=" is a nameless cookie's value (RFC 6265 section 5.2 reads it so).
        return "; ".join(
            f"{piece.partition('=')[0]}={REDACTED}" if "=" in piece else REDACTED
            for piece in pieces
            if piece
        )
    return REDACTED


_AUTHORITY: Final = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]{2}[^/\\?#]*")


def referer_text(
    raw: bytes, sensitive: frozenset[str] = frozenset(), shapes: re.Pattern[str] = _SHAPES
) -> str:
    """A Referer for the log: its userinfo, and its query's and fragment's sensitive
    parameters, redacted.

    User agents send neither userinfo nor a fragment in Referer (RFC 9110 section 10.1.3); a
    client that does may be sending a password or an implicit-flow token.
    """
    value, truncated = _decoded(raw, 512)
    value = shapes.sub(_replace, value)
    authority = _AUTHORITY.match(value)
    start = authority.end() if authority is not None else 0
    cut = min((i for i in (value.find("?", start), value.find("#", start)) if i != -1), default=-1)
    if cut != -1:
        value = value[: cut + 1] + redact_query(value[cut + 1 :], sensitive, shapes)
    value = clean(value)
    return value + TRUNCATED if truncated else value
