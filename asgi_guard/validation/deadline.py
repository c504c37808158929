"""One watchdog per event loop that cancels body reads past their deadline.

A timer per request (``asyncio.timeout``) costs a heap push and a cancelled handle on every
request, about 1-3 us; registering the reading task in a dict costs about 0.15 us, and one
task per loop, waking a few times per ``body_timeout``, cancels the late ones.
"""

from __future__ import annotations

import asyncio
from time import monotonic
from typing import Any, Final

__all__ = ["Deadlines"]

#: The watchdog wakes this many times per timeout (at most once a second), so a body is cut
#: off between ``timeout`` and ``timeout * (1 + 1 / _CHECKS)`` after its reading began.
_CHECKS: Final = 4


class Deadlines:
    """Body reads in flight on the running loop, and the task that ends the late ones."""

    __slots__ = ("_expired", "_period", "reads", "timeout", "watchdog")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._period = min(timeout / _CHECKS, 1.0)
        #: The reading tasks and their deadlines (``time.monotonic``); the middleware adds
        #: and removes its entries inline, on every request.
        self.reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self.watchdog: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Start the watchdog on ``task``'s loop (there is none running)."""
        self.watchdog = task.get_loop().create_task(self._watch())

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the watchdog cancelled ``task``; if so, the cancellation is withdrawn so
        the task can answer 408."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    async def _watch(self) -> None:
        # One instance serves one loop at a time (a server's worker); asyncio.run and
        # servers cancel this task when their loop ends, which lets the next loop start one.
        try:
            while True:
                # Sleep first: a watchdog made for a read that ends at once must not end at
                # once too, or every request would pay for a new task (~10,000 instructions).
                await asyncio.sleep(self._period)
                if not self.reads:
                    return  # a whole period with nothing in flight: the next read starts one
                now = monotonic()
                late = [task for task, deadline in self.reads.items() if deadline <= now]
                for task in late:
                    del self.reads[task]
                    self._expired.add(task)
                    task.cancel()
        finally:
            self.watchdog = None
