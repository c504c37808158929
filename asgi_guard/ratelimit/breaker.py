"""A circuit breaker per incident for a network storage.

One trip and one warning per incident: calls already in flight when the storage failed belong
to the same incident and change nothing. After the back-off one request probes the storage
(half-open) while the others are handled as during the outage; a failed probe doubles the
back-off up to the cap, a successful one closes the breaker. The cap is short (1 s), so limiting
resumes within a second or so of the storage answering again; a probe is one request.
"""

from __future__ import annotations

import logging
from typing import Final

__all__ = ["Breaker"]

logger = logging.getLogger("asgi_guard.ratelimit")

BACKOFF_MIN: Final = 0.25
BACKOFF_MAX: Final = 1.0
_CLOSED, _OPEN, _PROBING = 0, 1, 2


class Breaker:
    """Decides which requests may call the storage. ``ticket(now)`` returns a ticket to pass
    back to ``success``/``failure``, or None when the storage must not be called now."""

    __slots__ = ("backoff", "generation", "open_until", "probe", "since", "state", "trips")

    def __init__(self) -> None:
        self.state = _CLOSED
        self.generation = 0  # changes at every trip and every probe
        self.open_until = 0.0
        self.backoff = BACKOFF_MIN
        self.probe = -1  # the ticket of the probe in flight
        self.since = 0.0  # when the current incident began
        self.trips = 0  # incidents so far

    @property
    def closed(self) -> bool:
        return self.state == _CLOSED

    def ticket(self, now: float) -> int | None:
        """A ticket to call the storage, or None while it is open or a probe is in flight."""
        if self.state == _CLOSED:
            return self.generation
        if self.state == _OPEN and now >= self.open_until:
            self.state = _PROBING
            self.generation += 1
            self.probe = self.generation
            return self.probe
        return None

    def is_probe(self, ticket: int) -> bool:
        return self.state == _PROBING and ticket == self.probe

    def success(self, ticket: int, now: float) -> None:
        if self.state == _PROBING and ticket == self.probe:
            self.state = _CLOSED
            self.generation += 1
            self.backoff = BACKOFF_MIN
            logger.warning("rate-limit storage answers again after %.1f s", now - self.since)

    def failure(self, ticket: int, now: float, error: BaseException) -> None:
        if self.state == _CLOSED and ticket == self.generation:
            self.state = _OPEN
            self.generation += 1
            self.trips += 1
            self.since = now
            self.backoff = BACKOFF_MIN
            self.open_until = now + self.backoff
            logger.warning(
                "rate-limit storage failed (%s); probing it again every %.2g-%.2g s",
                type(error).__name__,
                BACKOFF_MIN,
                BACKOFF_MAX,
            )
        elif self.state == _PROBING and ticket == self.probe:
            self.state = _OPEN
            self.backoff = min(self.backoff * 2, BACKOFF_MAX)
            self.open_until = now + self.backoff
        # Anything else was in flight when the incident began: it is the same incident.

    def abandon(self, ticket: int, now: float) -> None:
        """A call that never finished (its request was cancelled): if it was the probe, the
        next request probes instead; otherwise the breaker stays half-open for ever."""
        if self.state == _PROBING and ticket == self.probe:
            self.state = _OPEN
            self.open_until = now

    def retry_after(self, now: float) -> float:
        """Seconds until the next probe may run."""
        return max(self.open_until - now, 0.0)
