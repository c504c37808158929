"""Any other ``limits`` storage (Valkey, Sentinel, Memcached, MongoDB...) through limits' own
strategies: every limit is tested, then every limit is hit.

Between the test and the hit another process may count, so across processes a burst can pass
a limit by the number of processes racing; and a refusal found only at the hit step has
consumed the limits hit before it. The memory and Redis storages have neither flaw (one atomic
step per decision); this path exists for storages that offer nothing better.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Final

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .windows import FIXED, MOVING, SLIDING

__all__ = ["LimitsCounters"]

_STRATEGIES: Final[dict[str, type[RateLimiter]]] = {
    SLIDING: SlidingWindowCounterRateLimiter,
    MOVING: MovingWindowRateLimiter,
    FIXED: FixedWindowRateLimiter,
}


class LimitsCounters:
    """A ``limits`` async storage and strategy behind the ``decide`` interface."""

    network = True
    prefix = ""

    def __init__(self, storage: Any, strategy: str, timeout: float | None = None) -> None:
        self.storage = storage
        #: ``storage_timeout``: the whole decision's deadline. These client libraries may wait
        #: on a hung server for ever (redis-py has no socket timeout by default).
        self.timeout = timeout
        self.limiter = _STRATEGIES[strategy](storage)  # NotImplementedError: unsupported
        self._items: dict[tuple[int, int], RateLimitItem] = {}

    def _item(self, limit: int, window: int) -> RateLimitItem:
        item = self._items.get((limit, window))
        if item is None:
            item = self._items[limit, window] = RateLimitItemPerSecond(limit, window // 1000)
        return item

    async def decide(
        self, items: Sequence[tuple[str, int, int]], cost: int, now: int
    ) -> tuple[bool, list[tuple[int, int]]]:
        async with asyncio.timeout(self.timeout):
            return await self._decide(items, cost, now)

    async def _decide(
        self, items: Sequence[tuple[str, int, int]], cost: int, now: int
    ) -> tuple[bool, list[tuple[int, int]]]:
        limiter = self.limiter
        made = [(key, self._item(limit, window)) for key, limit, window in items]
        admitted = True
        for key, item in made:
            if not await limiter.test(item, key, cost=cost):
                admitted = False
                break
        if admitted:
            for key, item in made:
                if not await limiter.hit(item, key, cost=cost):
                    admitted = False
                    break
        results = []
        for key, item in made:
            reset_at, remaining = await limiter.get_window_stats(item, key)
            # limits reports a float instant; a retry at that very instant may still be
            # counted, so the wait is the next whole millisecond after it.
            wait = max(0, math.floor(reset_at * 1000 - now) + 1) if remaining < cost else 0
            results.append(
                (remaining, wait if not admitted else max(0, round(reset_at * 1000 - now)))
            )
        return admitted, results

    async def discard_idle(self) -> None:
        """Nothing to discard: the client library manages its own connections."""

    async def aclose(self) -> None:
        bridge = getattr(self.storage, "bridge", None)
        close = getattr(getattr(bridge, "storage", None), "aclose", None)
        if close is not None:
            await close()
