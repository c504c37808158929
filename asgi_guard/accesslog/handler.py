"""Where access records go: :class:`JSONLinesHandler`, and the start-up check that some
handler receives them (the access log is never silently off)."""

from __future__ import annotations

import codecs
import contextlib
import io
import logging
import os
import sys
from typing import Any, Final, Literal

__all__ = ["JSONLinesHandler", "Output", "prepare_output", "receives"]

#: What a layer does at start-up about where its records go (see :func:`prepare_output`).
Output = Literal["auto", "stdout", "logging"]
OUTPUTS: Final = ("auto", "stdout", "logging")


class JSONLinesHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each access record's JSON message as one line, without a Formatter pass.

    The fastest way to ship the access log to stdout or a file: when only plain
    JSONLinesHandlers (and no filters) would see an access record, the line is written to
    them without building a ``LogRecord``: the UTF-8 bytes orjson made go to the file
    descriptor of a UTF-8 text stream in one ``write``. Other records are formatted as usual.
    """

    terminator = "\n"
    #: The descriptor under ``stream`` when lines may be written to it as UTF-8 bytes.
    _fd: int | None = None

    @property
    def stream(self) -> Any:
        return self._stream

    @stream.setter
    def stream(self, stream: Any) -> None:
        # StreamHandler.__init__ and setStream assign here: the fast path is decided once per
        # stream, never per line. Only a plain UTF-8 text file takes the bytes the text would
        # have become (a subclass may do more in write; "\n" is the JSON Lines separator
        # whatever newline the file was opened with).
        self._stream = stream
        self._fd = None
        if type(stream) is io.TextIOWrapper and os.linesep == "\n":
            with contextlib.suppress(LookupError, OSError, ValueError):
                if codecs.lookup(stream.encoding).name == "utf-8":
                    self._fd = stream.fileno()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = (
                record.msg if type(record.msg) is str and not record.args else self.format(record)
            )
            stream = self.stream
            stream.write(message + self.terminator)
            stream.flush()
        except Exception:  # the logging package's own contract: report, never raise
            self.handleError(record)

    def write_bytes(self, line: bytes) -> None:
        """Write one UTF-8 line (ending in a newline) and flush; the caller holds the lock."""
        stream = self.stream
        fd = self._fd
        if fd is None:
            stream.write(line.decode())
            stream.flush()
            return
        # Whatever was written through the stream goes out first, in order; a closed stream
        # raises here, before its descriptor (maybe reused by now) is written to.
        stream.flush()
        written = os.write(fd, line)
        while written < len(line):  # a pipe may take part of it (os.write retries EINTR)
            if written <= 0:  # nothing taken: report it rather than spin
                raise OSError("the stream took no bytes")
            line = line[written:]
            written = os.write(fd, line)


def receives(logger: logging.Logger, level: int) -> bool:
    """Whether a record of ``level`` on ``logger`` reaches some handler, as ``Logger.handle``
    would pass it on (``logging.lastResort``, which shows only warnings, does not count)."""
    if not logger.isEnabledFor(level) or logger.disabled:
        return False
    current: logging.Logger | None = logger
    while current is not None:
        if any(level >= handler.level for handler in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False


def _chosen_level(logger: logging.Logger, level: int) -> bool:
    """Whether records of ``level`` are off by a choice made in logging: a level set on the
    logger or an ancestor other than the root (whose WARNING is only logging's default),
    ``Logger.disabled`` or ``logging.disable``."""
    if logger.disabled or logger.manager.disable >= level:
        return True
    current: logging.Logger | None = logger
    while current is not None and current.parent is not None:
        if current.level:
            return current.level > level
        current = current.parent
    return False


def _to_stdout(logger: logging.Logger, level: int) -> None:
    """Send the logger's records (from ``level``) to a JSONLinesHandler on stdout."""
    if not any(
        type(handler) is JSONLinesHandler and handler.stream is sys.stdout
        for handler in logger.handlers
    ):
        logger.addHandler(JSONLinesHandler(sys.stdout))
    if not logger.level or logger.level > level:
        logger.setLevel(level)
    # Not also to handlers the app adds later to the root: one line per request, not two.
    logger.propagate = False


def prepare_output(logger: logging.Logger, level: int, output: Output) -> None:
    """Make sure records of ``level`` on ``logger`` go somewhere, once, at start-up.

    - ``"auto"``: when no handler would receive them (and no level set in logging turns them
      off on purpose), write them as JSON lines to stdout; when handlers exist but the root's
      default WARNING level hides them, set the logger's level.
    - ``"stdout"``: write them as JSON lines to stdout, whatever else receives them.
    - ``"logging"``: leave logging as it is; warn once, now, when nothing receives them.
    """
    if output == "stdout":
        _to_stdout(logger, level)
        return
    if receives(logger, level) or _chosen_level(logger, level):
        return
    if output == "auto":
        if any(level >= h.level for h in _handlers(logger)):
            logger.setLevel(level)  # handlers exist: only the root's default level hid them
        else:
            _to_stdout(logger, level)
        return
    logging.getLogger("asgi_guard").warning(
        "asgi_guard: no handler receives the access records of logger %r at level %s: the"
        " access log is off. Configure logging for it, or use output='auto' or 'stdout'.",
        logger.name,
        logging.getLevelName(level),
    )


def _handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record on ``logger`` would be offered, up the propagation chain."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found
