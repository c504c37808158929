"""The benchmark harness runs and writes well-formed output (a smoke test: no timing asserted)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from asgi_guard import AccessLogMiddleware, JSONLinesHandler, ValidationMiddleware
from benchmarks.__main__ import main
from benchmarks.instructions import collected
from benchmarks.instructions import main as instructions_main
from benchmarks.minimal import MinimalAccessLog, MinimalValidation

from .conftest import Channel, RecordingApp, http_scope


def test_quick_run_writes_json_and_markdown(tmp_path: Path, capsys: object) -> None:
    """--quick runs the selected groups and writes results.json and results.md with every case."""
    assert (
        main(
            [
                "--quick",
                "--out",
                str(tmp_path),
                "--only",
                "floor",
                "layer:proxy",
                "layer:https",
                "routes",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["meta"]["quick"] is True
    groups = {r["group"] for r in doc["results"]}
    assert groups == {"floor", "layer:proxy", "layer:https", "routes"}
    for result in doc["results"]:
        assert result["median_ns"] > 0
        assert set(result) == {
            "group",
            "case",
            "median_ns",
            "iqr_ns",
            "ratio",
            "overhead_ns",
            "note",
        }
    baselines = [r for r in doc["results"] if r["overhead_ns"] == 0]
    assert len(baselines) == len(groups)
    table = (tmp_path / "results.md").read_text()
    assert table.count("| case | median ns/req | IQR ns | overhead ns | ratio |") == 4
    assert "| ProxyHeaders x-forwarded (trusted peer) |" in table


def _file_logger(name: str, path: Path, handler_class: Any) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.addHandler(handler_class(path.open("w", encoding="utf-8")))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


@pytest.mark.anyio
async def test_minimal_access_log_writes_the_same_record(tmp_path: Path) -> None:
    """The access-log yardstick is a fair one: the same fields, from the same places, as one
    line written per request (only redaction, escaping and the ids' values differ)."""
    real = _file_logger("test.bench.real", tmp_path / "real.log", JSONLinesHandler)
    minimal = _file_logger("test.bench.minimal", tmp_path / "minimal.log", logging.StreamHandler)
    headers = [(b"user-agent", b"bench/1.0"), (b"referer", b"https://example.com/page")]
    sent: dict[str, list[Any]] = {}
    for name, layer in (
        ("real", AccessLogMiddleware(RecordingApp(), logger=real)),
        ("minimal", MinimalAccessLog(RecordingApp(), minimal)),
    ):
        channel = Channel()
        sent[name] = await channel.run(layer, http_scope("/items", headers=headers))
    for logger in (real, minimal):
        for handler in logger.handlers:
            handler.stream.close()  # type: ignore[attr-defined]
        logger.handlers.clear()
    real_line, minimal_line = (
        json.loads((tmp_path / f"{name}.log").read_text()) for name in ("real", "minimal")
    )
    assert list(minimal_line) == list(real_line)
    for changing in ("timestamp", "duration_ms", "request_id"):
        del real_line[changing], minimal_line[changing]
    assert minimal_line == real_line
    assert real_line == {
        "method": "GET",
        "path": "/items",
        "query": "",
        "status": 200,
        "bytes": 2,
        "client": "203.0.113.1",
        "scheme": "https",
        "http_version": None,
        "user_agent": "bench/1.0",
        "referer": "https://example.com/page",
        "sub": None,
        "code": None,
        "ratelimit": None,
        "disconnected": False,
    }
    for messages in sent.values():  # both echo a request id
        assert [key for key, _ in messages[0]["headers"]] == [b"content-type", b"x-request-id"]


@pytest.mark.anyio
async def test_minimal_validation_decodes_and_replays_as_the_layer() -> None:
    """The validation yardstick stores the same decoded value and replays the same body."""
    from benchmarks.groups import ORDER_BODY, POST_HEADERS
    from benchmarks.models import PlainOrder

    results: dict[str, list[Any]] = {}
    for name, layer_of in (
        ("real", lambda app: ValidationMiddleware(app, schemas={"POST /orders": PlainOrder})),
        (
            "minimal",
            lambda app: MinimalValidation(
                app, {"/orders": {"POST": msgspec.json.Decoder(PlainOrder)}}
            ),
        ),
    ):
        seen: list[Any] = []

        async def reader(scope: Any, receive: Any, send: Any, seen: list[Any] = seen) -> None:
            seen.append((scope["state"]["validated_body"], await receive()))
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        channel = Channel([{"type": "http.request", "body": ORDER_BODY}])
        scope = http_scope("/orders", method="POST", headers=list(POST_HEADERS))
        await channel.run(layer_of(reader), scope)
        results[name] = seen
    assert results["minimal"] == results["real"]
    [(value, message)] = results["real"]
    assert isinstance(value, PlainOrder)
    assert message == {"type": "http.request", "body": ORDER_BODY}


def test_instruction_count_is_read_from_a_callgrind_dump() -> None:
    dump = "version: 1\ncmd: python\nevents: Ir\nsummary: 123456789\nfl=(1) x.c\n"
    assert collected(dump) == 123456789
    with pytest.raises(RuntimeError, match="no instruction count"):
        collected("version: 1\nevents: Ir\n")


def test_a_case_runs_alone_as_it_does_under_valgrind(capsys: pytest.CaptureFixture[str]) -> None:
    """The child mode drives one case of one group and prints nothing."""
    assert instructions_main(["--case", "floor", "1", "20"]) == 0
    assert capsys.readouterr().out == ""


def test_headers_and_hosts_groups_run(tmp_path: Path) -> None:
    """The Host allow-list group runs; the security-header group builds beside the HSTS case."""
    from benchmarks.groups import build_groups

    [headers] = build_groups(["layer:headers"])
    assert [c.name for c in headers.cases][1:3] == [
        "HTTPSRedirect https pass-through + HSTS",
        "SecurityHeaders, default set (5 headers)",
    ]
    assert main(["--quick", "--out", str(tmp_path), "--only", "layer:hosts"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert [r["case"] for r in doc["results"]][-1] == "AllowedHosts, refused host (400)"
