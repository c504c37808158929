"""One redacted, structured access-log record per request, with request ids.

- :mod:`~asgi_guard.accesslog.middleware`: the layer, :class:`AccessLogMiddleware`.
- :mod:`~asgi_guard.accesslog.redaction`: what a record never holds, and the rules that say so.
- :mod:`~asgi_guard.accesslog.handler`: :class:`JSONLinesHandler` and where records go.
- :mod:`~asgi_guard.accesslog.requestid`: request ids and :class:`RequestIdFilter`.
- :mod:`~asgi_guard.accesslog.writer`: writing one record.
"""

from __future__ import annotations

from .handler import JSONLinesHandler, prepare_output, receives
from .middleware import AccessLogMiddleware
from .redaction import (
    CREDENTIAL_SHAPES,
    REDACTED,
    SENSITIVE_NAMES,
    SENSITIVE_PARTS,
    TRUNCATED,
    redact_query,
)
from .redaction import text as _text
from .requestid import RequestIdFilter, current_request_id

__all__ = [
    "CREDENTIAL_SHAPES",
    "REDACTED",
    "SENSITIVE_NAMES",
    "SENSITIVE_PARTS",
    "TRUNCATED",
    "AccessLogMiddleware",
    "JSONLinesHandler",
    "RequestIdFilter",
    "current_request_id",
    "prepare_output",
    "receives",
    "redact_query",
]
# For the fuzz targets, which feed header bytes through the same decoding as the layer.
__all__ += ["_text"]
