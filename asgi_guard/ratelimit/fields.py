"""The RateLimit fields of one response, shared by every rate-limit layer a request passes.

With an IP limit and an identity limit on one route (two layers, as ``guard()`` builds them),
the response carries ONE ``RateLimit-Policy``/``RateLimit`` pair: the tightest limit's. The
first layer that admits a request files a :class:`Shown` record with the request context
(:mod:`asgi_guard.context`), whose one response hook writes it at ``http.response.start``;
inner layers only update the record.

The merge rule: a refusal always wins (its limit is the one the client has to wait for);
otherwise the tightest limit is the one with the fewest requests remaining, and among equals
the one with the longest time to reset. The access-log record's ``ratelimit`` follows the
same rule.
"""

from __future__ import annotations

from ..context import tighter

__all__ = ["Shown", "tighter"]


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
