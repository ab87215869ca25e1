"""The rooms a Jupyter server keeps: open, join, leave and close them on the server's loop.

``RoomManager`` knows nothing about Jupyter: it opens a :class:`~gdbnb.database.Database` per
room (store in ``data_dir``), registers it with the web context (so ``/gdb/...`` serves it) and
starts its network. Every change of the room set runs under one lock, so a join racing a leave
or the server's shutdown never leaves a store open behind it.

A room whose network cannot start (the WebRTC stack missing, a bad option) stays served from
its store without a network: the data API keeps working and the error is logged and kept in
``network_errors``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ClosedError, ValidationError
from ..store.paths import default_store_path
from ..web.context import GdbWebContext

__all__ = ["RoomSettings", "RoomManager", "check_room_name", "MAX_ROOM_NAME"]

log = logging.getLogger("gdbnb.jupyter")

#: longest room name accepted (characters); GenosDB has no limit, file names and URLs do
MAX_ROOM_NAME = 256


@dataclass(frozen=True)
class RoomSettings:
    """What every room of one server shares (from the extension's traitlets)."""

    data_dir: Path
    #: external relays; None: GenosDB's public list (``gdbnb.wire.nostr.DEFAULT_RELAY_URLS``)
    relay_urls: tuple[str, ...] | None = None
    #: the relay mounted in the Jupyter server, as this process reaches it (None: not used)
    own_relay: str | None = None
    password: str | None = None
    presence: bool = False
    oplog_size: int = 1000
    rtc: bool = True
    loopback: bool = False
    ice_servers: tuple[dict[str, Any], ...] = ()
    #: extra ``SyncNode`` keyword arguments (tests: faster announces)
    node_options: dict[str, Any] = field(default_factory=dict)

    def rtc_options(self, password: str | None) -> dict[str, Any]:
        """Keyword arguments of ``Database.start_network`` (``SyncNode``) for one room."""
        from ..wire.nostr import DEFAULT_RELAY_URLS

        urls = list(DEFAULT_RELAY_URLS) if self.relay_urls is None else list(self.relay_urls)
        if self.own_relay is not None and self.own_relay not in urls:
            urls.append(self.own_relay)
        opts: dict[str, Any] = {"relay_urls": urls, **self.node_options}
        if password:
            opts["password"] = password
        if self.presence:
            opts["presence"] = True
        if self.loopback:
            opts["loopback"] = True
        if self.ice_servers:
            opts["ice_servers"] = [dict(s) for s in self.ice_servers]
        return opts


def check_room_name(room: Any) -> str:
    """``room`` if it is a usable room name, else ``ValidationError``."""
    if not isinstance(room, str) or not room.strip():
        raise ValidationError("room must be a non-empty string")
    if len(room) > MAX_ROOM_NAME:
        raise ValidationError(f"room names are limited to {MAX_ROOM_NAME} characters")
    if any(ord(c) < 0x20 for c in room):
        raise ValidationError("room names cannot hold control characters")
    return room


class RoomManager:
    """Opens, serves and closes the rooms of one Jupyter server (all on the server's loop)."""

    def __init__(
        self,
        context: GdbWebContext,
        settings: RoomSettings,
        *,
        max_rooms: int = 64,
        close_timeout: float = 5.0,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    ) -> None:
        self.log = logger or log  # the extension passes Jupyter's logger: its lines go with the server's
        self.context = context
        self.settings = settings
        self.max_rooms = max_rooms
        self.close_timeout = close_timeout
        self.databases: dict[str, Any] = {}
        #: room -> why its network is off (it is still served from its store)
        self.network_errors: dict[str, str] = {}
        self._passwords: dict[str, str | None] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def rooms(self) -> list[str]:
        return sorted(self.databases)

    def describe(self, room: str) -> dict[str, Any]:
        """JSON-ready facts about a served room (the answer of a join)."""
        db = self.databases[room]
        net = db.network
        return {
            "room": room,
            "store": str(db.store_path) if db.store_path is not None else None,
            "network": net is not None,
            "network_error": self.network_errors.get(room),
            "peer_id": getattr(net, "peer_id", None),
            "password": bool(self._passwords.get(room)),
        }

    async def join(self, room: str, *, password: str | None = None) -> tuple[Any, bool]:
        """Serve ``room`` (open its store, join its GenosDB room); ``(db, created)``.

        Joining a room already served is a no-op (``created`` False) unless another password
        is asked for: that is a ``ValidationError`` (leave the room first).
        """
        check_room_name(room)
        password = password or self.settings.password or None
        async with self._lock:
            if self._closed:
                raise ClosedError("the gdbnb extension is stopping")
            if room in self.databases:
                if password is not None and password != self._passwords.get(room):
                    raise ValidationError(f"room {room!r} is already served with another password; leave it first")
                return self.databases[room], False
            if len(self.databases) >= self.max_rooms:
                raise ValidationError(f"this server already keeps {self.max_rooms} rooms (max_rooms)")
            db = await self._open(room, password)
            self.databases[room] = db
            self._passwords[room] = password
            return db, True

    async def _open(self, room: str, password: str | None) -> Any:
        import gdbnb

        s = self.settings
        path = default_store_path(room, s.data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await gdbnb.open(room, path=path, oplog_size=s.oplog_size)  # StoreLockedError goes up
        self.context.add_room(db)
        self.network_errors.pop(room, None)
        if s.rtc:
            try:
                await db.start_network(**s.rtc_options(password))
            except Exception as e:  # ImportError (no WebRTC stack), bad options...
                self.network_errors[room] = f"{type(e).__name__}: {e}"
                self.log.error("room %r: the network cannot start (%s); serving its store only", room, e)
                net, db.network = db.network, None
                if net is not None:
                    try:
                        await net.stop()
                    except Exception:
                        self.log.debug("stopping a half-started network failed", exc_info=True)
        net = db.network
        self.log.info("room %r served: %d node(s), store %s%s", room, len(db.graph.nodes), db.store_path,
                 f", peer id {net.peer_id}" if net is not None else ", network off")
        return db

    async def leave(self, room: str) -> bool:
        """Stop serving ``room``: bye to its peers, flush and close its store. False if not served."""
        async with self._lock:
            db = self.databases.pop(room, None)
            if db is None:
                return False
            self._passwords.pop(room, None)
            self.network_errors.pop(room, None)
            await self._close(db)
            return True

    async def _close(self, db: Any) -> None:
        self.context.remove_room(db.room)
        try:
            await asyncio.wait_for(db.close(), self.close_timeout)
        except asyncio.TimeoutError:
            self.log.error("room %r: leaving and flushing took more than %.1f s", db.room, self.close_timeout)
        except Exception:
            self.log.exception("room %r: error while closing", db.room)
        else:
            self.log.info("room %r closed", db.room)

    async def close(self) -> None:
        """Close every room at once (server shutdown); later joins raise ``ClosedError``."""
        async with self._lock:
            self._closed = True
            dbs = list(self.databases.values())
            self.databases.clear()
            self._passwords.clear()
            await asyncio.gather(*(self._close(db) for db in dbs))
        self.context.close()
