"""The access-log layer: one redacted, structured record per request, with request ids."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Iterable
from typing import Any, Final

from .._asgi import (
    ASGIApp,
    BoundedMemo,
    Message,
    Receive,
    Scope,
    Send,
    append_headers,
    request_info,
)
from ..errors import ConfigurationError
from ..routes import RouteTable
from . import redaction
from .handler import OUTPUTS, Output, prepare_output
from .redaction import CREDENTIAL_SHAPES, bounded, normalise, redact_header, sensitive_name
from .requestid import SAFE_ID, IdMaker, request_id_var
from .writer import RecordWriter, could_not_write

__all__ = ["AccessLogMiddleware"]

#: Longest logged path, user agent and referer, query and header value; longer ones are cut
#: and marked ``[TRUNCATED]``.
MAX_PATH: Final = 2048
MAX_HEADER: Final = 512
MAX_VALUE: Final = 2048
#: Longest logged subject (a verified token's ``sub``).
MAX_SUB: Final = 256


class AccessLogMiddleware(RecordWriter):
    """Log one structured record per http request and per websocket connection.

    The record's message is one JSON object (orjson); the same fields are attributes of the
    ``LogRecord`` for formatters and structlog. Fields: ``timestamp`` (when the exchange
    ended, RFC 3339 UTC, milliseconds), ``method``, ``path``, ``query``,
    ``status``, ``duration_ms``, ``bytes``, ``client``, ``scheme``, ``http_version``,
    ``user_agent``, ``referer``, ``request_id``, ``sub``, ``code`` (of an asgi_guard layer's
    rejection or shadow decision), ``ratelimit`` and ``disconnected``.

    Exactly one record is written for every request: on the last body chunk, on a rejection
    by another layer, on a client disconnect (flagged), or when the app raises (status 500,
    the exception propagates unchanged). Credentials never reach the log (see
    :mod:`asgi_guard.accesslog.redaction`: sensitive names, credential shapes anywhere), every
    field is bounded and safe to display, bodies are never logged. A failing handler never
    changes the response.

    Request ids: a short, safe incoming ``X-Request-ID`` is kept, otherwise one is made; it is
    echoed in the response, stored in ``scope["state"]``, and available to the app's own log
    records through :class:`RequestIdFilter`, whether or not records are written.

    Args:
        logger: a logger or logger name (default ``asgi_guard.access``).
        redact_headers: more header names whose values are redacted (matched normalised).
        redact_query: more query parameter names whose values are redacted (normalised).
        redact_values: more regular expressions of credentials, redacted wherever they appear.
        request_id_header: the request-id header name; None disables request ids.
        log_headers: request headers to include in the record (``headers`` field), redacted.
        level: the level of the records.
        exclude: route patterns (health checks, metrics scrapes) whose answers are logged only
            when they are errors (status 400 or more); they still get request ids.
        output: at construction, ``"logging"`` leaves logging alone and warns when no handler
            would receive the records; ``"auto"`` then writes them as JSON lines to stdout;
            ``"stdout"`` always does (see :func:`asgi_guard.accesslog.handler.prepare_output`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | str = "asgi_guard.access",
        redact_headers: Iterable[str] = (),
        redact_query: Iterable[str] = (),
        redact_values: Iterable[str] = (),
        request_id_header: str | None = "x-request-id",
        log_headers: Iterable[str] = (),
        level: int = logging.INFO,
        exclude: Iterable[str] = (),
        output: Output = "logging",
    ) -> None:
        super().__init__(logger, level)
        self.app = app
        for option, names in (("redact_headers", redact_headers), ("redact_query", redact_query)):
            if isinstance(names, str):
                raise ConfigurationError(option, "must be a list of names, not one string")
        self.sensitive_headers = frozenset(normalise(h) for h in redact_headers)
        self.sensitive_query = frozenset(normalise(q) for q in redact_query)
        self._shapes = self._compile_shapes(redact_values)
        if request_id_header is not None and not re.fullmatch(
            r"[A-Za-z0-9-]{1,64}", request_id_header
        ):
            raise ConfigurationError(
                "request_id_header", f"{request_id_header!r} is not a header name"
            )
        self._rid_name = request_id_header.lower().encode() if request_id_header else None
        #: The echo yields to an id header the app set itself.
        self._rid_only = frozenset((self._rid_name,)) if self._rid_name else frozenset()
        self._log_headers = {h.lower().encode(): h.lower() for h in log_headers}
        excluded = RouteTable.of_patterns(exclude, option="exclude")
        self._exclude = excluded if excluded.patterns else None
        self._ids = IdMaker()
        # Paths, queries, user agents and referers repeat from request to request: their log
        # text is memoized by raw value.
        self._paths = BoundedMemo(max_entries=1024, max_key=MAX_HEADER)
        self._queries = BoundedMemo(max_entries=1024, max_key=MAX_HEADER)
        self._agents = BoundedMemo(max_entries=1024, max_key=MAX_HEADER)
        self._referers = BoundedMemo(max_entries=1024, max_key=MAX_HEADER)
        if output not in OUTPUTS:
            raise ConfigurationError("output", f"must be one of {', '.join(OUTPUTS)}")
        prepare_output(self.logger, level, output)

    @staticmethod
    def _compile_shapes(patterns: Iterable[str]) -> re.Pattern[str]:
        if isinstance(patterns, str):
            raise ConfigurationError("redact_values", "must be a list of patterns, not one string")
        extra = list(patterns)
        for pattern in extra:
            try:
                compiled = re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ConfigurationError("redact_values", f"{pattern!r}: {exc}") from None
            if compiled.match(""):
                raise ConfigurationError("redact_values", f"{pattern!r} matches empty text")
        if not extra:
            return redaction._SHAPES
        return re.compile("|".join([*CREDENTIAL_SHAPES, *(f"(?:{p})" for p in extra)]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        enabled = self._levels.get(self.level)
        if enabled is None:
            enabled = self._enabled(self.level)
        if not enabled or self.logger.disabled:
            if self._rid_name is None:
                await self.app(scope, receive, send)
                return
            # No record is wanted: the request id is still kept or made, echoed and shared.
            send, rid = self._echo_id(scope, send)
            token = request_id_var.set(rid)
            try:
                await self.app(scope, receive, send)
            finally:
                request_id_var.reset(token)
            return
        exchange = _Exchange(self, scope, send)
        # Matched now: a router inside may rewrite the scope's root_path before the record.
        # An unreadable target (asgi_guard.target) is never quiet.
        if self._exclude is not None:
            exchange.quiet = self._exclude.match_scope_or_none(scope) is not None
        token = request_id_var.set(exchange.request_id)
        try:
            await self.app(scope, receive, exchange.send)
        except BaseException:
            if exchange.status is None:
                exchange.status = 500
            exchange.quiet = False  # a crash mid-response is news, even on an excluded route
            raise
        finally:
            exchange.finish()
            request_id_var.reset(token)

    def _echo_id(self, scope: Scope, send: Send) -> tuple[Send, str]:
        """The request's id, stored in its request info, and a ``send`` that echoes it."""
        name = self._rid_name
        assert name is not None
        incoming = None
        for key, value in scope["headers"]:
            if key == name:
                incoming = value
        rid = self._ids(incoming)
        info = request_info(scope)
        info.request_id = rid
        return info.add_headers(send, ((name, rid.encode()),), self._rid_only), rid


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
        "writes",
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
        self.extra: list[tuple[bytes, bytes]] | None = None
        self.echo: tuple[bytes, bytes] | None = None
        # Made now, so the layers inside write their decisions into this very object. This
        # send wraps the app's anyway: it writes every layer's response headers itself, unless
        # a layer outside installed the context's hook first.
        self.info = info = request_info(scope)
        self.writes = info.claim_hook()
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
            # IdMaker.__call__ inline: a call costs more than the rest of it.
            if (
                incoming is not None
                and len(incoming) <= 64
                and SAFE_ID.fullmatch(rid := incoming.decode("latin-1"))
            ):
                echo = (rid_name, incoming)
            else:
                ids = layer._ids
                rid = ids.prefix + str(next(ids.counter))
                echo = (rid_name, rid.encode())
            info.request_id = rid
            if self.writes:
                # This send writes the response headers: the echo goes last (the outermost
                # layer's line), appended directly. Through the context's list it measured
                # 5,754 instructions a request; appended here, 3,434 (callgrind, JSONL case).
                self.echo = echo
            else:
                info.add_headers(send, (echo,), layer._rid_only)
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
            if self.writes:
                self.info.write(message)
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
            shapes = layer._shapes
            # Log text is memoized by raw value (see AccessLogMiddleware.__init__).
            path: str = scope["path"]
            path_text = layer._paths.get(path)
            if path_text is None:
                path_text = layer._paths.remember(path, len(path), bounded(path, MAX_PATH, shapes))
            raw = scope.get("query_string", b"")
            query: str | None = layer._queries.get(raw) if raw else ""
            if query is None:
                query = layer._queries.remember(
                    raw,
                    len(raw),
                    redaction.query_text(raw, MAX_VALUE, layer.sensitive_query, shapes),
                )
            user_agent = referer = None
            raw = self.user_agent
            if raw is not None:
                user_agent = layer._agents.get(raw)
                if user_agent is None:
                    user_agent = layer._agents.remember(
                        raw, len(raw), redaction.text(raw, MAX_HEADER, shapes)
                    )
            raw = self.referer
            if raw is not None:
                referer = layer._referers.get(raw)
                if referer is None:
                    referer = layer._referers.remember(
                        raw, len(raw), redaction.referer_text(raw, layer.sensitive_query, shapes)
                    )
            client = scope.get("client")
            info = self.info
            code = info.code
            # The subject of the caller, whether the request went through (the user in the
            # scope: only an AuthenticatedUser's str ``sub``, a framework's own user has none)
            # or a layer refused it after verifying its token (then the request info has it,
            # and a refusal code: only then is it read, 360 instructions a request otherwise).
            sub = None
            user = scope.get("user")
            if user is not None and getattr(user, "is_authenticated", False) is True:
                sub = getattr(user, "sub", None)
            if sub is None and code is not None:
                sub = info.sub
            if sub is not None:
                sub = (
                    (bounded(sub, MAX_SUB) if len(sub) > MAX_SUB or not sub.isprintable() else sub)
                    if type(sub) is str
                    else None
                )
            ratelimit = info.ratelimit
            now = time.time()
            fields: dict[str, Any] = {
                "timestamp": layer.timestamp(now),
                "method": scope.get("method", "WEBSOCKET"),
                "path": path_text,
                "query": query,
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
                "code": code,
                "ratelimit": list(ratelimit) if ratelimit else None,
                # The app ended an http exchange before the last chunk: the client went away.
                "disconnected": not self.complete
                and scope["type"] == "http"
                and self.status != 500,
            }
            if self.extra is not None:
                fields["headers"] = self._headers(self.extra)
            layer.emit(fields, now)
        except Exception:
            could_not_write()

    def _headers(self, extra: list[tuple[bytes, bytes]]) -> dict[str, str]:
        """The ``log_headers`` the request sent, redacted, repeated lines joined."""
        layer = self.layer
        logged: dict[str, str] = {}
        for key, value in extra:
            name = layer._log_headers[key]
            text = redaction.text(value, MAX_VALUE, layer._shapes)
            if sensitive_name(name, layer.sensitive_headers):
                text = redact_header(name, text)
            logged[name] = text if name not in logged else logged[name] + ", " + text
        return logged
