"""Reach a database from any thread: the async ``Database`` and the blocking ``SyncDatabase`` alike.

Widgets and notebook helpers read the graph and subscribe to ``db.events``. The graph belongs to
the database's event loop (the kernel's loop for ``await gdbnb.open()``, a background thread for
``gdbnb.connect()``), and change events are emitted on that loop's thread. So every read of the
graph, and every widget update that must be ordered with change events, runs on that thread:
``call`` waits for the result, ``submit`` does not.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

from ..errors import ClosedError

__all__ = ["DatabaseAccess", "access"]

T = TypeVar("T")


class DatabaseAccess:
    """The async Database behind ``db`` and a way to run code on its loop thread."""

    def __init__(self, db: Any, *, timeout: float = 30.0) -> None:
        from ..database import Database
        from ..sync_api import SyncDatabase

        if isinstance(db, SyncDatabase):
            self.db: Database = db.db
            self.loop: asyncio.AbstractEventLoop | None = db.loop
        elif isinstance(db, Database):
            self.db = db
            # Database keeps its loop privately; it is set once opened and never changes.
            self.loop = getattr(db, "_loop", None)
        else:
            raise TypeError(f"expected a gdbnb Database or SyncDatabase, not {type(db).__name__}")
        self.original = db
        self.timeout = timeout

    @property
    def events(self) -> Any:
        return self.db.events

    @property
    def network(self) -> Any:
        return self.db.network

    def on_loop_thread(self) -> bool:
        """True when code may touch the graph directly (its loop's thread, or no running loop)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return True
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            pass
        # a running loop we are not inside: is this still its thread (a plain call in a kernel cell)?
        return getattr(loop, "_thread_id", None) == threading.get_ident()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the loop thread; blocks until it returns (or raises)."""
        if self.on_loop_thread():
            return fn(*args)
        assert self.loop is not None
        fut: Future[T] = Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # handed to the caller
                fut.set_exception(e)

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError as e:  # loop closed
            raise ClosedError(f"database {self.db.room!r} is closed") from e
        return fut.result(self.timeout)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread soon (now when already there); never blocks."""
        if self.on_loop_thread():
            fn(*args)
            return
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is gone: the database is closed, nothing to update

    def run(self, coro: Any) -> Any:
        """Await ``coro`` on the database's loop from another thread (blocking)."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError("cannot block on the database's own loop thread: use the async API there")
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(self.timeout)


def access(db: Any) -> DatabaseAccess:
    """``DatabaseAccess(db)``, passing an existing one through."""
    return db if isinstance(db, DatabaseAccess) else DatabaseAccess(db)
