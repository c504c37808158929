"""The verified-token cache: an LRU bounded in entries and in the bytes its entries hold.

Entries are counted by the memory they keep alive (claims, scopes, the entry itself), measured
when stored, not by their number alone: a token's claims become Python objects several times
their encoded size (15 KB tokens held about 115 KB each), so an entry bound alone let 10,000
large tokens hold over a gigabyte. Tokens longer than ``max_token`` bytes are never cached.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from typing import Any, Final

from . import tokens
from .tokens import TokenError
from .user import AuthenticatedUser

__all__ = ["DEFAULT_MAX_BYTES", "MAX_CACHED_TOKEN", "TokenCache"]

#: Default byte budget: room for the default 10,000 entries of ordinary (1-2 KB) tokens.
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
#: Longest token cached. Larger ones (Entra ID group overage, stuffed claims) are verified
#: each time: caching them would let a few hundred evict every ordinary entry.
MAX_CACHED_TOKEN: Final = 8 * 1024
#: What an entry costs besides its claims: the 32-byte digest key, the dict slot and links of
#: the LRU, the entry and user objects (measured with tracemalloc: about 420 bytes).
_ENTRY_OVERHEAD: Final = 512


def deep_size(root: Any) -> int:
    """Bytes held by a decoded JSON value (dicts, lists, strings, numbers) and a scope set.

    Shared objects (dict keys the JSON decoder reuses) are counted each time they appear:
    an overestimate, never an under-count.
    """
    size = 0
    stack = [root]
    getsizeof = sys.getsizeof
    while stack:
        item = stack.pop()
        size += getsizeof(item)
        if item.__class__ is dict:
            stack.extend(item.keys())
            stack.extend(item.values())
        elif item.__class__ in (list, frozenset):
            stack.extend(item)
    return size


class _Entry:
    __slots__ = ("exp", "kid", "nbf", "size", "stale_at", "user")

    def __init__(self, user: AuthenticatedUser, kid: str | None, stale_at: float) -> None:
        self.user = user
        self.kid = kid
        claims = user.claims
        self.exp: float = claims["exp"]
        self.nbf: float | None = claims.get("nbf")
        self.stale_at = stale_at
        self.size = _ENTRY_OVERHEAD + deep_size(claims) + deep_size(user.scopes)


class TokenCache:
    """Verified tokens by SHA-256 digest, least recently used evicted first.

    Bounded by ``max_entries`` entries and ``max_bytes`` bytes (see :func:`deep_size`);
    a hit is still checked against ``exp``/``nbf`` and the ``max_age`` of the entry.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age: float = 300.0,
        max_token: int = MAX_CACHED_TOKEN,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.max_token = max_token
        self.bytes = 0
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, digest: bytes, now: float, leeway: float) -> AuthenticatedUser | None:
        """The user of a cached verification still within exp/nbf and the max age."""
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now < entry.stale_at and now - leeway < entry.exp:  # as tokens.check_times
            if entry.nbf is not None and now + leeway < entry.nbf:
                raise TokenError(tokens.NOT_YET_VALID)
            self._entries.move_to_end(digest)
            return entry.user
        self._remove(digest)
        return None

    def store(
        self, digest: bytes, token_size: int, user: AuthenticatedUser, kid: str | None, now: float
    ) -> None:
        """Remember a verification, evicting the least recently used entries to stay bounded."""
        if token_size > self.max_token or not self.max_entries:
            return
        entry = _Entry(user, kid, now + self.max_age)
        if entry.size > self.max_bytes:
            return
        if digest in self._entries:
            self._remove(digest)
        self._entries[digest] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes or len(self._entries) > self.max_entries:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size

    def forget_kids(self, kids: set[str]) -> None:
        """Drop the verifications made with keys that left the key set."""
        for digest in [d for d, entry in self._entries.items() if entry.kid in kids]:
            self._remove(digest)

    def _remove(self, digest: bytes) -> None:
        self.bytes -= self._entries.pop(digest).size
