"""The blocking facade: the same Database, run on its own event loop in a background thread.

Works in scripts and inside a running Jupyter kernel (whose loop is never touched or patched):
each call is sent to the background loop with ``run_coroutine_threadsafe`` and waited on.
Callbacks (realtime ``map``/``get``) run on the background thread.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

from .database import Database
from .errors import ClosedError

__all__ = ["SyncDatabase", "connect", "LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self, name: str = "gdbnb-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("blocking call from the database's own loop thread (a callback?): use the async API there")
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


class SyncDatabase:
    """Blocking twin of :class:`~gdbnb.database.Database` (same methods, same results)."""

    def __init__(self, room: str, *, path: str | Path | None | bool = None, rtc: bool = False,
                 timeout: float | None = 60.0, **options: Any) -> None:
        self._thread = LoopThread(f"gdbnb-{room}")
        self._timeout = timeout
        try:
            self._db: Database = self._thread.run(Database(room, path=path, rtc=rtc, **options)._open(), timeout)
        except BaseException:
            self._thread.stop()
            raise

    @property
    def db(self) -> Database:
        """The async Database behind this facade (use it from its loop only)."""
        return self._db

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._thread.loop

    @property
    def room(self) -> str:
        return self._db.room

    @property
    def events(self) -> Any:
        return self._db.events

    @property
    def network(self) -> Any:
        return self._db.network

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._db.closed:
            coro.close()
            raise ClosedError(f"database {self._db.room!r} is closed")
        return self._thread.run(coro, self._timeout)

    def put(self, value: Any, id: str | None = None) -> str:
        return self._run(self._db.put(value, id))

    def get(self, id: str, callback: Callable[[Any], Any] | None = None) -> Any:
        return self._run(self._db.get(id, callback))

    def link(self, source_id: str, target_id: str) -> bool:
        return self._run(self._db.link(source_id, target_id))

    def remove(self, id: str) -> bool:
        return self._run(self._db.remove(id))

    def clear(self) -> None:
        return self._run(self._db.clear())

    def map(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = self._run(self._db.map(*args, **kwargs))
        unsub = result.get("unsubscribe")
        if unsub is not None:
            loop = self._thread.loop
            result["unsubscribe"] = lambda: loop.call_soon_threadsafe(unsub)
        return result

    def use(self, middleware: Callable[[list[dict[str, Any]]], Any]) -> None:
        self._db.use(middleware)

    def flush(self) -> None:
        self._run(self._db.flush())

    def stats(self) -> dict[str, Any]:
        return self._run(_call_soon(self._db.stats))

    def call(self, fn: Callable[[Database], Coroutine[Any, Any, T]]) -> T:
        """Run ``await fn(db)`` on the database's loop (for anything not wrapped here)."""
        return self._run(fn(self._db))

    def close(self) -> None:
        if not self._db.closed:
            self._thread.run(self._db.close(), self._timeout)
        self._thread.stop()

    def __enter__(self) -> "SyncDatabase":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._db.closed else "open"
        return f"<SyncDatabase room={self._db.room!r} {state}>"


async def _call_soon(fn: Callable[[], T]) -> T:
    return fn()


def connect(room: str, *, path: str | Path | None | bool = None, rtc: bool = False, **options: Any) -> SyncDatabase:
    """Open ``room`` behind the blocking facade (scripts, notebooks without ``await``)."""
    return SyncDatabase(room, path=path, rtc=rtc, **options)
