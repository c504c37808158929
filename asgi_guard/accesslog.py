"""One redacted, structured access-log record per request, with request ids."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson

from ._asgi import ASGIApp, Message, Receive, Scope, Send, request_info
from .errors import ConfigurationError

__all__ = [
    "AccessLogMiddleware",
    "JSONLinesHandler",
    "RequestIdFilter",
    "current_request_id",
    "redact_query",
]

REDACTED: Final = "[REDACTED]"
#: Header values never logged as they are (RFC 9110 credentials, cookies, API keys).
SENSITIVE_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
#: Query parameters whose values are secrets (OAuth 2 and common conventions).
SENSITIVE_QUERY: Final = frozenset(
    {
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "code",
        "client_secret",
        "password",
        "api_key",
        "secret",
    }
)
#: A JWS/JWT compact serialization: base64url JSON header and payload (both start "ey").
_JWT: Final = re.compile(r"ey[A-Za-z0-9_-]{4,}\.ey[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_TEXT: Final = 512
#: C0, DEL, C1 and the Unicode line/paragraph separators become visible escapes.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}

_THREAD_NAMES: dict[int, str] = {}
_START: Final[float] = logging._startTime  # type: ignore[attr-defined]

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "asgi_guard_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or None."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``"-"``) to every record.

    Attach it to a handler so the app's own log lines carry the same id as the access log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get() or "-"
        return True


def _clean(text: str) -> str:
    """Escape control characters, so one request is always one line."""
    if text.isprintable():
        return text
    text = text.translate(_CONTROLS)
    if not text.isprintable():
        # Lone surrogates (a server decoding with surrogateescape) cannot be encoded as JSON.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _text(raw: bytes, limit: int = _MAX_TEXT) -> str:
    """Decode header bytes for the log: invalid UTF-8 escaped, truncated, JWTs redacted."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    if "ey" in text:
        text = _JWT.sub(REDACTED, text)
    return _clean(text)


def redact_query(query: str, sensitive: frozenset[str] = SENSITIVE_QUERY) -> str:
    """Replace the values of sensitive parameters (matched after percent-decoding, any case)."""
    if not query:
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        if sep and unquote_plus(name).strip().lower() in sensitive:
            parts[index] = f"{name}={REDACTED}"
    text = "&".join(parts)
    return _JWT.sub(REDACTED, text) if "ey" in text else text


def _redact_header(name: str, value: str) -> str:
    """Keep the structure of a credential header, never its secret."""
    if name in ("authorization", "proxy-authorization"):
        scheme, sep, _ = value.strip().partition(" ")
        return f"{scheme} {REDACTED}" if sep else REDACTED
    if name in ("cookie", "set-cookie"):
        cookies = [c.strip().partition("=")[0] for c in value.split(";") if c.strip()]
        return "; ".join(f"{c}={REDACTED}" for c in cookies if c)
    return REDACTED


class JSONLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each access record's JSON message as one line, without a Formatter pass.

    The fastest way to ship the access log to stdout or a file. Other records are formatted
    as usual.
    """

    terminator = "\n"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = (
                record.msg
                if isinstance(record.msg, str) and not record.args
                else self.format(record)
            )
            self.stream.write(message + self.terminator)
            self.flush()
        except Exception:  # the logging package's own contract: report, never raise
            self.handleError(record)


class _Ids:
    """Request ids: a random per-process prefix and a counter (unique, and cheap to make)."""

    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


class AccessLogMiddleware:
    """Log one structured record per http request and per websocket connection.

    The record's message is one JSON object (orjson); the same fields are attributes of the
    ``LogRecord`` for formatters and structlog. Fields: ``method``, ``path``, ``query``,
    ``status``, ``duration_ms``, ``bytes``, ``client``, ``scheme``, ``http_version``,
    ``user_agent``, ``referer``, ``request_id``, ``sub``, ``code`` (of an asgi_guard layer's
    rejection or shadow decision), ``ratelimit`` and ``disconnected``.

    Exactly one record is written for every request: on the last body chunk, on a rejection
    by another layer, on a client disconnect (flagged), or when the app raises (status 500,
    the exception propagates unchanged). Credentials never reach the log: sensitive headers and
    query parameters are redacted keeping their structure (``Bearer [REDACTED]``), anything
    shaped like a JWT is redacted anywhere, control characters are escaped, bodies are never
    logged. A failing handler never changes the response.

    Request ids: a short, safe incoming ``X-Request-ID`` is kept, otherwise one is made; it is
    echoed in the response, stored in ``scope["state"]``, and available to the app's own log
    records through :class:`RequestIdFilter`. With the logger disabled, the layer steps aside.

    Args:
        logger: a logger or logger name (default ``asgi_guard.access``).
        redact_headers: more header names whose values are redacted.
        redact_query: more query parameter names whose values are redacted.
        request_id_header: the request-id header name; None disables request ids.
        log_headers: request headers to include in the record (``headers`` field), redacted.
        level: the level of the records.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | str = "asgi_guard.access",
        redact_headers: Iterable[str] = (),
        redact_query: Iterable[str] = (),
        request_id_header: str | None = "x-request-id",
        log_headers: Iterable[str] = (),
        level: int = logging.INFO,
    ) -> None:
        self.app = app
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        if not isinstance(self.logger, logging.Logger):
            raise ConfigurationError("logger", "must be a logging.Logger or a logger name")
        self.level = level
        self.sensitive_headers = SENSITIVE_HEADERS | {h.lower() for h in redact_headers}
        self.sensitive_query = SENSITIVE_QUERY | {q.lower() for q in redact_query}
        if request_id_header is not None and not re.fullmatch(
            r"[A-Za-z0-9-]{1,64}", request_id_header
        ):
            raise ConfigurationError(
                "request_id_header", f"{request_id_header!r} is not a header name"
            )
        self._rid_name = request_id_header.lower().encode() if request_id_header else None
        self._log_headers = {h.lower().encode(): h.lower() for h in log_headers}
        self._ids = _Ids()
        # Everything a LogRecord needs that does not change per request, computed once.
        self._template = {
            "name": self.logger.name,
            "args": (),
            "levelname": logging.getLevelName(level),
            "levelno": level,
            "pathname": __file__,
            "filename": "accesslog.py",
            "module": "accesslog",
            "exc_info": None,
            "exc_text": None,
            "stack_info": None,
            "lineno": 0,
            "funcName": "access",
            "processName": "MainProcess",
            "process": os.getpid(),
            "taskName": None,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or not self.logger.isEnabledFor(self.level):
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope)
        token = _request_id.set(exchange.request_id)
        try:
            await self.app(scope, receive, exchange.wrap_send(send))
        except BaseException:
            exchange.failed()
            raise
        finally:
            exchange.finish()
            _request_id.reset(token)

    def emit(self, fields: dict[str, Any]) -> None:
        """Write one record; logging problems never reach the request."""
        try:
            now = time.time()
            ident = threading.get_ident()
            thread_name = _THREAD_NAMES.get(ident)
            if thread_name is None:
                thread_name = _THREAD_NAMES[ident] = threading.current_thread().name
            # Built directly rather than through Logger.makeRecord: the static attributes come
            # from a template made once, and the message is formatted once, here.
            record = logging.LogRecord.__new__(logging.LogRecord)
            record.__dict__ = {
                **self._template,
                **fields,
                "msg": orjson.dumps(fields).decode(),
                "created": now,
                "msecs": (now - int(now)) * 1000,
                "relativeCreated": (now - _START) * 1000,
                "thread": ident,
                "threadName": thread_name,
            }
            self.logger.handle(record)
        except Exception:  # a broken handler or formatter must not break the request
            sys.stderr.write("asgi_guard: access log record could not be written\n")


class _Exchange:
    """The state of one request or websocket connection, for its one record."""

    __slots__ = (
        "bytes",
        "complete",
        "done",
        "extra",
        "layer",
        "referer",
        "request_id",
        "scope",
        "started",
        "status",
        "user_agent",
    )

    def __init__(self, layer: AccessLogMiddleware, scope: Scope) -> None:
        self.layer = layer
        self.scope = scope
        self.started = time.perf_counter()
        self.status: int | None = None
        self.bytes = 0
        self.complete = False
        self.done = False
        self.request_id: str | None = None
        self.user_agent: bytes | None = None
        self.referer: bytes | None = None
        self.extra: list[tuple[bytes, bytes]] | None = None
        # One pass over the headers for everything the record needs.
        rid_name = layer._rid_name
        wanted = layer._log_headers
        incoming = None
        for key, value in scope["headers"]:
            if key == b"user-agent":
                self.user_agent = value
            elif key == b"referer":
                self.referer = value
            elif key == rid_name:
                incoming = value
            if wanted and key in wanted:
                if self.extra is None:
                    self.extra = []
                self.extra.append((key, value))
        if rid_name is not None:
            rid = None
            if incoming is not None and len(incoming) <= 64:
                text = incoming.decode("latin-1")
                if _SAFE_ID.fullmatch(text):
                    rid = text
            self.request_id = rid or layer._ids.new()
            request_info(scope).request_id = self.request_id

    def wrap_send(self, send: Send) -> Send:
        header = None
        if self.request_id is not None and self.layer._rid_name is not None:
            header = (self.layer._rid_name, self.request_id.encode())

        async def send_watch(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                self.bytes += len(message.get("body", b""))
                await send(message)
                if not message.get("more_body", False):
                    self.complete = True
                    self.finish()  # streaming responses are logged when the last chunk goes out
                return
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                self.status = message["status"]
                if header is not None:
                    headers = message.get("headers", ())
                    for key, _ in headers:
                        if key.lower() == header[0]:
                            break
                    else:
                        message["headers"] = [*headers, header]
            elif kind == "websocket.accept":
                self.status = 101
            elif kind == "websocket.close" and self.status is None:
                self.status = 403  # closed before accept: the handshake was refused
            elif kind == "websocket.send":
                self.bytes += len(message.get("bytes") or b"") + len(
                    (message.get("text") or "").encode()
                )
            elif kind == "websocket.http.response.body":
                self.bytes += len(message.get("body", b""))
            await send(message)

        return send_watch

    def failed(self) -> None:
        if self.status is None:
            self.status = 500

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        layer = self.layer
        scope = self.scope
        referer = None
        if self.referer is not None:
            referer = _text(self.referer)
            if "?" in referer:
                base, _, query = referer.partition("?")
                referer = base + "?" + redact_query(query, layer.sensitive_query)
        raw_query: bytes = scope.get("query_string", b"")
        path: str = scope.get("path", "")
        if "ey" in path:
            path = _JWT.sub(REDACTED, path)
        client = scope.get("client")
        user = scope.get("user")
        state = scope.get("state")
        info = state.get("asgi_guard") if state is not None else None
        fields: dict[str, Any] = {
            "method": scope.get("method", "WEBSOCKET"),
            "path": path if path.isprintable() else _clean(path),
            "query": redact_query(_text(raw_query, 2048), layer.sensitive_query)
            if raw_query
            else "",
            "status": self.status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "bytes": self.bytes,
            "client": client[0] if client else None,
            "scheme": scope.get("scheme"),
            "http_version": scope.get("http_version"),
            "user_agent": None if self.user_agent is None else _text(self.user_agent),
            "referer": referer,
            "request_id": self.request_id,
            "sub": user.sub
            if user is not None and getattr(user, "is_authenticated", False)
            else None,
            "code": None,
            "ratelimit": None,
            # The app ended an http exchange before the last chunk: the client went away.
            "disconnected": not self.complete and scope["type"] == "http" and self.status != 500,
        }
        if info is not None:
            fields["code"] = info.code
            if info.ratelimit:
                fields["ratelimit"] = list(info.ratelimit)
        if self.extra is not None:
            logged: dict[str, str] = {}
            for key, value in self.extra:
                name = layer._log_headers[key]
                text = _text(value, 2048)
                if name in layer.sensitive_headers:
                    text = _redact_header(name, text)
                logged[name] = text if name not in logged else logged[name] + ", " + text
            fields["headers"] = logged
        layer.emit(fields)
