"""One bounded HTTP GET for key material: a size cap on the decoded body, applied while reading.

The caller gives the whole exchange one deadline (``asyncio.timeout``): a per-read timeout
alone lets a server that sends one byte every few seconds hold a request forever.
"""

from __future__ import annotations

import functools
import ssl
import zlib
from typing import Any, Final

__all__ = ["get_bounded", "tls_context"]

#: Content codings a key server may answer with: we ask for gzip only (RFC 9110 section 12.5.3).
#: wbits 47 = 32 + 15: zlib reads a gzip (RFC 1952) or zlib (RFC 1950) header, whichever comes.
_CODINGS: Final = {"gzip": 47, "x-gzip": 47, "deflate": 47}
_REQUEST_HEADERS: Final = {"accept": "application/json", "accept-encoding": "gzip"}


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context of every key fetch, built once per process (outside the event loop
    when called at construction): an httpx client building its own loads the CA bundle each
    time, which held the event loop for about 100 ms on every fetch (measured 80-120 ms)."""
    import httpx

    return httpx.create_ssl_context()


class _Inflater:
    """Decodes a gzip/deflate body chunk by chunk, never producing more than asked."""

    def __init__(self, wbits: int) -> None:
        self.wbits = wbits
        self.inflater = zlib.decompressobj(wbits)

    def feed(self, data: bytes, room: int) -> bytes:
        """At most ``room`` decoded bytes of ``data`` (more pending means the cap is passed)."""
        try:
            out = self.inflater.decompress(data, room)
            # Concatenated gzip members decode one after the other (RFC 1952 section 2.2).
            while self.inflater.eof and self.inflater.unused_data and len(out) < room:
                rest = self.inflater.unused_data
                self.inflater = zlib.decompressobj(self.wbits)
                out += self.inflater.decompress(rest, room - len(out))
        except zlib.error:
            raise ValueError("corrupt compressed body") from None
        return out

    def complete(self) -> bool:
        return self.inflater.eof


async def get_bounded(client: Any, url: str, max_bytes: int) -> tuple[bytes, Any]:
    """The body (decoded, at most ``max_bytes``) and headers of a 200 answer to GET ``url``.

    Raises ValueError for a non-http(s) URL, a non-200 status, an unknown content coding, a
    body (raw or decoded) over ``max_bytes``, or a truncated compressed body. The body is
    decoded here, from the raw bytes, so a compressed answer is never inflated past the cap
    (httpx would inflate each network chunk whole: 58 KiB of gzip can hold 60 MB).
    """
    if not url.startswith(("https://", "http://")):
        raise ValueError("key URL must be http(s)")
    async with client.stream("GET", url, headers=_REQUEST_HEADERS) as response:
        if response.status_code != 200:
            raise ValueError(f"status {response.status_code}")
        coding = response.headers.get("content-encoding", "identity").strip().lower()
        inflater = None
        if coding != "identity":
            if coding not in _CODINGS:
                raise ValueError(f"content-encoding {coding[:20]!r} not supported")
            inflater = _Inflater(_CODINGS[coding])
        body = bytearray()
        received = 0
        too_large = f"response over {max_bytes // 1024} KiB"
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > max_bytes:
                raise ValueError(too_large)
            body += chunk if inflater is None else inflater.feed(chunk, max_bytes + 1 - len(body))
            if len(body) > max_bytes:
                raise ValueError(too_large)
        if inflater is not None and not inflater.complete():
            raise ValueError("truncated compressed body")
        return bytes(body), response.headers
