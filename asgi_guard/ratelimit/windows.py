"""The three counting strategies as integer arithmetic on milliseconds, shared by every storage.

A storage (memory or a Redis script) reports each limit's raw state; the functions here turn it
into the figures clients see: ``remaining`` and the wait, in milliseconds, until a request of a
given cost is admitted. Integers throughout, so a whole-second instant never becomes
``9.000000059604645`` and a ``Retry-After`` is never one second short or one second long.

Windows are aligned to the Unix epoch (a window of W ms covers ``[k*W, (k+1)*W)``), as the
fixed and sliding windows of ``limits`` are.
"""

from __future__ import annotations

from typing import Final

FIXED: Final = "fixed-window"
MOVING: Final = "moving-window"
SLIDING: Final = "sliding-window"
STRATEGIES: Final = (SLIDING, MOVING, FIXED)


def sliding_count(prev: int, curr: int, now: int, window: int) -> int:
    """The sliding-window counter's weighted count at ``now``: the previous window's hits
    weighted by the share of it still inside the sliding window, plus the current ones."""
    elapsed = now % window
    return prev * (window - elapsed) // window + curr


def sliding_wait(prev: int, curr: int, target: int, now: int, window: int) -> int:
    """Milliseconds from ``now`` until the weighted count is at most ``target`` (no new hits).

    The count never grows without hits, so every later instant qualifies too: the answer is
    the exact earliest instant, found in closed form rather than by stepping.
    """
    if target < 0:
        return window  # a cost above the limit is never admitted; the window is the honest wait
    start = now - now % window
    spare = target - curr
    if spare >= 0:
        if prev == 0:
            return 0
        # floor(prev * (W - e) / W) <= spare  <=>  e >= W - floor(((spare + 1) * W - 1) / prev)
        earliest = window - ((spare + 1) * window - 1) // prev
        if earliest <= now - start:
            return 0
        if earliest < window:
            return start + earliest - now
    # In the next window the current hits become the previous ones, and nothing is current.
    if curr == 0:
        return start + window - now
    earliest = max(0, window - ((target + 1) * window - 1) // curr)
    return start + window + earliest - now


def moving_stamp(counted: list[int], limit: int, cost: int, admitted: bool) -> int:
    """The hit whose expiry the figures wait for: the oldest counted one after an admission,
    or, after a refusal, the one that must go before ``cost`` more fit under ``limit`` (the
    ``(limit - cost)``-th newest; a hit made at ``s`` stops counting at ``s + window``)."""
    if not counted:
        return 0
    if admitted:
        return min(counted)
    if cost > limit or len(counted) + cost <= limit:
        return 0
    return sorted(counted, reverse=True)[limit - cost]


def figures(
    strategy: str,
    raw: tuple[int, ...],
    limit: int,
    window: int,
    cost: int,
    now: int,
    admitted: bool,
) -> tuple[int, int]:
    """``(remaining, wait_ms)`` of one limit from its raw state after the decision.

    For a refused decision ``wait_ms`` is the time until a request of ``cost`` is admitted
    (``Retry-After``); for an admitted one, the time until at least one unit frees (``t=``).
    Raw states: fixed ``(count,)``; sliding ``(prev, curr)``; moving ``(count, stamp)`` where
    ``stamp`` is the hit that must expire (refused) or the oldest counted hit (admitted).
    """
    if strategy == SLIDING:
        prev, curr = raw
        used = sliding_count(prev, curr, now, window)
        target = limit - cost if not admitted else used - 1
        if used == 0 and admitted:
            return limit, 0
        return max(0, limit - used), sliding_wait(prev, curr, target, now, window)
    if strategy == MOVING:
        count, stamp = raw
        if not admitted and cost > limit:
            return max(0, limit - count), window
        if count == 0 or (not admitted and count + cost <= limit):
            return max(0, limit - count), 0
        return max(0, limit - count), max(0, stamp + window - now)
    (count,) = raw
    if not admitted and cost > limit:
        return max(0, limit - count), window
    if not admitted and count + cost <= limit:
        return limit - count, 0
    end = now - now % window + window
    return max(0, limit - count), end - now if count else 0
