"""Writing one access record: to plain JSON-lines handlers directly, or as a ``LogRecord``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any, Final

import orjson

from ..errors import ConfigurationError
from .handler import JSONLinesHandler

__all__ = ["RecordWriter", "could_not_write"]

#: The fraction part of timestamps, made once (formatting it per record costs more).
_MILLIS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_START: Final[float] = logging._startTime  # type: ignore[attr-defined]


def _process_name() -> str:
    """The process name as ``logging.LogRecord`` finds it."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        with contextlib.suppress(Exception):  # as logging: a broken module is no reason to fail
            return str(multiprocessing.current_process().name)
    return "MainProcess"


def could_not_write() -> None:
    """Say on stderr that a record was lost (the response is never changed for it)."""
    sys.stderr.write("asgi_guard: access log record could not be written\n")


class RecordWriter:
    """The logger side of the access log: whether records are wanted, their timestamps, and
    writing them.

    Args:
        logger: a logger or logger name.
        level: the level of the records.
    """

    def __init__(self, logger: logging.Logger | str, level: int) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        if not isinstance(self.logger, logging.Logger):
            raise ConfigurationError("logger", "must be a logging.Logger or a logger name")
        self.level = level
        self._enabled = self.logger.isEnabledFor
        # Logger.isEnabledFor answers from a per-logger dict that logging clears in place
        # whenever a level changes anywhere: reading it directly is a third of the call's
        # cost, on every request. An empty entry (just cleared) asks the logger, which refills
        # it; a Logger subclass with its own isEnabledFor is always asked.
        cache = getattr(self.logger, "_cache", None)
        self._levels: dict[int, bool] = (
            cache
            if type(cache) is dict and type(self.logger).isEnabledFor is logging.Logger.isEnabledFor
            else {}
        )
        # (second, its RFC 3339 text): the date and time are formatted once a second.
        self._second: tuple[int, str] = (-1, "")
        # Everything a LogRecord needs that does not change per request, computed once.
        self._template: dict[str, Any] = {
            "name": self.logger.name,
            "args": (),
            "levelname": logging.getLevelName(level),
            "levelno": level,
            "pathname": __file__,
            "filename": "accesslog.py",
            "module": "accesslog",
            "exc_info": None,
            "exc_text": None,
            "stack_info": None,
            "lineno": 0,
            "funcName": "access",
            "taskName": None,
        }

    def timestamp(self, now: float) -> str:
        """``now`` (seconds since the epoch) as RFC 3339 UTC with milliseconds."""
        second = int(now)
        cached = self._second
        if cached[0] != second:
            cached = self._new_second(second)
        return cached[1] + _MILLIS[int((now - second) * 1000)]

    def _new_second(self, second: int) -> tuple[int, str]:
        self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return self._second

    def emit(self, fields: dict[str, Any], created: float | None = None) -> None:
        """Write one record made at ``created`` (default: now); logging problems never reach
        the request.

        ``fields`` is taken over: when a record is built, it becomes the record's attribute
        dict.
        """
        try:
            line = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
            handlers = self._plain_handlers()
            if handlers is None:
                self.logger.handle(self._record(fields, line, created))
                return
            for handler in handlers:
                # acquire/release rather than ``with``: half the cost, on every record.
                lock = handler.lock
                lock.acquire()  # type: ignore[union-attr]  # Handler.__init__ makes it
                try:
                    handler.write_bytes(line)
                except Exception:
                    handler.handleError(self._record(fields, line, created))
                finally:
                    lock.release()  # type: ignore[union-attr]
        except Exception:  # a broken handler or formatter must not break the request
            could_not_write()

    def _plain_handlers(self) -> list[JSONLinesHandler] | None:
        """The handlers ``Logger.handle`` would pass the record to, when all of them are plain
        :class:`JSONLinesHandler` and no filter is on the way; otherwise None.

        Those handlers write the message and read nothing else of the record, so the line is
        written without building one (about a third of the layer's cost). Walked at every
        record, as ``Logger.callHandlers`` does, because logging announces no config changes.
        """
        logger: logging.Logger | None = self.logger
        assert logger is not None
        if logger.disabled or logger.filters:
            return None
        plain: list[JSONLinesHandler] = []
        found = False
        while logger is not None:
            for handler in logger.handlers:
                if type(handler) is not JSONLinesHandler or handler.filters:
                    return None
                found = True
                if self.level >= handler.level:
                    plain.append(handler)
            logger = logger.parent if logger.propagate else None
        # No handler at all: logging.lastResort decides, as for any record.
        return plain if found else None

    def _record(
        self, fields: dict[str, Any], line: bytes, created: float | None
    ) -> logging.LogRecord:
        """A LogRecord whose attributes are ``fields`` (taken over, no copy) plus the usual."""
        now = time.time() if created is None else created
        # Built directly rather than through Logger.makeRecord, completed from a template.
        fields.update(self._template)
        fields["msg"] = line[:-1].decode()  # the message without its newline
        fields["created"] = now
        fields["msecs"] = (now - int(now)) * 1000
        fields["relativeCreated"] = (now - _START) * 1000
        # Asked per record, as logging does: a worker forked after the layer was built, or a
        # thread whose id was used before, must not inherit another's.
        thread = threading.current_thread()
        fields["thread"] = thread.ident
        fields["threadName"] = thread.name
        fields["process"] = os.getpid()
        fields["processName"] = _process_name()
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = fields
        return record
