"""The embedded Nostr relay on the web server's port: a Tornado driver for ``RelayHub``.

``/`` answers a WebSocket upgrade as the relay (so a GenosDB app uses ``ws://host:PORT``, the
URL GenosSRV's ``GDB_RELAY=1`` relay has), a JSON request (``Accept: application/json`` or
``application/nostr+json``) with the relay's health (GenosSRV's fields) and a browser with a
redirect to the status page.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

__all__ = ["RootHandler"]

log = logging.getLogger("gdbnb.relay.tornado")


class RootHandler(WebSocketHandler):
    """``/``: relay over WebSocket, health as JSON, otherwise a redirect to ``redirect_to``."""

    def initialize(self, relay: Any = None, redirect_to: str = "/gdb/") -> None:  # type: ignore[override]
        self.relay = relay  # a gdbnb.net.relay_server.RelayHub, or None (relay off)
        self.redirect_to = redirect_to
        self._conn: Any = None
        self._outbox: asyncio.Queue[str] | None = None
        self._writer: asyncio.Task[None] | None = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        upgrade = self.request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade and self.relay is not None:
            if self.relay.full:
                self.relay.stats.refused_connections += 1
                self.set_status(503)
                self.finish("relay full\n")
                return
            await super().get(*args, **kwargs)
            return
        accept = self.request.headers.get("Accept", "")
        if "json" in accept:
            self.set_header("Content-Type", "application/json")
            self.set_header("Access-Control-Allow-Origin", "*")
            self.set_header("Cache-Control", "no-store")
            if self.relay is None:
                self.set_status(404)
                self.finish('{"error":"the embedded relay is off"}')
            else:
                self.finish(self.relay.health_json() + "\n")
            return
        q = self.request.query
        self.redirect(self.redirect_to + ("?" + q if q else ""))

    # ------------------------------------------------------------------ WebSocket side

    def check_origin(self, origin: str) -> bool:
        """Any origin: like any public Nostr relay, GenosDB apps connect from their own sites."""
        return True

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return int(self.relay.limits.max_message_size) if self.relay is not None else 64 * 1024

    def open(self, *args: Any, **kwargs: Any) -> None:
        from ..net.relay_server import RelayFullError, connect_with_outbox

        assert self.relay is not None
        try:
            self._conn, outbox = connect_with_outbox(self.relay)
        except RelayFullError:
            self.close(1013, "relay full")
            return
        self._outbox = outbox
        self._writer = asyncio.ensure_future(self._drain(outbox))

    async def _drain(self, outbox: asyncio.Queue[str]) -> None:
        try:
            while True:
                await self.write_message(await outbox.get())
        except (WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_message(self, message: str | bytes) -> None:
        if self._conn is not None:
            self._conn.receive(message)

    def on_close(self) -> None:
        if self._conn is not None and self.relay is not None:
            self.relay.disconnect(self._conn)
            self._conn = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
