"""Call a flush function at most every ``interval`` seconds, on the database's loop thread.

Change events can come in bursts of thousands (a full-state merge, an import). Widgets collect
them under a lock and ``poke()`` this throttle; the flush then runs once per interval with
everything gathered so far, so the front end receives a few coalesced messages per second
instead of one per change. ``poke()`` may be called from any thread.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from ._access import DatabaseAccess

__all__ = ["Throttle", "DEFAULT_INTERVAL"]

#: seconds between two flushes of one widget
DEFAULT_INTERVAL = 0.1


class Throttle:
    def __init__(self, access: DatabaseAccess, flush: Callable[[], None], interval: float = DEFAULT_INTERVAL) -> None:
        self._access = access
        self._flush = flush
        self.interval = interval
        self._lock = threading.Lock()
        self._armed = False
        self._last = 0.0
        self._closed = False
        self.flushes = 0  # how many flushes ran (tests, diagnostics)

    def poke(self) -> None:
        """Ask for a flush: within ``interval`` of the previous one, never more often."""
        with self._lock:
            if self._armed or self._closed:
                return
            self._armed = True
            delay = max(0.0, self._last + self.interval - time.monotonic())
        loop = self._access.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            self._fire()  # nobody to schedule on (a closed database, or a loop not started yet)
            return
        if self._access.on_loop_thread():
            loop.call_later(delay, self._fire)
        else:
            try:
                loop.call_soon_threadsafe(loop.call_later, delay, self._fire)
            except RuntimeError:  # the loop closed meanwhile
                self._fire()

    def flush_now(self) -> None:
        """Flush at once on the loop thread, waiting for it (tests, ``widget.flush()``)."""
        self._access.call(self._fire)

    def _fire(self) -> None:
        with self._lock:
            self._armed = False
            self._last = time.monotonic()
            if self._closed:
                return
        self.flushes += 1
        self._flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
