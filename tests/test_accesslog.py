"""AccessLogMiddleware: one redacted record per request, request ids, never breaking a request."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.handlers
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from asgi_guard import (
    AccessLogMiddleware,
    ConfigurationError,
    JSONLinesHandler,
    JWTAuthMiddleware,
    RequestIdFilter,
    current_request_id,
)
from asgi_guard._asgi import Message

from .conftest import Channel, RecordingApp, client_for, http_scope, run_websocket

pytestmark = pytest.mark.anyio

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.getMessage()) for r in self.records]


@pytest.fixture
def logs() -> Iterator[Collect]:
    logger = logging.getLogger("test.access")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def make(app: Any, **options: Any) -> AccessLogMiddleware:
    return AccessLogMiddleware(app, logger="test.access", **options)


def everything(record: logging.LogRecord) -> str:
    """The message and every attribute of a record, as text."""
    return record.getMessage() + " " + " ".join(f"{k}={v!r}" for k, v in vars(record).items())


async def test_success_record(app: RecordingApp, logs: Collect) -> None:
    """A successful request gives one record with exact fields, as JSON and as attributes."""
    async with client_for(make(app), peer="203.0.113.5") as client:
        response = await client.get(
            "/items?page=2", headers={"user-agent": "curl/8", "x-request-id": "abc-123"}
        )
    assert response.headers["x-request-id"] == "abc-123"
    [record] = logs.records
    fields = logs.messages[0]
    assert fields.pop("duration_ms") >= 0
    # RFC 3339 UTC with milliseconds, the record's own creation time.
    assert fields.pop("timestamp") == (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int((record.created % 1) * 1000):03d}Z"
    )
    assert fields == {
        "method": "GET",
        "path": "/items",
        "query": "page=2",
        "status": 200,
        "bytes": 2,
        "client": "203.0.113.5",
        "scheme": "https",
        "http_version": "1.1",
        "user_agent": "curl/8",
        "referer": None,
        "request_id": "abc-123",
        "sub": None,
        "code": None,
        "ratelimit": None,
        "disconnected": False,
    }
    # status and request_id come in through extra=: set at runtime, not declared by LogRecord.
    assert (record.status, record.request_id, record.levelname, record.name) == (  # type: ignore[attr-defined]
        200,
        "abc-123",
        "INFO",
        "test.access",
    )
    thread = threading.current_thread()
    assert (record.process, record.processName, record.thread, record.threadName) == (
        os.getpid(),
        multiprocessing.current_process().name,
        thread.ident,
        thread.name,
    )
    assert app.scopes[0]["state"]["asgi_guard"].request_id == "abc-123"


async def test_rejection_by_inner_layer_is_logged_with_code(
    app: RecordingApp, logs: Collect
) -> None:
    """A refusal by another layer is one record with its status and code."""
    mw = make(JWTAuthMiddleware(app, secret="s" * 32))
    async with client_for(mw) as client:
        await client.get("/", headers={"authorization": f"Bearer {JWT}"})
    [fields] = logs.messages
    assert (fields["status"], fields["code"]) == (401, "jwt.invalid_signature")
    assert app.calls == 0


async def test_app_exception_is_logged_as_500_and_reraised(logs: Collect) -> None:
    """An app that raises: one record with 500, the exception propagates unchanged."""

    async def boom(scope: Any, receive: Any, send: Any) -> None:
        raise KeyError("boom")

    async with client_for(make(boom)) as client:
        with pytest.raises(KeyError, match="boom"):
            await client.get("/")
    assert [m["status"] for m in logs.messages] == [500]


async def test_exception_after_response_keeps_real_status(logs: Collect) -> None:
    """An error after the last chunk was sent is logged once, with the status the client got."""

    async def late(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})
        raise RuntimeError("after")

    async with client_for(make(late)) as client:
        with pytest.raises(RuntimeError):
            await client.get("/")
    assert [m["status"] for m in logs.messages] == [201]


async def test_streaming_is_logged_at_last_chunk(logs: Collect) -> None:
    """A streaming response is logged when its last chunk is sent, with every byte counted."""
    counts: list[int] = []

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"abcd", "more_body": True})
            counts.append(len(logs.records))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        counts.append(len(logs.records))
        await asyncio.sleep(0)  # e.g. background tasks

    async with client_for(make(stream)) as client:
        await client.get("/")
    assert counts == [0, 0, 0, 1]
    assert [(m["status"], m["bytes"]) for m in logs.messages] == [(200, 12)]


async def test_file_responses_by_path_send_are_complete(logs: Collect, tmp_path: Any) -> None:
    """Starlette's FileResponse over a server offering the ASGI path-send extension: one
    complete record with the file's size, written when the path is handed over."""
    from starlette.responses import FileResponse

    path = tmp_path / "report.csv"
    path.write_bytes(b"a,b\n" * 100)
    scope = http_scope(extensions={"http.response.pathsend": {}}, http_version="1.1")
    sent = await Channel().run(make(FileResponse(path)), scope)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]
    [fields] = logs.messages
    assert (fields["status"], fields["bytes"], fields["disconnected"]) == (200, 400, False)


async def test_zero_copy_send_counts_and_completes(logs: Collect, tmp_path: Any) -> None:
    """The zero-copy-send extension: counted chunks, logged at the last one; a path-send
    of a missing file still gives its one record."""

    async def zero_copy(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send(
            {"type": "http.response.zerocopysend", "file": 5, "count": 10, "more_body": True}
        )
        assert logs.records == []
        await send({"type": "http.response.zerocopysend", "file": 5, "count": 7})

    async def missing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "gone")})

    await Channel().run(make(zero_copy), http_scope())
    await Channel().run(make(missing), http_scope())
    assert [(m["bytes"], m["disconnected"]) for m in logs.messages] == [(17, False), (0, False)]


async def test_a_second_last_chunk_gives_no_second_record(logs: Collect) -> None:
    """An app that sends a "last" body chunk twice (or a body and then a file) is still one
    request: one record."""

    async def twice(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab"})
        await send({"type": "http.response.body", "body": b"cd"})
        await send({"type": "http.response.pathsend", "path": "/nonexistent"})

    sent = await Channel().run(make(twice), http_scope())
    assert len(sent) == 4  # what the app sends is the server's business
    assert [(m["status"], m["bytes"]) for m in logs.messages] == [(200, 2)]


async def test_client_disconnect_is_flagged(logs: Collect) -> None:
    """A client that leaves before the response gives one flagged record."""

    async def waits(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    messages: list[Message] = [
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    await make(waits)(scope, receive, None)  # type: ignore[arg-type]
    assert [(m["status"], m["disconnected"]) for m in logs.messages] == [(None, True)]


async def test_websocket_one_record(app: RecordingApp, logs: Collect) -> None:
    """A websocket connection is one record: 101 when accepted, 403 when refused."""
    await run_websocket(make(app))
    await run_websocket(make(JWTAuthMiddleware(app, secret="s" * 32)))
    assert [(m["method"], m["status"]) for m in logs.messages] == [
        ("WEBSOCKET", 101),
        ("WEBSOCKET", 403),
    ]


async def test_websocket_bytes_are_counted(logs: Collect) -> None:
    """Text frames count their UTF-8 bytes; text the server itself will refuse (a lone
    surrogate) is counted, not raised in the app's face by the log."""
    passed: list[Message] = []

    async def chat(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "héllo"})
        await send({"type": "websocket.send", "bytes": b"\x00\x01"})
        await send({"type": "websocket.send", "text": "\ud800"})
        await send({"type": "websocket.close", "code": 1000})

    async def server_send(message: Message) -> None:
        passed.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "scheme": "wss"}
    await make(chat)(scope, Channel([{"type": "websocket.connect"}]).receive, server_send)
    assert [m["type"] for m in passed].count("websocket.send") == 3
    assert [(m["status"], m["bytes"]) for m in logs.messages] == [(101, 6 + 2 + 3)]


class _OddUser:
    def __init__(self, sub: Any, fails: bool = False) -> None:
        self.sub = sub
        self.fails = fails

    @property
    def is_authenticated(self) -> bool:
        if self.fails:
            raise RuntimeError("session store down")
        return True


@pytest.mark.parametrize(
    ("user", "sub", "stderr"),
    [
        (_OddUser("carol"), "carol", ""),
        (_OddUser(42), None, ""),
        (_OddUser(object()), None, ""),
        (
            _OddUser("carol", fails=True),
            None,
            "asgi_guard: access log record could not be written\n",
        ),
    ],
)
async def test_users_set_by_others_never_break_the_response(
    logs: Collect, capsys: pytest.CaptureFixture[str], user: Any, sub: Any, stderr: str
) -> None:
    """A user object put in the scope by other middleware: a str ``sub`` is logged, anything
    else is not, and a user that raises costs the record, never the response."""

    async def with_user(scope: Any, receive: Any, send: Any) -> None:
        scope["user"] = user
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent = await Channel().run(make(with_user), http_scope())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert [m["sub"] for m in logs.messages] == ([] if stderr else [sub])
    assert capsys.readouterr().err == stderr


SECRETS = {
    "token": "tok-9f8e7d6c5b4a",
    "password": "pa55w0rd-hunter2",
    "api": "key-0123456789abcdef",
    "cookie": "sessval-abcdef123456",
    "custom": "custom-secret-777777",
}


@pytest.mark.parametrize(
    ("url", "headers", "options"),
    [
        (f"/x?access_token={SECRETS['token']}&page=1", {}, {}),
        (f"/x?ACCESS_TOKEN={SECRETS['token']}", {}, {}),
        (f"/x?acc%65ss_token={SECRETS['token']}", {}, {}),
        (f"/x?token=a&token={SECRETS['token']}", {}, {}),
        (f"/x?password={SECRETS['password']}&code={SECRETS['api']}", {}, {}),
        (f"/x?client_secret={SECRETS['api']}&api_key={SECRETS['api']}", {}, {}),
        (f"/x?sig={SECRETS['custom']}", {}, {"redact_query": ["SIG"]}),
        (f"/files/{JWT}/x", {}, {}),
        ("/x", {"referer": f"https://site.example/cb?code={SECRETS['api']}&id_token={JWT}"}, {}),
        ("/x", {"referer": f"https://site.example/cb#access_token={SECRETS['token']}&s=1"}, {}),
        ("/x", {"referer": f"https://site.example/cb?a=1#code={SECRETS['api']}"}, {}),
        ("/x", {"referer": f"https://me:{SECRETS['password']}@site.example/a?b=c"}, {}),
        ("/x", {"referer": f"https://{SECRETS['token']}@site.example"}, {}),
        (f"/x?page=1;password={SECRETS['password']}", {}, {}),
        ("/x", {"user-agent": f"agent {JWT}"}, {}),
        ("/x", {"authorization": f"Bearer {SECRETS['token']}"}, {"log_headers": ["authorization"]}),
        ("/x", {"cookie": f"session={SECRETS['cookie']}; theme=dark"}, {"log_headers": ["Cookie"]}),
        ("/x", {"x-api-key": SECRETS["api"]}, {"log_headers": ["x-api-key"]}),
        (
            "/x",
            {"x-tenant-key": SECRETS["custom"]},
            {"log_headers": ["x-tenant-key"], "redact_headers": ["X-Tenant-Key"]},
        ),
    ],
)
async def test_no_secret_reaches_the_log(
    app: RecordingApp, logs: Collect, url: str, headers: dict[str, str], options: dict[str, Any]
) -> None:
    """No 8+ character piece of any secret appears in the message or in any record attribute."""
    async with client_for(make(app, **options)) as client:
        await client.get(url, headers=headers)
    text = everything(logs.records[0])
    for secret in [*SECRETS.values(), JWT, JWT.split(".")[2]]:
        for start in range(len(secret) - 7):
            assert secret[start : start + 8] not in text, secret
    assert "[REDACTED]" in text


async def test_redaction_keeps_structure(app: RecordingApp, logs: Collect) -> None:
    """Redacted values keep the line useful: scheme, names and other parameters stay."""
    async with client_for(make(app, log_headers=["authorization", "cookie"])) as client:
        await client.get(
            "/x?page=2&access_token=abc&Token=def",
            headers={"authorization": "Bearer abcdefgh", "cookie": "a=1; b=2"},
        )
    fields = logs.messages[0]
    assert fields["query"] == "page=2&access_token=[REDACTED]&Token=[REDACTED]"
    assert fields["headers"] == {
        "authorization": "Bearer [REDACTED]",
        "cookie": "a=[REDACTED]; b=[REDACTED]",
    }


@pytest.mark.parametrize(
    ("referer", "logged"),
    [
        ("https://u:p@site.example/a?b=c", "https://[REDACTED]@site.example/a?b=c"),
        ("https://site.example/a@b?c=d", "https://site.example/a@b?c=d"),  # @ in the path
        (
            "https://site.example/cb#access_token=x&s=1",
            "https://site.example/cb#access_token=[REDACTED]&s=1",
        ),
        ("https://site.example/cb?p=1#token=x", "https://site.example/cb?p=1#token=[REDACTED]"),
        ("https://site.example/cb?p=1;code=x", "https://site.example/cb?p=1;code=[REDACTED]"),
        ("https://site.example/#section", "https://site.example/#section"),
        ("android-app://com.example", "android-app://com.example"),
        ("not a url @ all", "not a url @ all"),
        ("https://a@b@c.example/d", "https://[REDACTED]@c.example/d"),
        ("https://@", "https://[REDACTED]@"),
        ("https://", "https://"),
        (":///?#", ":///?#"),
        ("?#&;=", "?#&;="),
        ("https://h/?token", "https://h/?token"),  # no value, nothing to hide
    ],
)
async def test_referer_redaction_keeps_structure(
    app: RecordingApp, logs: Collect, referer: str, logged: str
) -> None:
    """Userinfo, and the query's and fragment's sensitive parameters, are redacted in place."""
    async with client_for(make(app)) as client:
        await client.get("/x", headers={"referer": referer})
    assert logs.messages[0]["referer"] == logged


async def test_log_injection_stays_on_one_line(logs: Collect) -> None:
    """CR, LF, ESC and invalid UTF-8 are escaped in the message and in the attributes."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/a\r\n[INFO] forged\x1b[31m\u2028",
        "query_string": b"q=\r\nx",
        "headers": [(b"user-agent", b"ua\r\nforged \xff\xfe"), (b"referer", b"http://r/\x85")],
    }
    await make(RecordingApp())(scope, None, send)  # type: ignore[arg-type]
    record = logs.records[0]
    formatted = logging.Formatter(
        "%(message)s %(path)s %(user_agent)s %(referer)s %(query)s"
    ).format(record)
    assert "\n" not in formatted
    assert "\r" not in formatted
    assert "\x1b" not in formatted
    assert "\u2028" not in formatted
    assert record.path == "/a\\x0d\\x0a[INFO] forged\\x1b[31m\\u2028"  # type: ignore[attr-defined]
    assert record.user_agent == "ua\\x0d\\x0aforged \\xff\\xfe"  # type: ignore[attr-defined]


def test_long_header_values_are_truncated() -> None:
    """User agents and referers are cut at 512 bytes, back to a boundary, and marked."""
    from asgi_guard.accesslog import TRUNCATED, _text

    assert _text(b"word " * 1000) == "word " * 102 + TRUNCATED
    # One long run has no boundary to cut at: none of it is kept (it may be a credential).
    assert _text(b"a" * 5000) == TRUNCATED


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        ("req-1", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("bad id", False),
        ("x\r\ny", False),
        ("<script>", False),
        ("", False),
    ],
)
async def test_request_id(app: RecordingApp, logs: Collect, incoming: str, kept: bool) -> None:
    """A short, safe incoming id is kept; anything else is replaced by a generated one."""
    async with client_for(make(app)) as client:
        response = await client.get("/", headers={"x-request-id": incoming})
    rid = response.headers["x-request-id"]
    assert (rid == incoming) is kept
    assert logs.messages[0]["request_id"] == rid
    assert app.scopes[0]["state"]["asgi_guard"].request_id == rid


async def test_generated_ids_are_unique(app: RecordingApp, logs: Collect) -> None:
    """Generated ids differ from request to request."""
    async with client_for(make(app)) as client:
        ids = {(await client.get("/")).headers["x-request-id"] for _ in range(50)}
    assert len(ids) == 50


async def test_request_id_reaches_app_logs(logs: Collect) -> None:
    """The app's own records carry the request id through RequestIdFilter."""
    app_logger = logging.getLogger("test.app")
    handler = Collect()
    handler.addFilter(RequestIdFilter())
    app_logger.addHandler(handler)
    app_logger.setLevel(logging.INFO)
    seen: list[str | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_request_id())
        app_logger.info("working")
        await RecordingApp()(scope, receive, send)

    try:
        async with client_for(make(app)) as client:
            await client.get("/", headers={"x-request-id": "rid-42"})
        logging.getLogger("test.app").info("outside")
    finally:
        app_logger.removeHandler(handler)
    assert seen == ["rid-42"]
    assert [r.request_id for r in handler.records] == ["rid-42", "-"]  # type: ignore[attr-defined]


async def test_failing_handler_does_not_change_response(
    app: RecordingApp, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler or formatter that raises does not affect the request."""

    class Broken(logging.Handler):
        def handle(self, record: logging.LogRecord) -> bool:
            raise OSError("disk full")

    logger = logging.getLogger("test.broken")
    logger.setLevel(logging.INFO)
    logger.addHandler(Broken())
    logger.propagate = False
    try:
        async with client_for(AccessLogMiddleware(app, logger=logger)) as client:
            response = await client.get("/")
    finally:
        logger.handlers.clear()
    assert response.status_code == 200
    assert capsys.readouterr().err == "asgi_guard: access log record could not be written\n"


async def test_queue_handler_setup(app: RecordingApp) -> None:
    """The documented non-blocking setup: QueueHandler in the request path, a listener thread writing."""
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    sink = Collect()
    listener = logging.handlers.QueueListener(q, sink)
    logger = logging.getLogger("test.queued")
    logger.addHandler(logging.handlers.QueueHandler(q))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    listener.start()
    try:
        async with client_for(AccessLogMiddleware(app, logger=logger)) as client:
            await client.get("/q?token=secret-value-123")
    finally:
        listener.stop()
        logger.handlers.clear()
    assert len(sink.records) == 1
    assert orjson.loads(sink.records[0].getMessage())["query"] == "token=[REDACTED]"
    assert sink.records[0].status == 200  # type: ignore[attr-defined]


async def test_disabled_logger_still_gives_request_ids(app: RecordingApp, logs: Collect) -> None:
    """With the logger disabled, nothing is logged, but the request id is still kept or made,
    echoed, stored and set in the context variable."""
    logging.getLogger("test.access").setLevel(logging.WARNING)
    seen: list[str | None] = []

    async def app_reading_id(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_request_id())
        await app(scope, receive, send)

    async with client_for(make(app_reading_id)) as client:
        kept = await client.get("/", headers={"x-request-id": "rid-7"})
        made = await client.get("/")
    assert (kept.status_code, kept.headers["x-request-id"], logs.records) == (200, "rid-7", [])
    rid = made.headers["x-request-id"]
    assert rid != "rid-7"
    assert seen == ["rid-7", rid]
    assert [s["state"]["asgi_guard"].request_id for s in app.scopes] == ["rid-7", rid]
    assert current_request_id() is None


async def test_disabled_logger_without_request_ids_steps_aside(
    app: RecordingApp, logs: Collect
) -> None:
    """With the logger disabled and request ids off, the layer adds nothing at all."""
    logging.getLogger("test.access").setLevel(logging.WARNING)
    async with client_for(make(app, request_id_header=None)) as client:
        response = await client.get("/")
    assert (response.status_code, "x-request-id" in response.headers, logs.records) == (
        200,
        False,
        [],
    )
    assert "state" not in app.scopes[0]


async def test_level_changes_after_construction_are_followed(
    app: RecordingApp, logs: Collect
) -> None:
    """The layer reads logging's level cache: every later change is seen at once, whether made
    on the logger, on an ancestor, by ``logging.disable`` or by ``Logger.disabled``."""
    logger = logging.getLogger("test.access")
    layer = make(app)
    counts = []

    async def count() -> None:
        async with client_for(layer) as client:
            await client.get("/")
        counts.append(len(logs.records))

    try:
        await count()  # INFO: logged
        logger.setLevel(logging.WARNING)
        await count()
        logger.setLevel(logging.NOTSET)  # the parents decide: the root is at WARNING
        logging.getLogger().setLevel(logging.WARNING)
        await count()
        logger.setLevel(logging.INFO)
        await count()
        logging.disable(logging.INFO)
        await count()
        logging.disable(logging.NOTSET)
        logger.disabled = True
        await count()
        logger.disabled = False
        await count()
    finally:
        logging.disable(logging.NOTSET)
        logger.disabled = False
        logger.setLevel(logging.INFO)
    assert counts == [1, 1, 1, 2, 2, 2, 3]


async def test_a_logger_subclass_decides_for_itself(app: RecordingApp) -> None:
    """A Logger subclass with its own isEnabledFor is asked on every request."""

    class Quiet(logging.Logger):
        def isEnabledFor(self, level: int) -> bool:
            return self.name.endswith("loud")

    quiet, loud = Quiet("test.quiet"), Quiet("test.loud")
    sinks = []
    for logger in (quiet, loud):
        sink = Collect()
        logger.addHandler(sink)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        sinks.append(sink)
        async with client_for(AccessLogMiddleware(app, logger=logger)) as client:
            await client.get("/")
    assert [len(sink.records) for sink in sinks] == [0, 1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_worker_makes_its_own_request_ids(logs: Collect) -> None:
    """A layer built before a fork (gunicorn --preload) gives each worker its own id prefix,
    so two workers never hand out the same id."""
    layer = make(RecordingApp())

    def first_id() -> str:
        sent = asyncio.run(Channel().run(layer, http_scope()))
        request_id: bytes = dict(sent[0]["headers"])[b"x-request-id"]
        return request_id.decode()

    parent_before = first_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: report its first id, and leave without pytest's cleanup
        try:
            os.write(write, first_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    os.waitpid(pid, 0)
    parent_after = first_id()
    prefix = parent_before.partition("-")[0]
    assert (parent_before, parent_after) == (f"{prefix}-1", f"{prefix}-2")
    assert child.endswith("-1")
    assert child.partition("-")[0] not in ("", prefix)


async def test_no_request_ids(app: RecordingApp, logs: Collect) -> None:
    """request_id_header=None turns request ids off."""
    async with client_for(make(app, request_id_header=None)) as client:
        response = await client.get("/", headers={"x-request-id": "abc"})
    assert "x-request-id" not in response.headers
    assert logs.messages[0]["request_id"] is None


async def test_lifespan_passes(logs: Collect) -> None:
    """Lifespan is not logged."""
    seen = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await make(inner)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert (seen, logs.records) == (["lifespan"], [])


async def test_excluded_routes_log_only_errors(logs: Collect) -> None:
    """``exclude``: a health check's successes write no record; its errors, other methods and
    other routes do; every answer still carries a request id."""
    statuses = {"/health": 200, "/health/deep": 503, "/items": 200}
    calls: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        status = statuses[scope["path"]]
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    mw = make(inner, exclude=["GET /health", "/health/{check}"])
    async with client_for(mw) as client:
        answers = [
            await client.get("/health"),
            await client.head("/health"),  # GET's route holds for HEAD
            await client.get("/health/deep"),
            await client.post("/health"),
            await client.get("/items"),
        ]
    assert [(r.status_code, "x-request-id" in r.headers) for r in answers] == [
        (200, True),
        (200, True),
        (503, True),
        (200, True),
        (200, True),
    ]
    assert len(calls) == 5
    assert [(m["method"], m["path"], m["status"]) for m in logs.messages] == [
        ("GET", "/health/deep", 503),
        ("POST", "/health", 200),
        ("GET", "/items", 200),
    ]


async def test_excluded_routes_still_log_rejections_and_crashes(
    app: RecordingApp, logs: Collect
) -> None:
    """On an excluded route, a refusal by another layer and an app that raises (before or
    during its response) are logged."""
    mw = make(JWTAuthMiddleware(app, secret="s" * 32), exclude=["/health"])
    async with client_for(mw) as client:
        assert (await client.get("/health")).status_code == 401

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def broken_midway(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"o", "more_body": True})
        raise RuntimeError("midway")

    async def discard(message: Any) -> None:
        return None

    with pytest.raises(RuntimeError, match="boom"):
        await make(broken, exclude=["/health"])(http_scope(path="/health"), None, discard)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="midway"):
        await make(broken_midway, exclude=["/health"])(http_scope(path="/health"), None, discard)  # type: ignore[arg-type]
    assert [(m["path"], m["status"], m["code"]) for m in logs.messages] == [
        ("/health", 401, "jwt.missing"),
        ("/health", 500, None),
        ("/health", 200, None),  # the status the client got, and the byte it got
    ]
    assert logs.messages[2]["bytes"] == 1
    assert app.calls == 0


async def test_exclusion_is_decided_before_a_router_rewrites_the_scope(logs: Collect) -> None:
    """A mounted router moving the prefix into ``root_path`` does not change the decision."""

    async def mount(scope: Any, receive: Any, send: Any) -> None:
        scope["root_path"] = scope.get("root_path", "") + "/internal"  # as Starlette's Mount
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with client_for(make(mount, exclude=["/internal/health"])) as client:
        await client.get("/internal/health")
        await client.get("/internal/other")
    assert [m["path"] for m in logs.messages] == ["/internal/other"]


@pytest.mark.parametrize(
    ("options", "option"),
    [({"logger": 5}, "logger"), ({"request_id_header": "bad header"}, "request_id_header")],
)
def test_bad_options(options: dict[str, Any], option: str) -> None:
    """Bad options fail at construction."""
    with pytest.raises((ConfigurationError, TypeError)):
        AccessLogMiddleware(RecordingApp(), **options)


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        ("/health", "exclude: must be a list of route patterns, not one string"),
        (["health"], "exclude: route path must start with '/': 'health'"),
    ],
)
def test_bad_exclusions(exclude: Any, message: str) -> None:
    """A bare string (which would iterate as one pattern per character) or a bad pattern fails
    at construction, named."""
    with pytest.raises(ConfigurationError) as caught:
        AccessLogMiddleware(RecordingApp(), exclude=exclude)
    assert str(caught.value) == message


async def test_json_lines_handler(app: RecordingApp) -> None:
    """JSONLinesHandler writes each record's JSON as one line; other records are formatted."""
    stream = io.StringIO()
    logger = logging.getLogger("test.lines")
    logger.addHandler(JSONLinesHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        async with client_for(AccessLogMiddleware(app, logger=logger)) as client:
            await client.get("/a")
        logger.info("plain %s", "text")
    finally:
        logger.handlers.clear()
    first, second = stream.getvalue().splitlines()
    assert orjson.loads(first)["path"] == "/a"
    assert second == "plain text"


@pytest.mark.parametrize(
    ("encoding", "binary"), [("utf-8", True), ("UTF8", True), ("latin-1", False)]
)
async def test_json_lines_handler_on_a_file(
    app: RecordingApp, tmp_path: Any, encoding: str, binary: bool
) -> None:
    """On a UTF-8 text file the line goes to the descriptor as orjson's bytes, after anything
    written through the stream before; another encoding gets the text, encoded as the file
    says. Either way the file holds the same characters, in order."""
    path = tmp_path / "access.log"
    stream = open(path, "w", encoding=encoding)  # noqa: SIM115, ASYNC230 - closed below
    handler = JSONLinesHandler(stream)
    logger = logging.getLogger("test.file")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        assert (handler._fd is not None) is binary
        stream.write("before\n")  # pending in the stream's buffer
        async with client_for(AccessLogMiddleware(app, logger=logger)) as client:
            await client.get("/caf\u00e9")
        logger.info("after")
    finally:
        logger.handlers.clear()
        stream.close()
    before, record, after = path.read_text(encoding=encoding).splitlines()
    assert (before, orjson.loads(record)["path"], after) == ("before", "/caf\u00e9", "after")


def test_json_lines_handler_writes_the_rest_of_a_partial_write(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A descriptor that takes part of a line (a pipe, a signal) gets the rest."""
    real_write = os.write
    calls = []

    def short_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data[:4])

    path = tmp_path / "access.log"
    with open(path, "w", encoding="utf-8") as stream:
        handler = JSONLinesHandler(stream)
        monkeypatch.setattr(os, "write", short_write)
        handler.write_bytes(b'{"path":"/a"}\n')
        monkeypatch.undo()
    assert path.read_bytes() == b'{"path":"/a"}\n'
    assert calls == [14, 10, 6, 2]


def test_json_lines_handler_never_spins_on_a_descriptor_that_takes_nothing(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that takes no bytes is an error for handleError, not an endless loop."""
    with open(tmp_path / "access.log", "w", encoding="utf-8") as stream:
        handler = JSONLinesHandler(stream)
        monkeypatch.setattr(os, "write", lambda fd, data: 0)
        with pytest.raises(OSError, match="took no bytes"):
            handler.write_bytes(b'{"path":"/a"}\n')


def test_json_lines_handler_follows_set_stream(tmp_path: Any) -> None:
    """setStream decides the write path again; a closed stream is reported, never written."""
    stream = open(tmp_path / "a.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    handler = JSONLinesHandler(stream)
    other = io.StringIO()
    assert handler.setStream(other) is stream
    assert handler._fd is None
    handler.setStream(stream)
    assert handler._fd == stream.fileno()
    stream.close()
    with pytest.raises(ValueError, match="closed file"):
        handler.write_bytes(b"{}\n")
    handler.stream = other  # (setStream would flush the closed stream)
    in_memory = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # no descriptor: text path
    assert JSONLinesHandler(in_memory)._fd is None

    class Tee(io.TextIOWrapper):  # a subclass may do more in write: it gets the text
        pass

    with open(tmp_path / "b.log", "wb") as raw:
        tee = Tee(raw, encoding="utf-8")
        assert JSONLinesHandler(tee)._fd is None
        tee.detach()  # the file is closed by its own with
    handler.write_bytes(b'{"a":"\xc3\xa9"}\n')
    assert other.getvalue() == '{"a":"\u00e9"}\n'


async def test_lone_surrogates_are_escaped(logs: Collect) -> None:
    """A path holding lone surrogates (surrogateescape decoding) is still logged, escaped."""
    await Channel().run(
        make(RecordingApp()),
        {
            "type": "http",
            "method": "GET",
            "path": "/a\udcff\u200b",
            "headers": [],
            "query_string": b"",
        },
    )
    assert logs.messages[0]["path"] == "/a\\udcff\\u200b"


async def test_repeated_referers_and_agents_stay_redacted(app: RecordingApp, logs: Collect) -> None:
    """User agents and referers are memoized by raw value: repeats, long values and values
    past the memo's size give the same redacted text as the first time."""
    referer = f"https://site.example/cb?code={SECRETS['api']}&page=1"
    long_referer = referer + "&pad=" + "p" * 600
    agent = f"agent {JWT}"
    async with client_for(make(app)) as client:
        for value in (referer, referer, long_referer, long_referer):
            await client.get("/x", headers={"referer": value, "user-agent": agent})
    referers = [m["referer"] for m in logs.messages]
    assert referers[:2] == ["https://site.example/cb?code=[REDACTED]&page=1"] * 2
    assert referers[2] == referers[3]
    # Cut at 512 bytes, back to the last boundary, and marked.
    assert referers[2] == "https://site.example/cb?code=[REDACTED]&page=1&pad=[TRUNCATED]"
    assert [m["user_agent"] for m in logs.messages] == ["agent [REDACTED]"] * 4


async def test_generated_request_ids_are_unique(app: RecordingApp, logs: Collect) -> None:
    """Generated ids share a per-process random prefix and never repeat."""
    async with client_for(make(app)) as client:
        ids = [(await client.get("/")).headers["x-request-id"] for _ in range(50)]
    assert len(set(ids)) == 50
    prefixes = {rid.rsplit("-", 1)[0] for rid in ids}
    assert len(prefixes) == 1
    assert len(prefixes.pop()) == 12
    assert [m["request_id"] for m in logs.messages] == ids


@pytest.fixture
def chain() -> Iterator[tuple[logging.Logger, logging.Logger]]:
    """A two-level logger chain ending before the root.

    pytest gives the root and every non-propagating logger capture handlers while a test
    runs: the tests call ``_bare`` first."""
    parent, child = logging.getLogger("test.direct"), logging.getLogger("test.direct.child")
    parent.propagate = False
    child.propagate = True
    for logger in (parent, child):
        logger.setLevel(logging.INFO)
    yield parent, child
    for logger in (parent, child):
        logger.handlers.clear()
        logger.filters.clear()
        logger.disabled = False


async def test_plain_json_lines_handlers_get_the_same_line(
    app: RecordingApp, chain: tuple[logging.Logger, logging.Logger]
) -> None:
    """Plain JSONLinesHandlers up the chain get the line written directly, each exactly once;
    a handler's level still applies; the line is the message a record would carry."""
    parent, child = chain
    _bare(parent, child)
    up, here, quiet = io.StringIO(), io.StringIO(), io.StringIO()
    parent.addHandler(JSONLinesHandler(up))
    child.addHandler(JSONLinesHandler(here))
    warning_only = JSONLinesHandler(quiet)
    warning_only.setLevel(logging.WARNING)
    child.addHandler(warning_only)
    layer = AccessLogMiddleware(app, logger=child)
    assert layer._plain_handlers() == [*child.handlers[:1], *parent.handlers]
    async with client_for(layer) as client:
        await client.get("/a?token=secret-value-123", headers={"x-request-id": "r-1"})
    [line] = here.getvalue().splitlines()
    assert up.getvalue() == here.getvalue()
    assert quiet.getvalue() == ""
    fields = orjson.loads(line)
    assert (fields["path"], fields["query"], fields["request_id"], fields["status"]) == (
        "/a",
        "token=[REDACTED]",
        "r-1",
        200,
    )
    # The same message as when a record is built (another handler in the chain).
    collect = Collect()
    parent.addHandler(collect)
    assert layer._plain_handlers() is None
    async with client_for(layer) as client:
        await client.get("/a?token=secret-value-123", headers={"x-request-id": "r-1"})
    again = orjson.loads(collect.records[0].getMessage())
    assert {k: v for k, v in again.items() if k not in ("timestamp", "duration_ms")} == {
        k: v for k, v in fields.items() if k not in ("timestamp", "duration_ms")
    }


def _bare(*loggers: logging.Logger) -> None:
    for logger in loggers:
        logger.handlers.clear()


def _subclass_handler() -> logging.Handler:
    class Mine(JSONLinesHandler):
        pass

    return Mine(io.StringIO())


def _filtered_handler() -> logging.Handler:
    handler = JSONLinesHandler(io.StringIO())
    handler.addFilter(RequestIdFilter())
    return handler


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param(lambda p, c: None, id="no handler: logging.lastResort decides"),
        pytest.param(lambda p, c: c.addFilter(RequestIdFilter()), id="logger filter"),
        pytest.param(lambda p, c: c.addHandler(_filtered_handler()), id="handler filter"),
        pytest.param(lambda p, c: p.addHandler(_subclass_handler()), id="subclass"),
        pytest.param(
            lambda p, c: p.addHandler(logging.StreamHandler(io.StringIO())), id="other handler"
        ),
        pytest.param(lambda p, c: setattr(c, "disabled", True), id="disabled logger"),
    ],
)
def test_records_are_built_when_anything_could_read_them(
    setup: Any, chain: tuple[logging.Logger, logging.Logger]
) -> None:
    """A filter, a handler that is not a plain JSONLinesHandler, or no handler at all: the
    record goes through Logger.handle as usual."""
    parent, child = chain
    _bare(parent, child)
    setup(parent, child)
    if parent.handlers or child.handlers or child.filters or child.disabled:
        child.addHandler(JSONLinesHandler(io.StringIO()))  # a plain one beside the culprit
    assert AccessLogMiddleware(RecordingApp(), logger=child)._plain_handlers() is None


async def test_failing_json_lines_stream_is_reported_not_raised(
    app: RecordingApp,
    chain: tuple[logging.Logger, logging.Logger],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stream that fails under a plain JSONLinesHandler: reported by the handler, as
    logging does, and the response is unchanged."""

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    parent, _ = chain
    _bare(parent)
    parent.addHandler(JSONLinesHandler(Full()))
    async with client_for(AccessLogMiddleware(app, logger=parent)) as client:
        response = await client.get("/")
    err = capsys.readouterr().err
    assert response.status_code == 200
    assert "--- Logging error ---" in err
    assert "OSError: disk full" in err
    assert '"path":"/"' in err  # the record handed to handleError carries the message


def test_json_lines_handler_reports_a_failing_stream_for_other_records(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A record from any other logger, on a failing stream: reported, never raised."""

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    logger = logging.getLogger("test.lines.failing")
    logger.addHandler(JSONLinesHandler(Full()))
    logger.propagate = False
    try:
        logger.warning("app %s", "record")
    finally:
        logger.handlers.clear()
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert "OSError: disk full" in err


def test_timestamps() -> None:
    """RFC 3339 UTC with milliseconds, the second part made again when the second changes."""
    layer = AccessLogMiddleware(RecordingApp())
    assert layer.timestamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert layer.timestamp(1_790_000_000.1239) == "2026-09-21T14:13:20.123Z"
    assert layer.timestamp(1_790_000_000.9999) == "2026-09-21T14:13:20.999Z"
    assert layer.timestamp(1_790_000_001.5) == "2026-09-21T14:13:21.500Z"


async def test_a_refusal_after_a_valid_token_records_its_subject(logs: Collect) -> None:
    """A 403 for a missing scope names the verified token's subject; a refusal of an invalid
    token names none."""
    from joserfc.jwk import OctKey

    from .jwt_helpers import NOW, mint

    key = OctKey.import_key(b"k" * 40)
    guarded = make(
        JWTAuthMiddleware(
            RecordingApp(), secret="k" * 40, rules={"/admin": ["admin"]}, clock=lambda: NOW
        )
    )
    token = mint(key, "HS256", sub="alice", scope="orders:read")
    async with client_for(guarded) as client:
        refused = await client.get("/admin", headers={"authorization": f"Bearer {token}"})
        invalid = await client.get("/admin", headers={"authorization": f"Bearer {JWT}"})
        admitted = await client.get("/orders", headers={"authorization": f"Bearer {token}"})
    assert (refused.status_code, invalid.status_code, admitted.status_code) == (403, 401, 200)
    assert [(m["status"], m["code"], m["sub"]) for m in logs.messages] == [
        (403, "jwt.insufficient_scope", "alice"),
        (401, "jwt.invalid_signature", None),
        (200, None, "alice"),
    ]


@pytest.mark.parametrize(
    ("raw", "logged"),
    [
        ("/files/\u202etxt.exe", "/files/\\u202etxt.exe"),  # RIGHT-TO-LEFT OVERRIDE
        ("/a\u2066b\u2069", "/a\\u2066b\\u2069"),  # isolates
        ("/a\u200bb\u200d\ufeff", "/a\\u200bb\\u200d\\ufeff"),  # zero-width, BOM
        ("/a\u061cb\u00adc", "/a\\u061cb\\xadc"),  # Arabic letter mark, soft hyphen
        ("/a\U000e0041b", "/a\\U000e0041b"),  # a tag character
        ("/a\U0010fffdb", "/a\\U0010fffdb"),  # private use
        ("/caf\u00e9/\u65e5\u672c", "/caf\u00e9/\u65e5\u672c"),  # printable text stays
    ],
)
async def test_format_and_bidi_controls_are_escaped(logs: Collect, raw: str, logged: str) -> None:
    """Unicode format, bidi and other unprintable characters are escaped in every field, so
    a log viewer cannot show a reordered or hidden line; printable text is kept."""
    agent = raw.encode()
    scope = http_scope(headers=[(b"user-agent", agent), (b"x-note", agent)])
    scope.update(path=raw, raw_path=raw.encode())  # as a server decodes it
    await Channel().run(make(RecordingApp(), log_headers=["x-note"]), scope)
    [fields] = logs.messages
    assert (fields["path"], fields["user_agent"], fields["headers"]["x-note"]) == (logged,) * 3


async def test_the_path_is_bounded(logs: Collect) -> None:
    """A 5 MB path is logged as its first 2048 characters, cut back to a boundary and
    marked; a path of 2048 characters is logged whole."""
    layer = make(RecordingApp())
    await Channel().run(layer, http_scope("/" + "ab/" * 1_700_000))
    await Channel().run(layer, http_scope("/" + "x" * 2047))
    long, exact = (m["path"] for m in logs.messages)
    assert long == "/" + "ab/" * 682 + "[TRUNCATED]"
    assert exact == "/" + "x" * 2047


async def test_a_subject_is_bounded_and_escaped(logs: Collect) -> None:
    """A token's subject is the issuer's text: it is escaped and cut like any field."""

    class User:
        is_authenticated = True

        def __init__(self, sub: str) -> None:
            self.sub = sub

    async def with_user(scope: Any, receive: Any, send: Any) -> None:
        scope["user"] = User(scope["path"][1:])
        await RecordingApp()(scope, receive, send)

    layer = make(with_user)
    await Channel().run(layer, {**http_scope(), "path": "/bob\u202e"})
    await Channel().run(layer, http_scope("/" + "s" * 300))
    assert [m["sub"] for m in logs.messages] == ["bob\\u202e", "[TRUNCATED]"]


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
async def test_a_websocket_denial_response_carries_the_request_id(
    logs: Collect, level: int
) -> None:
    """A websocket refused with a denial response (the ASGI websocket.http.response extension)
    echoes the request id, whether or not records are written."""
    logging.getLogger("test.access").setLevel(level)

    async def deny(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    scope = {**http_scope(headers=[(b"x-request-id", b"ws-1")]), "type": "websocket"}
    sent = await Channel().run(make(deny), scope)
    assert sent[0]["headers"] == [(b"x-request-id", b"ws-1")]
    assert [(m["status"], m["request_id"]) for m in logs.messages] == (
        [(403, "ws-1")] if level == logging.INFO else []
    )
