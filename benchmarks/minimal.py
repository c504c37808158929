"""The least a pure-Python ASGI layer doing the validation or access-log job can cost.

Each is the mechanics of the job and nothing more: no hostile-input handling (no size limit on
streamed bodies, no content-type rules, no redaction, no escaping, no memo), no configuration,
no error handling. Neither is safe to deploy; they are yardsticks. Measured beside the real
layers, they show how much of a layer's cost is the job itself in CPython (an ASGI hop, a
``send`` wrapper, a replaying ``receive``, a decode, a record) and how much is what the real
layer adds to it.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import time
from typing import Any

import orjson

# The layer's own replaying receive: a few lines any replay needs.
from asgi_guard._asgi import Receive, Scope, Send
from asgi_guard.validation.middleware import _Replay

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "minimal_request_id", default=None
)
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class MinimalValidation:
    """Route lookup, a Content-Type/Content-Length scan, one body chunk read, a msgspec decode,
    the result stored in the scope, the body replayed."""

    def __init__(self, app: Any, routes: dict[str, dict[str, Any]]) -> None:
        self.app = app
        self.routes = routes  # path -> method -> msgspec Decoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        decoder = methods.get(scope["method"]) if methods else None
        if decoder is None:
            await self.app(scope, receive, send)
            return
        content_type = content_length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        if content_type != b"application/json" or content_length is None:
            return
        message = await receive()
        try:
            value = decoder.decode(message.get("body", b""))
        except Exception:
            return
        scope.setdefault("state", {})["validated_body"] = value
        await self.app(scope, _Replay(message, receive), send)


class MinimalAccessLog:
    """The access log's record (the same fields, from the same places) and request id, written
    as one orjson line to the descriptor of the logger's first handler's stream."""

    def __init__(self, app: Any, logger: Any) -> None:
        self.app = app
        self.logger = logger
        handler = logger.handlers[0]
        self.lock = handler.lock
        self.stream = handler.stream
        self.fd = handler.stream.fileno()
        self.prefix = os.urandom(6).hex() + "-"
        self.counter = itertools.count(1)
        self.second = (-1, "")
        self.levels = logger._cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The level as the layer reads it: logging's own cache, the logger asked on a miss.
        enabled = self.levels.get(20)
        if enabled is None:
            enabled = self.logger.isEnabledFor(20)
        if not enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        user_agent = referer = None
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name == b"referer":
                referer = value.decode("latin-1")
        rid = state["request_id"] = self.prefix + str(next(self.counter))
        echo = (b"x-request-id", rid.encode())
        status = None
        sent = 0
        done = False

        def record(complete: bool) -> None:
            nonlocal done
            done = True
            now = time.time()
            second = int(now)
            if self.second[0] != second:
                self.second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            client = scope.get("client")
            user = scope.get("user")
            line = orjson.dumps(
                {
                    "timestamp": self.second[1] + _MILLIS[int((now - second) * 1000)],
                    "method": scope.get("method", "WEBSOCKET"),
                    "path": scope["path"],
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "status": status,
                    "duration_ms": int((time.perf_counter() - started) * 1_000_000) / 1000,
                    "bytes": sent,
                    "client": client[0] if client else None,
                    "scheme": scope.get("scheme"),
                    "http_version": scope.get("http_version"),
                    "user_agent": user_agent,
                    "referer": referer,
                    "request_id": rid,
                    "sub": getattr(user, "sub", None),
                    "code": state.get("code"),
                    "ratelimit": state.get("ratelimit"),
                    "disconnected": not complete,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            lock = self.lock
            lock.acquire()  # cheaper than ``with``
            try:
                self.stream.flush()
                os.write(self.fd, line)
            finally:
                lock.release()

        async def last(message: dict[str, Any]) -> None:
            await send(message)
            record(True)

        def send_wrapper(message: dict[str, Any]) -> Any:
            # A plain function returning the server's awaitable: only the last chunk needs code
            # after the send, so only it pays for a coroutine of its own.
            nonlocal status, sent
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            elif kind == "http.response.body":
                sent += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return last(message)
            return send(message)

        token = _request_id.set(rid)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _request_id.reset(token)
            if not done:
                record(False)
