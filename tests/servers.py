"""Real servers for deployment tests: uvicorn on a unix domain socket or a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from asgi_guard._asgi import ASGIApp


@contextlib.asynccontextmanager
async def uvicorn_server(
    app: ASGIApp, *, uds: bool, http: str = "h11", socket: str | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop; yields the socket path or ``host:port``.

    With ``uds``, uvicorn listens with ``--uds`` on ``socket`` or on a socket in a fresh
    temporary directory; otherwise on a free port of 127.0.0.1. The server's own proxy handling is off
    (``--no-proxy-headers``), as a deployment behind the guard runs it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = socket or str(Path(tmp) / "app.sock")
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            uds=path if uds else None,
            http=http,
            ws="websockets-sansio",
            lifespan="off",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        # Signals belong to the test runner, not to a server inside it.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        task = asyncio.ensure_future(server.serve())
        try:
            for _ in range(500):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.01)
            if not server.started:
                raise RuntimeError("uvicorn did not start")
            if uds:
                yield path
            else:
                port = server.servers[0].sockets[0].getsockname()[1]
                yield f"127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
