"""One watchdog per layer that cancels body reads past their deadline.

A request only sets a local variable (``reading``) while its body is read. A timer per request
(``asyncio.timeout``) cost about 24,000 instructions a request here, registering the reading
task in a dict about 2,950: more than the whole layer may add. The watchdog, a thread waking a
few times per timeout, has the loop scan its tasks: it walks each task's chain of awaiting
coroutines (``cr_await``) to the layer's frame and reads the local there.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import CodeType
from typing import Any, Final

__all__ = ["Deadlines"]

#: The watchdog wakes this many times per timeout (at most once a second).
_CHECKS: Final = 4
#: The local variable of the layer's ``__call__`` that is True while it reads a body.
LOCAL: Final = "reading"


class Deadlines:
    """The watchdog of one layer: cancels the tasks whose body read began too long ago."""

    __slots__ = ("_code", "_expired", "_owner", "_period", "_seen", "timeout", "watchdog")

    def __init__(self, timeout: float, owner: object, code: CodeType) -> None:
        self.timeout = timeout
        self._period = min(timeout / _CHECKS, 1.0)
        self._owner = owner  # the layer: frames of other instances are not this one's
        self._code = code  # the layer's __call__, where LOCAL lives
        self._expired: set[asyncio.Task[Any]] = set()
        self._seen: dict[object, float] = {}
        self.watchdog: threading.Thread | None = None

    def start(self) -> None:
        """Start the watchdog for the running loop (there is none)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - another event loop library: no deadline
            return
        self._seen = {}
        thread = threading.Thread(target=self._tick, args=(loop,), daemon=True)
        self.watchdog = thread
        thread.start()

    def expired(self) -> bool:
        """Whether the watchdog cancelled the current task; if so, the cancellation is
        withdrawn so that the task can answer 408."""
        task = asyncio.current_task()
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _reading(self, task: asyncio.Task[Any]) -> object | None:
        """The layer's coroutine in ``task`` while it reads a body, or None."""
        coro: Any = task.get_coro()
        while coro is not None:
            if getattr(coro, "cr_code", None) is self._code:
                frame = coro.cr_frame
                if frame is not None and frame.f_locals.get("self") is self._owner:
                    return coro if frame.f_locals.get(LOCAL) is True else None
            coro = getattr(coro, "cr_await", None)
        return None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watchdog thread: asks the loop for a scan every period. A thread and not a
        task, because a sleeping task keeps a timer in the loop's heap, which every turn of
        the loop then checks (about 900 instructions a request in the benchmark)."""
        me = threading.current_thread()
        while self.watchdog is me:
            time.sleep(self._period)
            try:
                loop.call_soon_threadsafe(self._scan, me)
            except RuntimeError:  # the loop is closed: a new one starts its own watchdog
                if self.watchdog is me:
                    self.watchdog = None
                return

    def _scan(self, thread: threading.Thread) -> None:
        """Cancel the reads seen for ``timeout`` (in the loop). Reads are timed from the first
        scan that sees them, so a body is cut off between ``timeout`` and ``timeout +
        period`` after its read began, and the request itself reads no clock."""
        if self.watchdog is not thread:
            return
        now = time.monotonic()
        self._expired = {task for task in self._expired if not task.done()}
        seen: dict[object, float] = {}  # a layer's coroutine (one per request) -> first seen
        for task in asyncio.all_tasks():
            coro = self._reading(task)
            if coro is None:
                continue
            since = seen[coro] = self._seen.get(coro, now)
            if since + self.timeout <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._seen = seen
        if not seen:
            self.watchdog = None  # nothing to watch: the thread ends, the next read starts one
