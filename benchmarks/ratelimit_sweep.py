"""Memory storage at a million clients: the worst event-loop stall of the incremental sweep,
and the memory each live client costs.

``python -m benchmarks.ratelimit_sweep [--clients N]``: fills the in-process counters with N
clients (one limit each, every strategy), lets their windows pass on an injected clock, then
times every decision while the sweep drops them 1,000 keys a step.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from asgi_guard.ratelimit.memory import MemoryCounters

WINDOW = 60_000  # ms


def fill(counters: MemoryCounters, clients: int, now: int) -> float:
    """Admit ``clients`` new clients; the worst decision in ms (a table growing included)."""
    worst = 0.0
    for i in range(clients):
        key = f"d/ip=10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/100/60"
        t = time.thread_time()
        counters.decide([(key, 100, WINDOW)], 1, now)
        worst = max(worst, time.thread_time() - t)
    return worst * 1000


def stall(strategy: str, clients: int) -> tuple[float, float, float, int]:
    """(worst decision ms while filling, while sweeping, whole sweep s, decisions it took),
    in CPU time of this thread: on a shared machine wall time mostly measures the scheduler."""
    counters = MemoryCounters(strategy)
    now = 1_800_000_000_000
    gc.disable()  # the collector's own pauses are not the sweep's
    try:
        filling = fill(counters, clients, now)
    finally:
        gc.enable()
    now += 3 * WINDOW
    worst, started, steps = 0.0, time.thread_time(), 0
    gc.disable()
    try:
        while len(counters) > 1:
            t = time.thread_time()
            counters.decide([("d/ip=192.0.2.1/100/60", 100, WINDOW)], 1, now)
            worst = max(worst, time.thread_time() - t)
            steps += 1
    finally:
        gc.enable()
    return filling, worst * 1000, time.thread_time() - started, steps


def per_client(strategy: str, clients: int = 100_000) -> float:
    """Bytes of the counters (table, entries, keys, timing wheel) per live client."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    counters = MemoryCounters(strategy)
    fill(counters, clients, 1_800_000_000_000)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del counters
    return (after - before) / clients


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ratelimit_sweep")
    parser.add_argument("--clients", type=int, default=1_000_000)
    args = parser.parse_args()
    print(
        f"| strategy ({args.clients:,} clients) | worst decision, new clients "
        "| worst decision, sweeping | whole sweep | bytes per live client |"
    )
    print("|---|---:|---:|---:|---:|")
    for strategy in ("sliding-window", "moving-window", "fixed-window"):
        filling, worst, total, steps = stall(strategy, args.clients)
        size = per_client(strategy)
        print(
            f"| {strategy} | {filling:.2f} ms | {worst:.2f} ms "
            f"| {total:.2f} s over {steps:,} decisions | {size:,.0f} |"
        )


if __name__ == "__main__":
    main()
