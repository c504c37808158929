"""Request ids: kept from a safe ``X-Request-ID`` or made, and visible to the app's own logs."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import weakref
from collections.abc import Iterator
from typing import Final

__all__ = ["SAFE_ID", "IdMaker", "RequestIdFilter", "current_request_id", "request_id_var"]

#: An incoming request id kept as it is: short, and harmless in a header, a log or a URL.
SAFE_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "asgi_guard_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or None."""
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``"-"``) to every record.

    Attach it to a handler so the app's own log lines carry the same id as the access log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


def _new_prefix() -> str:
    """The random per-process part of generated request ids."""
    return os.urandom(6).hex() + "-"


class IdMaker:
    """Request ids for one layer: a safe incoming id is kept, others are made from a random
    per-process prefix and a counter (unique, and cheap to make)."""

    __slots__ = ("__weakref__", "counter", "prefix")

    def __init__(self) -> None:
        self.prefix = _new_prefix()
        self.counter: Iterator[int] = itertools.count(1)
        _MAKERS.add(self)

    def __call__(self, incoming: bytes | None) -> str:
        """The id of a request that sent ``incoming`` (None: no such header)."""
        if incoming is not None and len(incoming) <= 64:
            rid = incoming.decode("latin-1")
            if SAFE_ID.fullmatch(rid):
                return rid
        return self.prefix + str(next(self.counter))


#: Every live maker, so that a forked worker makes its own prefix (a layer built before the
#: fork, as with ``gunicorn --preload``, would otherwise give every worker the same prefix and
#: counter, and so the same ids).
_MAKERS: weakref.WeakSet[IdMaker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for maker in list(_MAKERS):
        maker.prefix = _new_prefix()
        maker.counter = itertools.count(1)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
