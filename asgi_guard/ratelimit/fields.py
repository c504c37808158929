"""The RateLimit fields of one response, shared by every rate-limit layer a request passes.

With an IP limit and an identity limit on one route (two layers, as ``guard()`` builds them),
the response carries ONE ``RateLimit-Policy``/``RateLimit`` pair: the tightest limit's. The
first layer that admits a request files a :class:`Shown` record in ``scope["state"]`` and wraps
``send`` to write it at ``http.response.start``; inner layers only update the record.

The merge rule: a refusal always wins (its limit is the one the client has to wait for);
otherwise the tightest limit is the one with the fewest requests remaining, and among equals
the one with the longest time to reset. The access-log record's ``ratelimit`` follows the
same rule.
"""

from __future__ import annotations

from typing import Final

from .._asgi import Message, Send, append_headers

__all__ = ["SHOWN", "Shown", "tighter"]

SHOWN: Final = "asgi_guard.ratelimit"


def tighter(remaining: int, reset: int, than: tuple[int, int, int] | None) -> bool:
    """Whether ``(remaining, reset)`` is tighter than the ``(limit, remaining, reset)`` record."""
    return than is None or (remaining, -reset) < (than[1], -than[2])


class Shown:
    """The limit a response shows: its policy item, name and figures."""

    __slots__ = ("amount", "legacy", "name", "policy", "remaining", "reset")

    def __init__(
        self, policy: bytes, name: bytes, amount: int, remaining: int, reset: int, legacy: bool
    ) -> None:
        self.policy, self.name, self.amount = policy, name, amount
        self.remaining, self.reset, self.legacy = remaining, reset, legacy

    def update(self, policy: bytes, name: bytes, amount: int, remaining: int, reset: int) -> None:
        self.policy, self.name, self.amount = policy, name, amount
        self.remaining, self.reset = remaining, reset

    def headers(self) -> list[tuple[bytes, bytes]]:
        values = [
            (b"ratelimit-policy", self.policy),
            (b"ratelimit", b'"%s";r=%d;t=%d' % (self.name, self.remaining, self.reset)),
        ]
        if self.legacy:
            values += [
                (b"x-ratelimit-limit", b"%d" % self.amount),
                (b"x-ratelimit-remaining", b"%d" % self.remaining),
                (b"x-ratelimit-reset", b"%d" % self.reset),
            ]
        return values

    def wrap(self, send: Send) -> Send:
        """``send`` with this record's fields added to the response start, as they are then."""

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                append_headers(message, self.headers())
            await send(message)

        return send_with_fields
