"""``python -m benchmarks.nesting``: the cost of the nesting check, and of a 1 MiB deeply
nested body through the layer, on bodies built to be slow.

The check is linear: one regex pass drops strings, one ``translate`` maps brackets to +1/-1,
and the deepest point is the largest running sum. The former check peeled one level per regex
pass (``max_depth`` passes over the body); it is kept here, as the reference point.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Callable
from typing import Any

from asgi_guard import ValidationMiddleware
from asgi_guard._asgi import Message, Receive, Scope, Send
from asgi_guard.validation.body import too_deep

MIB = 1024 * 1024
LIMIT = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LEAF_PAIRS = re.compile(rb"\[\]|\{\}")
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def peeling(body: bytes, max_depth: int) -> bool:
    """The former check: one regex pass per level."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    shape = _STRING.sub(b"", body).translate(None, _BRACKETS)
    for _ in range(max_depth):
        if not shape:
            return False
        smaller = _LEAF_PAIRS.sub(b"", shape)
        if smaller == shape:
            return False
        shape = smaller
    return bool(shape)


def bodies() -> dict[str, bytes]:
    """1 MiB bodies: the shapes that cost the most, and an ordinary one."""
    pair = b"[" * LIMIT + b"]" * LIMIT  # just within the limit, repeated
    return {
        "nested just within the limit, repeated": b"[" + (pair + b",") * (MIB // 130) + b"0]",
        "one level too deep, then wide": b"[" * (LIMIT + 1)
        + b"0," * (MIB // 2 - LIMIT)
        + b"0"
        + b"]" * (LIMIT + 1),
        "empty arrays": b"[" + b"[]," * (MIB // 3) + b"[]]",
        "long strings of brackets": b'["' + b"[{" * (MIB // 2) + b'"]',
        "ordinary objects": b"["
        + b'{"sku": "ABC-1", "qty": 2, "tags": ["a", "b"]},' * (MIB // 48)
        + b"{}]",
    }


def best_of(run: Callable[[], Any], rounds: int = 5) -> float:
    """The best of ``rounds`` timings of ``run``, in milliseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def through_layer(body: bytes) -> Callable[[], None]:
    """One POST of ``body`` through the layer (JSON Schema route: the body is scanned)."""
    layer = ValidationMiddleware(
        _app, schemas={"POST /x": {"type": "array"}}, max_body_size=2 * MIB
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"content-type", b"application/json")],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        pass

    return lambda: asyncio.run(layer(dict(scope), receive, send))


def main() -> int:
    rows = ["| body (1 MiB) | linear check ms | former check ms | through the layer ms |"]
    rows.append("|---|---:|---:|---:|")
    for name, body in bodies().items():
        assert too_deep(body, LIMIT) == peeling(body, LIMIT), name
        linear = best_of(functools.partial(too_deep, body, LIMIT))
        former = best_of(functools.partial(peeling, body, LIMIT), rounds=2)
        layer = best_of(through_layer(body))
        rows.append(f"| {name} | {linear:.1f} | {former:.1f} | {layer:.1f} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
