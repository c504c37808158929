"""ValidationMiddleware and its parts against hostile bodies, patterns and loops."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from asgi_guard import ValidationMiddleware
from asgi_guard.validation.body import _STRING, too_deep

from .conftest import RecordingApp, client_for

pytestmark = pytest.mark.anyio

#: An unterminated string of escaped quotes behind more openers than the depth limit.
_ESCAPED_QUOTES = b"[" * 65 + b'"' + b'\\"' * 500_000


def test_unterminated_string_is_one_match_to_the_end() -> None:
    """An unterminated JSON string is matched once, to the end of the body, so the depth scan
    never searches again from each escaped quote inside it (quadratic time)."""
    body = b'"' + b'\\"' * 10 + b"\\"
    match = _STRING.match(body)
    assert match is not None
    assert match.end() == len(body)
    assert _STRING.sub(b"", b'[["a\\"b"], "\\"') == b"[[], "


def test_depth_scan_of_escaped_quotes_is_linear() -> None:
    """A 1 MB body of escaped quotes in an unterminated string behind 65 openers is scanned
    (it took about 55 s of the event loop per 80 KB before); unbalanced, it is left to the
    decoder, which refuses it."""
    assert too_deep(_ESCAPED_QUOTES, 64) is False
    assert too_deep(b"[" * 65 + b'"]]]"' + b"]" * 65, 64) is True
    assert too_deep(b"[" * 64 + b'"[[[["' + b"]" * 64, 64) is False


async def test_escaped_quotes_body_is_refused_not_hung() -> None:
    """The hostile body reaches a 400 validation.malformed, and the app is not called."""
    app = RecordingApp()
    mw = ValidationMiddleware(app, schemas={"POST /x": list[Any]}, max_body_size=2**21)
    async with client_for(mw) as client:
        response = await client.post(
            "/x", content=_ESCAPED_QUOTES, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert orjson.loads(response.content)["code"] == "validation.malformed"
    assert app.calls == 0
