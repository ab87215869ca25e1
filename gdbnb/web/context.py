"""The state the web handlers are parameterised by: rooms, their event hubs, the auth policy.

One ``GdbWebContext`` per mount. The standalone server holds one room; the Jupyter extension
may hold several (``add_room`` / ``remove_room`` at any time). The handlers reach every
Database through :meth:`GdbWebContext.call`, so a Database living on another event loop (the
blocking facade's background thread) works as well as one on the server's loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from .auth import AllowAll, AuthPolicy, http_error
from .hub import EventHub

__all__ = ["GdbWebContext"]

T = TypeVar("T")


@dataclass
class GdbWebContext:
    """Rooms (``room -> Database``), their SSE hubs and the auth hook of one mount."""

    auth: AuthPolicy = field(default_factory=AllowAll)
    default_room: str | None = None
    #: extra facts shown by ``/api/status`` (e.g. the relay URL apps should use)
    info: dict[str, Any] = field(default_factory=dict)
    sse_keepalive: float = 15.0
    sse_buffer: int = 1000
    sse_client_queue: int = 1000
    rooms: dict[str, Any] = field(default_factory=dict)
    hubs: dict[str, EventHub] = field(default_factory=dict)

    def add_room(self, db: Any, *, default: bool = False) -> EventHub:
        """Serve ``db`` (a ``Database``; or a ``SyncDatabase``, whose async core is used).

        Call on the loop serving HTTP: the room's event hub subscribes there.
        """
        inner = getattr(db, "db", None)  # SyncDatabase -> its Database
        if inner is not None and hasattr(inner, "events"):
            db = inner
        room = db.room
        old = self.hubs.pop(room, None)
        if old is not None:
            old.close()
        self.rooms[room] = db
        hub = EventHub(db, buffer_size=self.sse_buffer, client_queue=self.sse_client_queue)
        hub.start()
        self.hubs[room] = hub
        if default or self.default_room is None:
            self.default_room = room
        return hub

    def remove_room(self, room: str) -> None:
        hub = self.hubs.pop(room, None)
        if hub is not None:
            hub.close()
        self.rooms.pop(room, None)
        if self.default_room == room:
            self.default_room = next(iter(self.rooms), None)

    def close(self) -> None:
        """Close every SSE stream (the databases belong to the caller)."""
        for hub in self.hubs.values():
            hub.close()

    def database(self, room: str | None = None) -> Any:
        """The Database of ``room`` (default room when None); 404 when it is not served."""
        name = room if room is not None else self.default_room
        db = self.rooms.get(name) if name is not None else None
        if db is None:
            raise http_error(404, f"no such room: {name!r}" if name else "no room served")
        return db

    def hub(self, room: str | None = None) -> EventHub:
        db = self.database(room)
        return self.hubs[db.room]

    async def call(self, db: Any, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn()`` (a coroutine function using ``db``) on the loop ``db`` belongs to."""
        loop = getattr(db, "_loop", None)
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - handlers always run in a loop
            current = None
        if loop is None or loop is current or not loop.is_running():
            return await fn()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(), loop))  # type: ignore[arg-type]
