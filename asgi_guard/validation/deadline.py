"""One watchdog per layer and event loop that cancels body reads past their deadline.

A request only sets a local variable (``reading``) while its body is read. A timer per request
(``asyncio.timeout``) cost about 24,000 instructions a request here, registering the reading
task in a dict about 2,950: more than the whole layer may add. The watchdog, a thread waking a
few times per timeout, has the loop scan its tasks: it walks each task's chain of awaiting
coroutines (``cr_await``) to the layer's frame and reads the local there.

A layer may serve several loops (a server with a loop per thread, or one loop after another):
each thread has the watchdog of its loop, which ends, releasing the loop, once the loop has no
read to watch, stops or closes.
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


class _Watch:
    """The watchdog of one loop: its thread, the reads it has seen, the tasks it cancelled."""

    __slots__ = ("done", "expired", "loop", "seen", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.done = False  # set once: the thread ends and the next read starts another
        self.expired: set[asyncio.Task[Any]] = set()
        self.seen: dict[object, float] = {}  # a layer's coroutine (one per request) -> first seen
        self.thread: threading.Thread | None = None


class _PerThread(threading.local):
    """The watchdog of the loop running in this thread: a thread runs one loop at a time.
    Found per request by a thread-local read, where ``asyncio.get_running_loop`` makes a
    ``getpid`` system call on Python 3.11 (about 0.4 us here)."""

    watch: _Watch | None = None


class Deadlines:
    """The watchdogs of one layer: cancel the tasks whose body read began too long ago."""

    __slots__ = ("_code", "_owner", "_period", "local", "timeout")

    def __init__(self, timeout: float, owner: object, code: CodeType) -> None:
        self.timeout = timeout
        self._period = min(timeout / _CHECKS, 1.0)
        self._owner = owner  # the layer: frames of other instances are not this one's
        self._code = code  # the layer's __call__, where LOCAL lives
        #: Read per request: ``local.watch`` None or done means "call start()".
        self.local = _PerThread()

    def start(self) -> None:
        """Start the watchdog of the running loop (it has none, or its last one ended)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - another event loop library: no deadline
            return
        watch = self.local.watch = _Watch(loop)
        watch.thread = threading.Thread(target=self._tick, args=(watch,), daemon=True)
        watch.thread.start()

    def expired(self) -> bool:
        """Whether the watchdog cancelled the current task; if so, the cancellation is
        withdrawn so that the task can answer 408."""
        task = asyncio.current_task()
        watch = self.local.watch
        if task is None or watch is None or task not in watch.expired:
            return False
        watch.expired.discard(task)
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

    def _tick(self, watch: _Watch) -> None:
        """The watchdog thread: asks the loop for a scan every period. A thread and not a
        task, because a sleeping task keeps a timer in the loop's heap, which every turn of
        the loop then checks (about 900 instructions a request in the benchmark)."""
        loop = watch.loop
        while not watch.done:
            time.sleep(self._period)
            # A stopped loop would queue scans that never run and hold this thread and the
            # loop forever; a closed one refuses them.
            if not loop.is_running():
                watch.done = True
                return
            try:
                loop.call_soon_threadsafe(self._scan, watch)
            except RuntimeError:  # closed meanwhile
                watch.done = True
                return

    def _scan(self, watch: _Watch) -> None:
        """Cancel the reads seen for ``timeout`` (in the loop). Reads are timed from the first
        scan that sees them, so a body is cut off between ``timeout`` and ``timeout +
        period`` after its read began, and the request itself reads no clock."""
        if watch.done:
            return
        now = time.monotonic()
        watch.expired = {task for task in watch.expired if not task.done()}
        seen: dict[object, float] = {}
        for task in asyncio.all_tasks():
            coro = self._reading(task)
            if coro is None:
                continue
            since = seen[coro] = watch.seen.get(coro, now)
            if since + self.timeout <= now and task not in watch.expired:
                watch.expired.add(task)
                task.cancel()
        watch.seen = seen
        if not seen and not watch.expired:
            watch.done = True  # nothing to watch: the thread ends, the next read starts one
