"""Bursts of 1,000 concurrent requests through ``asgi-guard serve`` (uvicorn, httptools,
uvloop) on 1 and 4 workers and on two servers sharing one Redis: a limit of 50 admits 50."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port
from ..redis_servers import RedisServer

pytestmark = pytest.mark.anyio

STRATEGIES = ["sliding-window", "moving-window", "fixed-window"]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def serve(
    tmp_path: Path, redis: RedisServer, strategy: str, workers: int
) -> tuple[int, subprocess.Popen[bytes]]:
    """``asgi-guard serve`` on a free port with a 50/day limit on Redis (no window turns during a burst), once it answers."""
    config = tmp_path / f"guard-{workers}-{time.monotonic_ns()}.toml"
    config.write_text(
        f'[rate_limit]\nlimit = "50/day"\nstrategy = "{strategy}"\nstorage = "{redis.url}"\n'
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asgi_guard",
            "serve",
            "tests.scale.app:app",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--ignore-check",  # plain http on loopback, on purpose
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop(proc)
                pytest.fail("asgi-guard serve did not start")
            time.sleep(0.05)
    time.sleep(0.5 * workers)  # every worker listening, not only the first
    return port, proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def burst(ports: list[int], count: int) -> list[int]:
    """``count`` concurrent GETs spread over the servers on ``ports``."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    timeout = httpx.Timeout(60.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def one(i: int) -> int:
            response = await client.get(f"http://127.0.0.1:{ports[i % len(ports)]}/items")
            return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("topology", ["1 worker", "4 workers", "2 servers"])
async def test_burst_of_1000_admits_exactly_50(
    tmp_path: Path, redis: RedisServer, strategy: str, topology: str
) -> None:
    """1,000 concurrent requests, a limit of 50 on Redis as the docs configure it: 50 admitted,
    950 refused, no 500 and no 503, however the processes are arranged."""
    servers = (
        [serve(tmp_path, redis, strategy, 4)]
        if topology == "4 workers"
        else [
            serve(tmp_path, redis, strategy, 1) for _ in range(1 if topology == "1 worker" else 2)
        ]
    )
    try:
        statuses = await burst([port for port, _ in servers], 1000)
    finally:
        for _, proc in servers:
            stop(proc)
    print(f"{topology} {strategy}: admitted {statuses.count(200)} of 1000")
    assert (statuses.count(200), statuses.count(429)) == (50, 950)
