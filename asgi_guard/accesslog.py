"""One redacted, structured access-log record per request, with request ids."""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import io
import itertools
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Iterable
from typing import Any, Final
from urllib.parse import unquote_plus

import orjson

from ._asgi import (
    ASGIApp,
    BoundedMemo,
    Message,
    Receive,
    Scope,
    Send,
    append_headers,
    request_info,
)
from .errors import ConfigurationError
from .routes import RouteTable
from .target import TargetError

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
_SEPARATORS: Final = re.compile(r"([&;#])")
_MAX_TEXT: Final = 512
#: C0, DEL, C1 and the Unicode line/paragraph separators become visible escapes.
_CONTROLS: Final = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}

#: The fraction part of timestamps, made once (formatting it per record costs more).
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
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
    """Replace the values of sensitive parameters (matched after percent-decoding, any case).

    Parameters are separated by ``&``, and also by ``;`` (which some parsers split on) and
    ``#`` (a fragment's parameters: an OAuth implicit-flow callback carries its token there).
    """
    if not query:
        return query
    if ";" in query or "#" in query:
        parts = _SEPARATORS.split(query)  # parameters at even indices, separators between
        step, glue = 2, ""
    else:
        parts = query.split("&")
        step, glue = 1, "&"
    for index in range(0, len(parts), step):
        name, sep, _ = parts[index].partition("=")
        if sep and unquote_plus(name).strip().lower() in sensitive:
            parts[index] = f"{name}={REDACTED}"
    text = glue.join(parts)
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

    The fastest way to ship the access log to stdout or a file: when only plain
    JSONLinesHandlers (and no filters) would see an access record, the line is written to
    them without building a ``LogRecord``: the UTF-8 bytes orjson made go to the file
    descriptor of a UTF-8 text stream in one ``write``. Other records are formatted as usual.
    """

    terminator = "\n"
    #: The descriptor under ``stream`` when lines may be written to it as UTF-8 bytes.
    _fd: int | None = None

    @property
    def stream(self) -> Any:
        return self._stream

    @stream.setter
    def stream(self, stream: Any) -> None:
        # StreamHandler.__init__ and setStream assign here: the fast path is decided once per
        # stream, never per line. Only a plain UTF-8 text file takes the bytes the text would
        # have become (a subclass may do more in write; "\n" is the JSON Lines separator
        # whatever newline the file was opened with).
        self._stream = stream
        self._fd = None
        if type(stream) is io.TextIOWrapper and os.linesep == "\n":
            with contextlib.suppress(LookupError, OSError, ValueError):
                if codecs.lookup(stream.encoding).name == "utf-8":
                    self._fd = stream.fileno()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = (
                record.msg if type(record.msg) is str and not record.args else self.format(record)
            )
            stream = self.stream
            stream.write(message + self.terminator)
            stream.flush()
        except Exception:  # the logging package's own contract: report, never raise
            self.handleError(record)

    def write_bytes(self, line: bytes) -> None:
        """Write one UTF-8 line (ending in a newline) and flush; the caller holds the lock."""
        stream = self.stream
        fd = self._fd
        if fd is None:
            stream.write(line.decode())
            stream.flush()
            return
        # Whatever was written through the stream goes out first, in order; a closed stream
        # raises here, before its descriptor (maybe reused by now) is written to.
        stream.flush()
        written = os.write(fd, line)
        while written < len(line):  # a pipe may take part of it (os.write retries EINTR)
            if written <= 0:  # nothing taken: report it rather than spin
                raise OSError("the stream took no bytes")
            line = line[written:]
            written = os.write(fd, line)


def _process_name() -> str:
    """The process name as ``logging.LogRecord`` finds it."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        with contextlib.suppress(Exception):  # as logging: a broken module is no reason to fail
            return str(multiprocessing.current_process().name)
    return "MainProcess"


def _new_id_prefix() -> str:
    """The random per-process part of generated request ids."""
    return os.urandom(6).hex() + "-"


#: Every live layer, so that a forked worker makes its own request-id prefix (a layer built
#: before the fork, as with ``gunicorn --preload``, would otherwise give every worker the same
#: prefix and counter, and so the same ids).
_LAYERS: weakref.WeakSet[AccessLogMiddleware] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for layer in list(_LAYERS):
        layer._rid_prefix = _new_id_prefix()
        layer._rid_counter = itertools.count(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _could_not_write() -> None:
    sys.stderr.write("asgi_guard: access log record could not be written\n")


class AccessLogMiddleware:
    """Log one structured record per http request and per websocket connection.

    The record's message is one JSON object (orjson); the same fields are attributes of the
    ``LogRecord`` for formatters and structlog. Fields: ``timestamp`` (when the exchange
    ended, RFC 3339 UTC, milliseconds), ``method``, ``path``, ``query``,
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
        exclude: route patterns (health checks, metrics scrapes) whose answers are logged only
            when they are errors (status 400 or more); they still get request ids.
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
        exclude: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        if not isinstance(self.logger, logging.Logger):
            raise ConfigurationError("logger", "must be a logging.Logger or a logger name")
        self.level = level
        self._enabled = self.logger.isEnabledFor
        # Logger.isEnabledFor answers from a per-logger dict that logging clears in place
        # whenever a level changes anywhere: reading it directly is a third of the call's
        # cost, on every request. An empty entry (just cleared) asks the logger, which refills
        # it; a Logger subclass with its own isEnabledFor is always asked.
        cache = getattr(self.logger, "_cache", None)
        self._levels: dict[int, bool] = (
            cache
            if type(cache) is dict and type(self.logger).isEnabledFor is logging.Logger.isEnabledFor
            else {}
        )
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
        excluded = RouteTable.of_patterns(exclude, option="exclude")
        self._exclude = excluded if excluded.patterns else None
        # Request ids: a random per-process prefix and a counter (unique, and cheap to make).
        self._rid_prefix = _new_id_prefix()
        self._rid_counter = itertools.count(1)
        _LAYERS.add(self)
        # (second, its RFC 3339 text): the date and time are formatted once a second.
        self._second: tuple[int, str] = (-1, "")
        self._agents = BoundedMemo(max_entries=1024, max_key=_MAX_TEXT)
        self._referers = BoundedMemo(max_entries=1024, max_key=_MAX_TEXT)
        # Everything a LogRecord needs that does not change per request, computed once.
        self._template: dict[str, Any] = {
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
            "taskName": None,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        enabled = self._levels.get(self.level)
        if enabled is None:
            enabled = self._enabled(self.level)
        if not enabled or self.logger.disabled:
            await self.app(scope, receive, send)
            return
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(self, scope, send)
        # Matched now: a router inside may rewrite the scope's root_path before the record.
        if self._exclude is not None:
            try:
                quiet = self._exclude.match_scope(scope) is not None
            except TargetError:  # not read as the app routes it: logged, never quiet
                quiet = False
            exchange.quiet = quiet
        token = _request_id.set(exchange.request_id)
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException:
            if exchange.status is None:
                exchange.status = 500
            exchange.quiet = False  # a crash mid-response is news, even on an excluded route
            raise
        finally:
            exchange.finish()
            _request_id.reset(token)

    def _referer_text(self, raw: bytes) -> str:
        """A referer for the log: as a header value, with its userinfo, query and fragment
        parameters redacted.

        User agents send neither userinfo nor a fragment in Referer (RFC 9110 section
        10.1.3); a client that does may be sending a password or an implicit-flow token.
        """
        text = _text(raw)
        authority = text.find("://")
        if authority != -1:
            authority += 3
            end = len(text)
            for stop in "/?#":
                found = text.find(stop, authority, end)
                if found != -1:
                    end = found
            at = text.rfind("@", authority, end)
            if at != -1:
                text = text[:authority] + REDACTED + text[at:]
        cut = min((i for i in (text.find("?"), text.find("#")) if i != -1), default=-1)
        if cut != -1:
            text = text[: cut + 1] + redact_query(text[cut + 1 :], self.sensitive_query)
        return text

    def timestamp(self, now: float) -> str:
        """``now`` (seconds since the epoch) as RFC 3339 UTC with milliseconds."""
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = self._new_second(second)
        return cached[1] + _MILLIS[int((now - second) * 1000)]

    def _new_second(self, second: int) -> tuple[int, str]:
        self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return self._second

    def emit(self, fields: dict[str, Any], created: float | None = None) -> None:
        """Write one record made at ``created`` (default: now); logging problems never reach
        the request.

        ``fields`` is taken over: when a record is built, it becomes the record's attribute
        dict.
        """
        try:
            line = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
            handlers = self._plain_handlers()
            if handlers is None:
                self.logger.handle(self._record(fields, line, created))
                return
            for handler in handlers:
                # acquire/release rather than ``with``: half the cost, on every record.
                lock = handler.lock
                lock.acquire()  # type: ignore[union-attr]  # Handler.__init__ makes it
                try:
                    handler.write_bytes(line)
                except Exception:
                    handler.handleError(self._record(fields, line, created))
                finally:
                    lock.release()  # type: ignore[union-attr]
        except Exception:  # a broken handler or formatter must not break the request
            _could_not_write()

    def _plain_handlers(self) -> list[JSONLinesHandler] | None:
        """The handlers ``Logger.handle`` would pass the record to, when all of them are plain
        :class:`JSONLinesHandler` and no filter is on the way; otherwise None.

        Those handlers write the message and read nothing else of the record, so the line is
        written without building one (about a third of the layer's cost). Walked at every
        record, as ``Logger.callHandlers`` does, because logging announces no config changes.
        """
        logger: logging.Logger | None = self.logger
        assert logger is not None
        if logger.disabled or logger.filters:
            return None
        plain: list[JSONLinesHandler] = []
        found = False
        while logger is not None:
            for handler in logger.handlers:
                if type(handler) is not JSONLinesHandler or handler.filters:
                    return None
                found = True
                if self.level >= handler.level:
                    plain.append(handler)
            logger = logger.parent if logger.propagate else None
        # No handler at all: logging.lastResort decides, as for any record.
        return plain if found else None

    def _record(
        self, fields: dict[str, Any], line: bytes, created: float | None
    ) -> logging.LogRecord:
        """A LogRecord whose attributes are ``fields`` (taken over, no copy) plus the usual."""
        now = time.time() if created is None else created
        # Built directly rather than through Logger.makeRecord, completed from a template.
        fields.update(self._template)
        fields["msg"] = line[:-1].decode()  # the message without its newline
        fields["created"] = now
        fields["msecs"] = (now - int(now)) * 1000
        fields["relativeCreated"] = (now - _START) * 1000
        # Asked per record, as logging does: a worker forked after the layer was built, or a
        # thread whose id was used before, must not inherit another's.
        thread = threading.current_thread()
        fields["thread"] = thread.ident
        fields["threadName"] = thread.name
        fields["process"] = os.getpid()
        fields["processName"] = _process_name()
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = fields
        return record


class _Exchange:
    """The state of one request or websocket connection, for its one record."""

    __slots__ = (
        "bytes",
        "complete",
        "done",
        "downstream",
        "echo",
        "extra",
        "info",
        "layer",
        "quiet",
        "referer",
        "request_id",
        "scope",
        "started",
        "status",
        "user_agent",
    )

    def __init__(self, layer: AccessLogMiddleware, scope: Scope, send: Send) -> None:
        self.layer = layer
        self.scope = scope
        self.downstream = send
        self.started = time.perf_counter()
        self.status: int | None = None
        self.bytes = 0
        self.complete = False
        self.done = False
        self.quiet = False
        self.echo: tuple[bytes, bytes] | None = None
        self.extra: list[tuple[bytes, bytes]] | None = None
        # Made now, so the layers inside write their decisions into this very object.
        self.info = info = request_info(scope)
        # One pass over the headers for everything the record needs.
        rid_name = layer._rid_name
        wanted = layer._log_headers
        user_agent = referer = incoming = None
        headers = scope["headers"]
        for key, value in headers:
            if key == b"user-agent":
                user_agent = value
            elif key == b"referer":
                referer = value
            elif key == rid_name:
                incoming = value
        if wanted:
            self.extra = [(key, value) for key, value in headers if key in wanted] or None
        self.user_agent: bytes | None = user_agent
        self.referer: bytes | None = referer
        rid = None
        if rid_name is not None:
            if (
                incoming is not None
                and len(incoming) <= 64
                and _SAFE_ID.fullmatch(rid := incoming.decode("latin-1"))
            ):
                self.echo = (rid_name, incoming)
            else:
                rid = layer._rid_prefix + str(next(layer._rid_counter))
                self.echo = (rid_name, rid.encode())
            info.request_id = rid
        self.request_id: str | None = rid

    def send(self, message: Message) -> Awaitable[None]:
        """The app's ``send``: counts, notes the status, echoes the request id.

        A plain function returning the awaitable the app awaits: only the last chunk needs
        code after the server's send, so the other messages cost no coroutine of their own.
        """
        kind = message["type"]
        if kind == "http.response.body":
            self.bytes += len(message.get("body", b""))
            if message.get("more_body", False):
                return self.downstream(message)
            return self._last(message)
        if kind == "http.response.start" or kind == "websocket.http.response.start":
            self.status = message["status"]
            echo = self.echo
            if echo is not None:
                append_headers(message, (echo,), unless=echo[0])
        elif kind == "websocket.accept":
            self.status = 101
        elif kind == "websocket.close" and self.status is None:
            self.status = 403  # closed before accept: the handshake was refused
        elif kind == "websocket.send":
            # (surrogatepass: counting must not raise where the server may cope.)
            self.bytes += len(message.get("bytes") or b"") + len(
                (message.get("text") or "").encode("utf-8", "surrogatepass")
            )
        elif kind == "websocket.http.response.body":
            self.bytes += len(message.get("body", b""))
        elif kind == "http.response.pathsend" or kind == "http.response.zerocopysend":
            return self._file_body(message)
        return self.downstream(message)

    async def _last(self, message: Message) -> None:
        """The last body chunk: streaming responses are logged when it has gone out."""
        await self.downstream(message)
        self.complete = True
        self.finish()

    async def _file_body(self, message: Message) -> None:
        """The ASGI path-send and zero-copy-send extensions: a body sent from a file (Starlette's
        FileResponse uses path send when the server offers it)."""
        if message["type"] == "http.response.pathsend":
            # The whole file is the body. A bad path is the server's to report; the record
            # keeps what is known.
            with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
                self.bytes += os.stat(message["path"]).st_size
            last = True
        else:
            count = message.get("count")
            if type(count) is int:
                self.bytes += count
            last = not message.get("more_body", False)
        await self.downstream(message)
        if last:
            self.complete = True
            self.finish()

    def finish(self) -> None:
        """Write the record, once: an app may send a "last" chunk twice."""
        if self.done:
            return
        self.done = True
        if self.quiet and self.status is not None and self.status < 400:
            return  # an excluded route's success: no record
        # The scope and the objects in it come from the server, the app and other middleware:
        # nothing they hold may turn logging into an error in the app's send.
        try:
            layer = self.layer
            scope = self.scope
            # Clients send the same user agents and referers again and again: their log text is
            # memoized by raw value.
            user_agent = referer = None
            raw = self.user_agent
            if raw is not None:
                user_agent = layer._agents.get(raw)
                if user_agent is None:
                    user_agent = layer._agents.remember(raw, len(raw), _text(raw))
            raw = self.referer
            if raw is not None:
                referer = layer._referers.get(raw)
                if referer is None:
                    referer = layer._referers.remember(raw, len(raw), layer._referer_text(raw))
            raw_query: bytes = scope.get("query_string", b"")
            path: str = scope["path"]
            if "ey" in path:
                path = _JWT.sub(REDACTED, path)
            client = scope.get("client")
            user = scope.get("user")
            sub = None
            # Only an AuthenticatedUser's subject (a str): a framework's own user, such as Starlette's
            # SimpleUser, has no ``sub``.
            if user is not None and getattr(user, "is_authenticated", False) is True:
                sub = getattr(user, "sub", None)
                if type(sub) is not str:
                    sub = None
            info = self.info
            ratelimit = info.ratelimit
            now = time.time()
            fields: dict[str, Any] = {
                "timestamp": layer.timestamp(now),
                "method": scope.get("method", "WEBSOCKET"),
                "path": path if path.isprintable() else _clean(path),
                "query": redact_query(_text(raw_query, 2048), layer.sensitive_query)
                if raw_query
                else "",
                "status": self.status,
                # Microsecond resolution, without round()'s cost.
                "duration_ms": int((time.perf_counter() - self.started) * 1_000_000) / 1000,
                "bytes": self.bytes,
                "client": client[0] if client else None,
                "scheme": scope.get("scheme"),
                "http_version": scope.get("http_version"),
                "user_agent": user_agent,
                "referer": referer,
                "request_id": self.request_id,
                "sub": sub,
                "code": info.code,
                "ratelimit": list(ratelimit) if ratelimit else None,
                # The app ended an http exchange before the last chunk: the client went away.
                "disconnected": not self.complete
                and scope["type"] == "http"
                and self.status != 500,
            }
            if self.extra is not None:
                logged: dict[str, str] = {}
                for key, value in self.extra:
                    name = layer._log_headers[key]
                    text = _text(value, 2048)
                    if name in layer.sensitive_headers:
                        text = _redact_header(name, text)
                    logged[name] = text if name not in logged else logged[name] + ", " + text
                fields["headers"] = logged
            layer.emit(fields, now)
        except Exception:
            _could_not_write()
