"""Reading a JSON body's envelope: media type, nesting depth, and 422 entries without echo."""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Final

import msgspec

from .json_schema import safe_loc

__all__ = ["check_media_type", "error_entry", "too_deep"]

#: A JSON string, unrolled (``"[^"\\]*(?:\\.[^"\\]*)*"``) so runs of plain characters cost one
#: step each: about 10 times faster than one alternation per character on long strings. An
#: unterminated string also matches, to the end of the body: were it a failed match, the search
#: would start again at every later (escaped) quote, quadratic time (``[`` * 65 + ``"`` +
#: ``\\"`` * 40,000, 80 KB: 55 s of the event loop).
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
#: Openers become +1 and closers -1 (as signed bytes); every other byte is deleted.
_SIGNS: Final = bytes(1 if b in b"[{" else 255 if b in b"]}" else 0 for b in range(256))
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
#: msgspec's messages whose tail quotes the submitted input: keep only their fixed part.
_ECHOING: Final = (("Invalid enum value", "Invalid enum value"),)
_UNKNOWN_FIELD: Final = re.compile(r"Object contains unknown field `(.*)`\Z", re.DOTALL)


def too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON nests deeper than ``max_depth`` (strings are not counted).

    Linear: one regex pass drops strings, one ``translate`` keeps the brackets as +1/-1, and
    the deepest point is the largest running sum, all in C (a 1 MiB body of brackets: about
    40 ms, against 0.3 s for peeling one level per pass; ``benchmarks/nesting.py``).
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # cannot be deeper than the number of openers: the common, cheap case
    shape = _STRING.sub(b"", body).translate(_SIGNS, _NOT_BRACKETS)
    if shape.count(1) != shape.count(255):
        return False  # unbalanced: malformed, and msgspec stops at the recursion limit
    return max(accumulate(array("b", shape)), default=0) > max_depth


def check_media_type(value: bytes | None) -> bool:
    """application/json or application/*+json, with at most a utf-8 charset (RFC 8259 8.1)."""
    if value is None:
        return False
    media, *params = value.decode("latin-1").split(";")
    media = media.strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        return False
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "charset" and raw.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def error_entry(error: msgspec.ValidationError, root: str) -> dict[str, str]:
    """``{loc, msg}`` from a msgspec error, never echoing submitted values.

    An unknown member is named in ``loc`` (``$.is_admin``) when its name is short and
    printable, as :func:`safe_loc` decides; its value is never shown.
    """
    text = str(error)
    message, found, loc = text.rpartition(" - at `")  # the last: a member name may hold one
    if not found:
        message, loc = text, ""
    loc = loc[:-1] if loc.endswith("`") else loc
    loc = loc or "$"
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        message = "Unknown member"
        loc += safe_loc([unknown.group(1)])[1:]
    for prefix, fixed in _ECHOING:
        if message.startswith(prefix):
            message = fixed
    if "'" in message:  # any other quoted fragment may come from the input
        message = message[: message.index("'")].rstrip()
    return {"loc": root + loc[1:] if root else loc, "msg": message}
