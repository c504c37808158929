"""Time to resume limiting after a Redis fault, on the real clock.

``python -m benchmarks.ratelimit_faults``: a request every 10 ms through the layer while the
Redis server is restarted (a crash) or paused with SIGSTOP for 3 s (a hang); prints, per mode,
the time from Redis answering again to the first request decided by Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from typing import Any, Literal

from asgi_guard import RateLimitMiddleware

from .ratelimit_redis import start_redis


def _pid_of(port: int) -> int:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "info", "server"], capture_output=True, check=True
    ).stdout.decode()
    return int(next(line for line in out.splitlines() if line.startswith("process_id:"))[11:])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as sock:
            sock.settimeout(0.05)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _restart(port: int) -> None:
    """Start redis-server again on ``port`` and wait until it answers."""
    subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not _answers(port):
        time.sleep(0.001)


async def _decided(mw: Any) -> bool:
    """One request: whether Redis decided it (the response carries RateLimit fields)."""
    headers: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers.extend(message["headers"])

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("1", 1)}
    await mw(scope, receive, send)
    return any(name == b"ratelimit" for name, _ in headers)


async def resume_after(fault: str, mode: Literal["open", "closed"]) -> float:
    url = start_redis()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    mw = RateLimitMiddleware(
        _app, limit="1000000/minute", storage=url, on_storage_error=mode, storage_timeout=0.25
    )
    assert await _decided(mw)
    pid = _pid_of(port)
    if fault == "hang":
        os.kill(pid, signal.SIGSTOP)
        until = time.monotonic() + 3
        while time.monotonic() < until:
            await _decided(mw)
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGCONT)
    else:
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        for _ in range(20):
            await _decided(mw)
            await asyncio.sleep(0.01)
        _restart(port)
    back = time.monotonic()
    decided = False
    while not decided:  # a request every 10 ms, as traffic would come
        decided = await _decided(mw)
        await asyncio.sleep(0.01)
    resumed = time.monotonic() - back
    await mw.aclose()
    os.kill(_pid_of(port), signal.SIGKILL)
    return resumed


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def main() -> None:
    print("| fault | on_storage_error | limiting resumed after Redis answered |")
    print("|---|---|---:|")
    modes: tuple[Literal["open", "closed"], ...] = ("open", "closed")
    for fault in ("restart", "hang"):
        for mode in modes:
            seconds = asyncio.run(resume_after(fault, mode))
            print(f"| {fault} | {mode} | {seconds:.2f} s |")


if __name__ == "__main__":
    main()
