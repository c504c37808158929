"""In-process counters for the three strategies, with an incremental sweep.

Every decision runs without an await between reading and writing the counters, so on one event
loop it is atomic, and a request refused by any of its limits consumes nothing.

Idle clients are dropped by a sweep that does bounded work per call: each key sits in exactly
one one-second bucket of a timing wheel (the second it was due to expire when last filed); a
sweep step takes at most ``sweep_batch`` keys from due buckets, deletes the expired ones and
refiles the rest. No step scans the whole table, so the sweep never stalls the loop, whatever
the number of clients (see the benchmarks for the worst step at a million clients).

The table itself is 256 dicts chosen by the key's hash: a Python dict grows by copying every
entry, which at a million clients stalls one insertion for tens of milliseconds; a shard holds
a 256th of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any, Final

from .windows import FIXED, MOVING, SLIDING, figures, moving_stamp

__all__ = ["MemoryCounters"]

#: Keys examined per sweep step: 1,000 keys take well under a millisecond.
SWEEP_BATCH: Final = 1000
#: Milliseconds between sweep steps when no backlog is left.
SWEEP_INTERVAL: Final = 1000
_SHARDS: Final = 256

Item = tuple[str, int, int]  # (key, limit, window ms)
Decision = tuple[bool, list[tuple[int, int]]]


class MemoryCounters:
    """One process's counters: ``decide`` hits every limit of a request or none of them.

    Entries are small lists whose first element is the expiry in milliseconds:
    fixed ``[expires, window index, count]``, sliding ``[expires, window index, prev, curr]``,
    moving ``[expires, stamp, stamp, ...]`` (newest last, at most ``limit`` stamps).
    """

    def __init__(self, strategy: str, sweep_batch: int = SWEEP_BATCH) -> None:
        if strategy not in (FIXED, MOVING, SLIDING):
            raise ValueError(strategy)
        self.strategy = strategy
        self._shards: list[dict[str, list[int]]] = [{} for _ in range(_SHARDS)]
        self.sweep_batch = sweep_batch
        self._wheel: dict[int, list[str]] = {}
        self._seconds: list[int] = []  # heap of the wheel's bucket seconds
        self._due: list[str] = []  # keys of the bucket being swept
        self._next_sweep = 0
        self.largest_step = 0  # most keys examined by one sweep step (for the benchmarks)

    def __len__(self) -> int:
        """Keys held."""
        return sum(map(len, self._shards))

    def held_keys(self) -> list[str]:
        """Every key held (for tests and inspection)."""
        return [key for shard in self._shards for key in shard]

    def _file(self, key: str, expires: int) -> None:
        second = expires // 1000
        bucket = self._wheel.get(second)
        if bucket is None:
            bucket = self._wheel[second] = []
            heapq.heappush(self._seconds, second)
        bucket.append(key)

    def sweep(self, now: int) -> int:
        """One bounded sweep step at ``now`` (ms): at most ``sweep_batch`` keys. Returns how
        many keys it examined."""
        budget = self.sweep_batch
        shards, due, seconds = self._shards, self._due, self._seconds
        limit_second = now // 1000
        while budget:
            if not due:
                if not seconds or seconds[0] > limit_second:
                    break
                due = self._due = self._wheel.pop(heapq.heappop(seconds))
            key = due.pop()
            budget -= 1
            shard = shards[hash(key) & (_SHARDS - 1)]
            entry = shard.get(key)
            if entry is None:
                continue
            if entry[0] <= now:
                del shard[key]
            else:
                self._file(key, entry[0])
        examined = self.sweep_batch - budget
        # A backlog is worked off by the next calls; otherwise look again in a second.
        self._next_sweep = now if examined == self.sweep_batch else now + SWEEP_INTERVAL
        self.largest_step = max(self.largest_step, examined)
        return examined

    def _entry(self, key: str, fresh: list[int]) -> list[int]:
        shard = self._shards[hash(key) & (_SHARDS - 1)]
        entry = shard.get(key)
        if entry is None:
            entry = shard[key] = fresh
            self._file(key, fresh[0])
        return entry

    def decide(self, items: Sequence[Item], cost: int, now: int) -> Decision:
        """Hit all ``items`` by ``cost`` at ``now`` (ms) if every one admits it, else none.

        Returns ``(admitted, [(remaining, wait_ms), ...])`` per item (see ``windows.figures``).
        """
        if now >= self._next_sweep:
            self.sweep(now)
        strategy = self.strategy
        raws: list[Any] = []
        indices: list[int] = []  # per item: the window index, or a moving window's stamp
        admitted = True
        shards = self._shards
        for key, limit, window in items:
            entry = shards[hash(key) & (_SHARDS - 1)].get(key)
            if strategy == SLIDING:
                index, elapsed = now // window, now % window
                prev = curr = 0
                if entry is not None:
                    if entry[1] > index:  # decided late: as the Redis script does
                        index, elapsed = entry[1], 0
                    if entry[1] == index:
                        prev, curr = entry[2], entry[3]
                    elif entry[1] == index - 1:
                        prev = entry[3]
                indices.append(index)
                weighted = prev * (window - elapsed) // window + curr
                raws.append((prev, curr))
                admitted = admitted and weighted + cost <= limit
            elif strategy == MOVING:
                floor = now - window
                counted = [s for s in entry[1:] if s > floor] if entry is not None else []
                indices.append(max(now, entry[-1]) if entry is not None and len(entry) > 1 else now)
                raws.append(counted)
                admitted = admitted and len(counted) + cost <= limit
            else:
                index = now // window
                if entry is not None and entry[1] > index:
                    index = entry[1]
                indices.append(index)
                count = entry[2] if entry is not None and entry[1] == index else 0
                raws.append((count,))
                admitted = admitted and count + cost <= limit
        if admitted:
            for position, (key, limit, window) in enumerate(items):
                if strategy == SLIDING:
                    index = indices[position]
                    prev, curr = raws[position]
                    curr += cost
                    raws[position] = (prev, curr)
                    entry = self._entry(key, [0, index, 0, 0])
                    entry[0], entry[1], entry[2], entry[3] = (index + 2) * window, index, prev, curr
                elif strategy == MOVING:
                    counted, stamp = raws[position], indices[position]
                    counted.extend([stamp] * cost)
                    del counted[:-limit]
                    entry = self._entry(key, [0])
                    entry[1:] = counted
                    entry[0] = stamp + window
                else:
                    index = indices[position]
                    (count,) = raws[position]
                    raws[position] = (count + cost,)
                    entry = self._entry(key, [0, index, 0])
                    entry[0], entry[1], entry[2] = (index + 1) * window, index, count + cost
        results = []
        for position, (_, limit, window) in enumerate(items):
            raw = raws[position]
            if strategy == MOVING:
                raw = (len(raw), moving_stamp(raw, limit, cost, admitted))
            results.append(figures(strategy, raw, limit, window, cost, now, admitted))
        return admitted, results
