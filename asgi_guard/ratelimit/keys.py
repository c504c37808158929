"""Client identities for rate limiting: the request -> counter-key function."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import Final

from .._asgi import BoundedMemo, Scope
from ..errors import ConfigurationError

__all__ = ["KeyFunc", "key_function"]

#: Identifiers made only of these characters (and short) are used as they are; anything else
#: is hashed. Neither "/" (the key separator), "{" / "}" (Redis Cluster hash tags) nor the
#: "=" / "#" markers are in the set, so the encoding is injective: two identities never share
#: a counter.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:@+-]{1,64}")

#: A field name (RFC 9110 section 5.1: a token, section 5.6.2).
_FIELD_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")

KeyFunc = Callable[[Scope], "str | None"]


def encode_id(value: str) -> str:
    if _SAFE_ID.fullmatch(value):
        return "=" + value
    return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _address_key(host: str, ipv6_prefix: int) -> str:
    """The identity of a client address: IPv4 as it is, IPv6 as its /``ipv6_prefix`` network.

    One subscriber gets a whole /64 (or more) and may use every address in it; counting each
    address apart would let one client multiply its limit by 2**64.
    """
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return "ip" + encode_id(host)
    if address.ipv4_mapped is not None:
        return "ip" + encode_id(str(address.ipv4_mapped))
    # The zone id ("%eth0", free text) goes too: it names no other client.
    bits = 128 - ipv6_prefix
    network = ipaddress.IPv6Address(int(address) >> bits << bits)
    return f"ip={network.compressed}@{ipv6_prefix}"


def key_function(key: str | KeyFunc, ipv6_prefix: int = 64) -> Callable[[Scope], str]:
    """Build the request -> identifier function once; identity keys fall back to the IP."""
    networks = BoundedMemo(max_entries=4096, max_key=64)

    def ip(scope: Scope) -> str:
        client = scope.get("client")
        if not client:
            return "ip=-"
        host: str = client[0]
        if ":" not in host:
            return "ip" + encode_id(host)
        identity: str | None = networks.get(host)
        if identity is None:
            identity = networks.remember(host, len(host), _address_key(host, ipv6_prefix))
        return identity

    if callable(key):
        func = key

        def custom(scope: Scope) -> str:
            value = func(scope)
            return ip(scope) if value is None else "fn" + encode_id(str(value))

        return custom
    if key == "ip":
        return ip
    if key == "sub" or key.startswith("claim:"):
        claim = "sub" if key == "sub" else key[6:]
        if not claim:
            raise ConfigurationError("key", "claim: needs a claim name")

        def by_claim(scope: Scope) -> str:
            auth = scope.get("auth")
            value = auth.get(claim) if isinstance(auth, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                return "c" + encode_id(str(value))
            return ip(scope)

        return by_claim
    if key.startswith("header:"):
        text = key[7:].strip().lower()
        if not _FIELD_NAME.fullmatch(text):
            # A name no request can carry (a space, a colon, non-ASCII) would never match:
            # every caller would be counted by address instead, in silence.
            raise ConfigurationError("key", f"header: needs a header name, not {text!r}")
        name = text.encode("ascii")

        def by_header(scope: Scope) -> str:
            for header, value in scope["headers"]:
                if header == name and value:
                    return "h" + encode_id(value.decode("latin-1"))
            return ip(scope)

        return by_header
    raise ConfigurationError(
        "key", f"must be 'ip', 'sub', 'claim:<name>', 'header:<name>' or a callable, not {key!r}"
    )
