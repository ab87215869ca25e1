"""``GdbnbExtension``: the Jupyter server extension that keeps GenosDB rooms.

Lifecycle (the pattern of jupyter-server-ydoc):

* ``initialize_settings`` / ``initialize_handlers`` (server start-up, before it listens): build
  the web context and the room manager, mount ``/gdb/...`` under the server's base URL;
* ``_start_jupyter_server_extension`` (the server's loop is running and its port is bound):
  start one background task that opens the configured rooms;
* ``stop_extension`` (``jupyter server stop``, SIGTERM, confirmed Ctrl-C): cancel that task,
  say bye in every room, flush and close the stores, end the SSE streams.

Everything runs on the server's own event loop; nothing patches it.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import ipaddress
import secrets
import signal
import threading
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Dict, Float, Int, List, Unicode, default, validate

from ..web.auth import JupyterAuth
from ..web.context import GdbWebContext
from ..web.handlers import make_handlers
from .handlers import RELAY_KEY_ARG, AuthRelayHandler, JoinRoomsHandler, LeaveRoomHandler, OpenRelayHandler
from .rooms import RoomManager, RoomSettings, check_room_name

__all__ = ["GdbnbExtension"]


class GdbnbExtension(ExtensionApp):
    """A persistent GenosDB peer inside the Jupyter server: rooms, status page, API, relay."""

    name = "gdbnb"
    description = "Keep GenosDB rooms in a Jupyter server: persistent peer, status page, API, Nostr relay"
    load_other_extensions = True

    rooms = List(Unicode(), default_value=[], help=(
        "GenosDB rooms (database names, gdb('ROOM') in the browser) to keep: opened and joined "
        "when the server starts. More can be joined at run time: POST <base_url>gdb/api/rooms."
    )).tag(config=True)

    data_dir = Unicode(help=(
        "Folder of the rooms' SQLite stores (<room>.sqlite). Default: <jupyter data dir>/gdbnb."
    )).tag(config=True)

    relay_urls = List(Unicode(), default_value=None, allow_none=True, help=(
        "Nostr relays to signal through. None (default): GenosDB's public relays, the ones browser "
        "apps use by default. [] : none (only the relay mounted here, when on)."
    )).tag(config=True)

    embedded_relay = Bool(True, help=(
        "Serve a Nostr relay at <base_url>gdb/relay (WebSocket) and signal through it too, so "
        "kernels and apps on this machine can meet this server's rooms without outside relays."
    )).tag(config=True)

    relay_requires_auth = Bool(True, help=(
        "The relay needs Jupyter authentication (?token=... or the Jupyter cookie). Off: any "
        "program that reaches the server can use it for signaling (needed by browser GenosDB "
        "apps, which cannot send a Jupyter token)."
    )).tag(config=True)

    password = Unicode("", help=(
        "Room password (encrypted signaling, like gdb(name, {password})) for every room that "
        "does not get its own through the API. Empty: none."
    )).tag(config=True)

    presence = Bool(False, help="Also join each room's presence room app-sync-<room> (GenosSRV --room).").tag(config=True)

    oplog_size = Int(1000, help="Operations kept per room for delta sync (like GenosSRV).").tag(config=True)

    autostart = Bool(True, help=(
        "Open the configured rooms when the server starts. Off: rooms only start when joined "
        "through the API."
    )).tag(config=True)

    rtc = Bool(True, help="Join the rooms' network. Off: stores, status page and API only (offline).").tag(config=True)

    loopback = Bool(False, help="Offer loopback ICE candidates, so peers on this machine can connect (tests).").tag(config=True)

    ice_servers = List(Dict(), default_value=[], help=(
        "ICE servers for WebRTC, as RTCIceServer dicts ({'urls': 'stun:...'}). Empty: the network "
        "layer's default."
    )).tag(config=True)

    max_rooms = Int(64, help="Most rooms this server keeps at once (configured + joined through the API).").tag(config=True)

    shutdown_timeout = Float(5.0, help="Seconds each room may take to say bye and flush when the server stops.").tag(config=True)

    stop_on_sigint = Bool(True, help=(
        "When the server runs without a terminal (so it installs no Ctrl-C handler of its own), "
        "make SIGINT stop it cleanly like SIGTERM; otherwise the rooms would not say bye."
    )).tag(config=True)

    node_options = Dict(help="Extra keyword arguments of gdbnb.net.node.SyncNode (advanced, tests).").tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "gdbnb")

    @validate("rooms")
    def _valid_rooms(self, proposal: Any) -> list[str]:
        rooms = list(proposal["value"])
        if len(rooms) == 1 and rooms[0].startswith("[") and rooms[0].endswith("]"):
            # --GdbnbExtension.rooms="['a','b']" arrives as one string: read it as the list meant
            try:
                parsed = ast.literal_eval(rooms[0])
            except (ValueError, SyntaxError):
                parsed = None
            if isinstance(parsed, list) and all(isinstance(r, str) for r in parsed):
                rooms = parsed
        rooms = list(dict.fromkeys(rooms))  # keep order, drop repeats
        for r in rooms:
            check_room_name(r)
        return rooms

    @validate("oplog_size", "max_rooms")
    def _positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise ValueError(f"{proposal['trait'].name} must be at least 1")
        return int(proposal["value"])

    # ------------------------------------------------------------------ set-up (before listening)

    def initialize_settings(self) -> None:
        self.context = GdbWebContext(auth=JupyterAuth(resource="gdbnb"))
        self.relay_hub: Any = None
        if self.embedded_relay and self.rtc:
            from ..net.relay_server import RelayHub

            self.relay_hub = RelayHub(name="gdbnb relay (Jupyter)")
        self.relay_key = secrets.token_urlsafe(32)  # for this server's own nodes only
        # the mounted relay's URL is known once the server listens: see _start_jupyter_server_extension
        self.manager = RoomManager(self.context, self._room_settings(own_relay=None),
                                   max_rooms=self.max_rooms, close_timeout=self.shutdown_timeout, logger=self.log)
        self._start_task: asyncio.Task[None] | None = None
        self._old_sigint: Any = None
        self.settings["gdbnb"] = self  # for other extensions and kernels' helpers

    def initialize_handlers(self) -> None:
        ctx = self.context
        # ExtensionApp prefixes every pattern with the server's base_url
        extra: list[tuple[str, Any, dict[str, Any]]] = [
            (r"/gdb/api/rooms", JoinRoomsHandler, {"context": ctx, "manager": self.manager}),
            (r"/gdb/api/rooms/(?P<room>[^/]+)", LeaveRoomHandler, {"context": ctx, "manager": self.manager}),
        ]
        if self.relay_hub is not None:
            redirect = self.serverapp.base_url.rstrip("/") + "/gdb/" if self.serverapp else "/gdb/"
            if self.relay_requires_auth:
                extra.append((r"/gdb/relay", AuthRelayHandler,
                              {"relay": self.relay_hub, "redirect_to": redirect, "key": self.relay_key}))
            else:
                extra.append((r"/gdb/relay", OpenRelayHandler, {"relay": self.relay_hub, "redirect_to": redirect}))
        self.handlers.extend(extra)  # first: they take over GET/POST of /gdb/api/rooms
        self.handlers.extend(make_handlers("/", ctx, handler_base=JupyterHandler))

    # ------------------------------------------------------------------ run (loop running)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        if self.relay_hub is not None:
            own = self._own_relay_url(serverapp)
            self.manager.settings = dataclasses.replace(self.manager.settings, own_relay=own)
            self.context.info["relay_url"] = self._public_relay_url(serverapp)
        self._install_sigint(serverapp)
        if self.autostart and self.rooms:
            self._start_task = asyncio.create_task(self._open_rooms(list(self.rooms)))

    async def _open_rooms(self, rooms: list[str]) -> None:
        for room in rooms:
            try:
                await self.manager.join(room)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a locked store must not keep the other rooms down
                self.log.error("gdbnb | room %r not served: %s", room, e)
        self.log.info("gdbnb | serving %d room(s) at %sgdb/", len(self.manager.databases), self.serverapp.base_url)

    async def stop_extension(self) -> None:
        task, self._start_task = self._start_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.manager.close()
        self._restore_sigint()

    # ------------------------------------------------------------------ helpers

    def _room_settings(self, own_relay: str | None) -> RoomSettings:
        return RoomSettings(
            data_dir=Path(self.data_dir).expanduser(),
            relay_urls=tuple(self.relay_urls) if self.relay_urls is not None else None,
            own_relay=own_relay,
            password=self.password or None,
            presence=self.presence,
            oplog_size=self.oplog_size,
            rtc=self.rtc,
            loopback=self.loopback,
            ice_servers=tuple(self.ice_servers),
            node_options=dict(self.node_options),
        )

    def _own_relay_url(self, serverapp: Any) -> str | None:
        """How this process reaches the mounted relay (loopback; None on a Unix socket)."""
        if getattr(serverapp, "sock", "") or not getattr(serverapp, "port", 0):
            self.log.warning("gdbnb | the server listens on no TCP port: its rooms will not use the mounted relay")
            return None
        host = _loopback_for(serverapp.ip)
        scheme = "wss" if getattr(serverapp, "certfile", None) else "ws"
        base = serverapp.base_url.rstrip("/")
        return f"{scheme}://{host}:{serverapp.port}{base}/gdb/relay?{RELAY_KEY_ARG}={self.relay_key}"

    def _public_relay_url(self, serverapp: Any) -> str:
        """The relay URL to give apps (``rtc.relayUrls``); add ``?token=`` when it needs auth."""
        url: str = serverapp.connection_url  # http://host:port/base/
        return url.replace("http", "ws", 1).rstrip("/") + "/gdb/relay"

    def _install_sigint(self, serverapp: Any) -> None:
        """Without a terminal, Jupyter leaves SIGINT to Python: KeyboardInterrupt, no cleanup."""
        if not self.stop_on_sigint or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return  # the server (Ctrl-C confirmation) or its host handles SIGINT already

        def on_sigint(sig: int, frame: Any) -> None:
            serverapp.log.critical("received signal %s, stopping", sig)
            serverapp.stop(from_signal=True)

        self._old_sigint = signal.signal(signal.SIGINT, on_sigint)

    def _restore_sigint(self) -> None:
        old, self._old_sigint = self._old_sigint, None
        if old is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, old)


def _loopback_for(ip: str) -> str:
    """A loopback address reaching a server bound to ``ip``."""
    if ip in ("", "0.0.0.0", "localhost", "127.0.0.1"):
        return "127.0.0.1"
    if ip in ("::", "::1"):
        return "[::1]"
    try:
        return f"[{ip}]" if ipaddress.ip_address(ip).version == 6 else ip
    except ValueError:
        return ip
