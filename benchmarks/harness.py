"""In-process ASGI benchmark harness.

Each case is an ASGI app driven directly (a fresh synthetic scope per request, a one-chunk
``receive``, a discarding ``send``) in one event loop, yielding to the loop after each request. Cases of a group run interleaved, round
after round, so machine drift hits every case alike; each result is the median ns/request over
the rounds, with the spread (interquartile range) and the ratio to the group's baseline.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass
class Case:
    """One variant of a group: an app and the requests it is driven with."""

    name: str
    app: App | None = None
    scope: Callable[[], Scope] | None = None
    body: bytes = b""
    #: a plain coroutine function run instead of an ASGI app (for library-level comparisons)
    call: Callable[[], Awaitable[Any]] | None = None
    note: str = ""


@dataclass
class Group:
    """Cases measured side by side; the first is the baseline the others are compared with."""

    name: str
    cases: list[Case]
    description: str = ""


@dataclass
class Result:
    group: str
    case: str
    median_ns: float
    iqr_ns: float
    ratio: float
    overhead_ns: float
    note: str = ""
    samples: list[float] = field(default_factory=list)


async def _discard(message: Any) -> None:
    return None


def _runner(case: Case) -> Callable[[int], Awaitable[None]]:
    if case.call is not None:
        call = case.call

        async def run_calls(n: int) -> None:
            for _ in range(n):
                await call()
                await asyncio.sleep(0)

        return run_calls

    assert case.app is not None
    assert case.scope is not None
    app, make_scope = case.app, case.scope
    message = {"type": "http.request", "body": case.body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def run_app(n: int) -> None:
        for _ in range(n):
            await app(make_scope(), receive, _discard)
            # Yield to the loop as a server does between requests, so background work that a
            # layer schedules (sweeps, refreshes) is paid for inside the measurement.
            await asyncio.sleep(0)

    return run_app


async def _measure_group(group: Group, rounds: int, iterations: int) -> list[Result]:
    runners = [_runner(case) for case in group.cases]
    for run in runners:  # warm caches, JITs of libraries, connection pools
        await run(max(iterations // 5, 10))
    samples: list[list[float]] = [[] for _ in runners]
    for _ in range(rounds):
        for index, run in enumerate(runners):
            gc.collect()
            gc.disable()
            start = time.perf_counter_ns()
            await run(iterations)
            elapsed = time.perf_counter_ns() - start
            gc.enable()
            samples[index].append(elapsed / iterations)
    base = statistics.median(samples[0])
    results = []
    for case, values in zip(group.cases, samples, strict=True):
        median = statistics.median(values)
        quartiles = (
            statistics.quantiles(values, n=4) if len(values) > 1 else [median, median, median]
        )
        results.append(
            Result(
                group=group.name,
                case=case.name,
                median_ns=median,
                iqr_ns=quartiles[2] - quartiles[0],
                ratio=median / base,
                overhead_ns=median - base,
                note=case.note,
                samples=values,
            )
        )
    return results


def run_groups(groups: list[Group], rounds: int, iterations: int) -> list[Result]:
    """Measure every group in one event loop and return the results in order."""

    async def main() -> list[Result]:
        out: list[Result] = []
        for group in groups:
            out.extend(await _measure_group(group, rounds, iterations))
        return out

    return asyncio.run(main())
