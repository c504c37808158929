"""One rate-limit decision in memory beside the same decision on a local Redis (one round trip
over loopback to a redis-server this benchmark starts and stops)."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time

from .harness import Case, Group

BIG_LIMIT = "100000000/minute"


def start_redis() -> str:
    """A redis-server on a free loopback port, stopped when the benchmark exits."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the Redis rows need redis-server (Debian: apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            *(binary, "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="bench-")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.kill)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def ratelimit_decisions() -> Group:
    from asgi_guard import RateLimitMiddleware

    from .groups import raw_app, scope_factory

    url = start_redis()
    get = scope_factory()
    return Group(
        "decision:ratelimit",
        [
            Case("raw ASGI app", raw_app, get),
            Case("memory, sliding window", RateLimitMiddleware(raw_app, limit=BIG_LIMIT), get),
            Case(
                "Redis, sliding window",
                RateLimitMiddleware(raw_app, limit=BIG_LIMIT, storage=url),
                get,
            ),
            Case(
                "Redis, fixed window",
                RateLimitMiddleware(raw_app, limit=BIG_LIMIT, storage=url, strategy="fixed-window"),
                get,
            ),
            Case(
                "Redis, two limits",
                RateLimitMiddleware(raw_app, limit=f"{BIG_LIMIT}; 200000000/hour", storage=url),
                get,
            ),
        ],
        "A decision with IETF headers; Redis on loopback (one EVALSHA a decision).",
    )
