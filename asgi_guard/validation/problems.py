"""The answers of the validation layer: RFC 9457 problems with stable codes."""

from __future__ import annotations

from typing import Final

from .._asgi import Problem

__all__ = [
    "AMBIGUOUS",
    "BAD_QUERY",
    "CLOSE",
    "EMPTY",
    "ENCODING",
    "INVALID_BODY",
    "INVALID_QUERY",
    "MALFORMED",
    "MEDIA_TYPE",
    "TIMEOUT",
    "TOO_DEEP",
    "TOO_LARGE",
]

TOO_LARGE: Final = Problem(
    413, "validation.too_large", "Content Too Large", "The request body is larger than allowed."
)
MEDIA_TYPE: Final = Problem(
    415,
    "validation.unsupported_media_type",
    "Unsupported Media Type",
    "The request body must be UTF-8 JSON (application/json or a +json type).",
)
ENCODING: Final = Problem(
    415,
    "validation.unsupported_encoding",
    "Unsupported Media Type",
    "Compressed request bodies are not accepted.",
)


def malformed(detail: str) -> Problem:
    return Problem(400, "validation.malformed", "Bad Request", detail)


MALFORMED: Final = malformed("The request body is not valid JSON.")
EMPTY: Final = malformed("A JSON request body is required.")
TOO_DEEP: Final = malformed("The request body is nested too deeply.")
AMBIGUOUS: Final = malformed(
    "The request has more than one Content-Type, or conflicting Content-Length fields."
)
BAD_QUERY: Final = malformed("The query string is malformed.")
INVALID_BODY: Final = Problem(
    422,
    "validation.invalid_body",
    "Unprocessable Content",
    "The request body does not match the schema.",
)
TIMEOUT: Final = Problem(
    408,
    "validation.body_timeout",
    "Request Timeout",
    "The request body was not received in time.",
)
#: The connection cannot carry another request after a body cut short (RFC 9110 15.5.9).
CLOSE: Final = ((b"connection", b"close"),)
INVALID_QUERY: Final = Problem(
    422,
    "validation.invalid_query",
    "Unprocessable Content",
    "The query string does not match the schema.",
)
