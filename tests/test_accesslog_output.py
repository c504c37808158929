"""The access log is never silently off: where records go when logging sends them nowhere."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import pytest

from asgi_guard import AccessLogMiddleware, ConfigurationError, JSONLinesHandler, check
from asgi_guard.accesslog import prepare_output, receives

from .conftest import RecordingApp, client_for, free_port

pytestmark = pytest.mark.anyio
_names = iter(range(1_000_000))


@pytest.fixture
def fresh() -> logging.Logger:
    """A logger in a logging hierarchy of its own, set up as a fresh process's is (a root at
    WARNING and no handler anywhere): the test runner's capture handlers never reach it."""
    manager = logging.Manager(logging.RootLogger(logging.WARNING))
    return manager.getLogger(f"app.access.{next(_names)}")


async def test_auto_writes_json_lines_to_stdout_when_nothing_receives(
    fresh: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """output="auto" with no handler: a JSONLinesHandler on stdout, the level set, and the
    records written there, one JSON object a line."""
    assert not receives(fresh, logging.INFO)
    layer = AccessLogMiddleware(RecordingApp(), logger=fresh, output="auto")
    [handler] = fresh.handlers
    assert type(handler) is JSONLinesHandler
    assert (handler.stream, fresh.level, fresh.propagate) == (sys.stdout, logging.INFO, False)
    assert receives(fresh, logging.INFO)
    prepare_output(fresh, logging.INFO, "auto")  # a second layer: nothing more
    assert len(fresh.handlers) == 1
    async with client_for(layer) as client:
        response = await client.get("/a?token=abcdefgh")
    [line] = capsys.readouterr().out.splitlines()
    record = orjson.loads(line)
    assert (record["path"], record["query"], record["request_id"]) == (
        "/a",
        "token=[REDACTED]",
        response.headers["x-request-id"],
    )


def test_auto_sets_the_level_when_handlers_exist(fresh: logging.Logger) -> None:
    """output="auto" where a handler exists but the root's default WARNING hides INFO (as
    after ``logging.basicConfig()``): the logger's level is set, no handler added."""
    root = fresh.manager.root
    handler = logging.NullHandler()
    root.addHandler(handler)
    assert fresh.getEffectiveLevel() == logging.WARNING
    assert not receives(fresh, logging.INFO)
    prepare_output(fresh, logging.INFO, "auto")
    assert (fresh.level, fresh.handlers, root.handlers) == (logging.INFO, [], [handler])
    assert receives(fresh, logging.INFO)


def test_a_level_chosen_in_logging_is_respected(fresh: logging.Logger) -> None:
    """output="auto" leaves a logger whose level was set above the records' alone: that is
    the way to turn the access log off."""
    fresh.setLevel(logging.WARNING)
    prepare_output(fresh, logging.INFO, "auto")
    assert (fresh.level, fresh.handlers) == (logging.WARNING, [])


def test_stdout_always_adds_the_stdout_handler_once(fresh: logging.Logger) -> None:
    """output="stdout": a JSONLinesHandler on stdout besides the handlers there are, once."""
    other = logging.NullHandler()
    fresh.addHandler(other)
    fresh.setLevel(logging.INFO)
    prepare_output(fresh, logging.INFO, "stdout")
    prepare_output(fresh, logging.INFO, "stdout")
    assert fresh.handlers[0] is other
    assert [type(h) for h in fresh.handlers[1:]] == [JSONLinesHandler]


def test_logging_output_warns_once_at_start_up(
    fresh: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """output="logging" (the class's default) with nothing receiving: one warning when the
    layer is built, and logging is left as it was."""
    with caplog.at_level(logging.WARNING, "asgi_guard"):
        AccessLogMiddleware(RecordingApp(), logger=fresh)
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "asgi_guard",
            "WARNING",
            f"asgi_guard: no handler receives the access records of logger {fresh.name!r} at"
            " level INFO: the access log is off. Configure logging for it, or use"
            " output='auto' or 'stdout'.",
        )
    ]
    assert (fresh.handlers, fresh.level) == ([], logging.NOTSET)


def test_bad_output_is_refused(fresh: logging.Logger) -> None:
    """An unknown output fails at construction, named."""
    with pytest.raises(ConfigurationError, match=r"^output: must be one of auto, stdout, logging"):
        AccessLogMiddleware(RecordingApp(), logger=fresh, output="file")  # type: ignore[arg-type]


def test_check_reports_an_access_log_nothing_receives() -> None:
    """``check``: AG016 when output = "logging" and no handler receives the records; none
    with the default output, which writes them to stdout then."""
    logger = logging.getLogger(f"test.output.check.{next(_names)}")
    logger.propagate = False  # made during the test: no capture handler is added to it
    section = {"logger": logger.name, "output": "logging"}
    found = [f for f in check({"access_log": section}, environ={}) if f.code == "AG016"]
    assert [(f.level, f.message) for f in found] == [
        (
            "warning",
            f"access_log.output = 'logging' and no logging handler receives the records of"
            f" {logger.name!r} at INFO in this process: the access log is off unless the app"
            " configures logging before guard() runs.",
        )
    ]
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert "AG016" not in {f.code for f in check({"access_log": section}, environ={})}
    finally:
        logger.removeHandler(handler)
    assert "AG016" not in {
        f.code for f in check({"access_log": {"logger": logger.name + ".auto"}}, environ={})
    }


_APP = """
from asgi_guard import guard


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


guarded = guard(app, {"access_log": {}})
"""


def _get(url: str, **options: object) -> httpx.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return httpx.get(url, timeout=2, **options)  # type: ignore[arg-type]
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_plain_uvicorn_logs_every_request_with_ids(tmp_path: Path, http: str) -> None:
    """``uvicorn app:guarded`` with an [access_log] section and no logging set up: one JSON
    line a request on stdout, redacted and bounded, and X-Request-ID made or echoed."""
    (tmp_path / "guarded_app.py").write_text(textwrap.dedent(_APP))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "guarded_app:guarded", "--port", str(port)]
    argv += ["--http", http, "--no-access-log", "--lifespan", "off"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        base = f"http://127.0.0.1:{port}"
        made = _get(f"{base}/x?apikey=k3y-s3cr3t-v4lu3&page=2")
        echoed = _get(f"{base}/y", headers={"x-request-id": "client-id-1"})
        long = _get(f"{base}/{'a/' * 20_000}")
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert (made.status_code, echoed.status_code, long.status_code) == (200, 200, 200)
    assert echoed.headers["x-request-id"] == "client-id-1"
    records = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["path"], r["query"], r["request_id"]) for r in records[:2]] == [
        ("/x", "apikey=[REDACTED]&page=2", made.headers["x-request-id"]),
        ("/y", "", "client-id-1"),
    ]
    assert records[2]["path"] == "/" + "a/" * 1023 + "[TRUNCATED]"
    assert b"k3y-s3cr3t" not in out + err
