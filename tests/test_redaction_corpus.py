"""The access log against a corpus of credential-bearing requests: not one secret written."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus

import pytest

from asgi_guard import AccessLogMiddleware

from .conftest import Channel, RecordingApp
from .test_accesslog import Collect

pytestmark = pytest.mark.anyio

CORPUS: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).parent / "redaction_corpus.toml").read_text(encoding="utf-8")
)["case"]
#: Headers the corpus layer puts in its records (the credential ones are redacted by name,
#: the others by the shape of what they hold).
LOGGED = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "dpop",
    "x-api-key",
    "x-auth-token",
    "api-key",
    "x-csrf-token",
    "x-amz-security-token",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-debug-context",
    "x-client-context",
    "x-forwarded-authorization",
]
#: Pieces this long of a secret are looked for: shorter ones occur in any text by chance.
PIECE = 8


@pytest.fixture
def records() -> Iterator[Collect]:
    logger = logging.getLogger("test.corpus")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def scope_for(target: str, headers: dict[str, str]) -> dict[str, Any]:
    """The scope a server makes of this request target: uvicorn and hypercorn percent-decode
    the path and keep the query's bytes as sent."""
    raw_path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "root_path": "",
        "query_string": query.encode("latin-1"),
        "headers": [(b"host", b"api.example")]
        + [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("203.0.113.9", 50000),
        "server": ("api.example", 443),
    }


def written(record: logging.LogRecord) -> str:
    """Everything a handler or formatter could write of a record: its message and every
    attribute, also percent-decoded (a secret sent encoded must not be written encoded)."""
    text = record.getMessage() + " " + " ".join(f"{k}={v!r}" for k, v in vars(record).items())
    return text + " " + unquote_plus(text)


def leaks(secret: str, text: str) -> list[str]:
    """The pieces of ``secret`` (all of it when short) found in ``text``."""
    if len(secret) <= PIECE:
        return [secret] if secret in text else []
    return [
        secret[i : i + PIECE]
        for i in range(len(secret) - PIECE + 1)
        if secret[i : i + PIECE] in text
    ]


def test_the_corpus_is_what_the_docs_say() -> None:
    """Every case names its source and carries a secret; names are unique; 145 cases."""
    assert len(CORPUS) == 145
    assert len({case["name"] for case in CORPUS}) == len(CORPUS)
    for case in CORPUS:
        assert case["source"], case["name"]
        assert case["secrets"], case["name"]
        assert set(case) <= {"name", "source", "target", "headers", "secrets"}, case["name"]


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
async def test_no_secret_of_the_corpus_is_written(records: Collect, case: dict[str, Any]) -> None:
    """A request carrying credentials gives one record in which no piece of them appears,
    in the message or in any attribute, and the record shows where something was redacted."""
    layer = AccessLogMiddleware(RecordingApp(), logger="test.corpus", log_headers=LOGGED)
    await Channel().run(layer, scope_for(case["target"], case.get("headers", {})))
    [record] = records.records
    text = written(record)
    found = {secret: pieces for secret in case["secrets"] if (pieces := leaks(secret, text))}
    assert found == {}
    assert "[REDACTED]" in record.getMessage()
