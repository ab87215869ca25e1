"""Handlers only the Jupyter mount has: joining and leaving rooms at run time, the relay.

The shared handlers (``gdbnb.web.handlers``) serve whatever rooms the context holds; which
rooms exist is the host's business, so joining and leaving live here:

* ``POST B/api/rooms`` ``{"room", "password"?}``: serve a room (201; 200 when already served);
* ``DELETE B/api/rooms/<room>``: leave it (bye, flush, close its store);
* ``B/relay``: the embedded Nostr relay over WebSocket (``gdbnb.web.relay.RootHandler``).

Auth: the same hook as the shared handlers (Jupyter's identity provider, then its authorizer
on the resource ``gdbnb``); joining and leaving are ``write``. The relay needs ``write`` too
unless ``relay_requires_auth`` is off; the extension's own nodes present an internal key
instead of a Jupyter token (see ``RelayKeyAuth``).
"""

from __future__ import annotations

import hmac
from typing import Any

from jupyter_server.base.handlers import JupyterHandler

from ..errors import ClosedError, StoreError, ValidationError
from ..web.auth import JupyterAuth, http_error
from ..web.handlers import GdbHandler, RoomsHandler
from ..web.relay import RootHandler
from .rooms import RoomManager

try:  # jupyter-server >= 2.13: lets the handler run when allow_unauthenticated_access is off
    from jupyter_server.auth.decorator import allow_unauthenticated
except ImportError:  # pragma: no cover - older servers authenticate nothing by default
    def allow_unauthenticated(method: Any) -> Any:
        return method

__all__ = ["JoinRoomsHandler", "LeaveRoomHandler", "AuthRelayHandler", "OpenRelayHandler", "RELAY_KEY_ARG"]

#: query argument carrying the extension's internal relay key
RELAY_KEY_ARG = "gdbnb_key"


class _ManagedRoomsMixin(GdbHandler):
    manager: RoomManager

    def initialize(self, context: Any, manager: RoomManager) -> None:  # type: ignore[override]
        self.manager = manager
        super().initialize(context)


class JoinRoomsHandler(_ManagedRoomsMixin, RoomsHandler, JupyterHandler):
    """``GET`` lists the rooms (shared behaviour); ``POST {room, password?}`` joins one."""

    async def post(self) -> None:
        body = self.json_object()
        room, password = body.get("room"), body.get("password")
        if password is not None and not isinstance(password, str):
            raise http_error(400, "password must be a string")
        try:
            _, created = await self.manager.join(room, password=password or None)  # type: ignore[arg-type]
        except ValidationError as e:
            raise http_error(409 if "already" in str(e) else 400, str(e)) from None
        except ClosedError as e:
            raise http_error(503, str(e)) from None
        except StoreError as e:  # locked by another process, corrupt...
            raise http_error(409, str(e)) from None
        self.send_json(dict(self.manager.describe(room), created=created), status=201 if created else 200)


class LeaveRoomHandler(_ManagedRoomsMixin, JupyterHandler):
    """``DELETE B/api/rooms/<room>``: stop serving a room."""

    async def delete(self, room: str) -> None:
        if not await self.manager.leave(room):
            raise http_error(404, f"no such room: {room!r}")
        self.send_json({"room": room, "left": True})


class OpenRelayHandler(RootHandler):
    """The relay without Jupyter auth (``relay_requires_auth = False``): any local app may use it."""


class AuthRelayHandler(RootHandler, JupyterHandler):
    """The relay behind Jupyter auth: a Jupyter token (``?token=``, header) or cookie, or the key.

    Cookie-authenticated upgrades are held to Jupyter's origin rules (``check_origin``), so a
    foreign web page cannot ride the user's Jupyter cookie; token- and key-authenticated ones
    may come from anywhere, like Jupyter's own API.
    """

    def initialize(self, relay: Any = None, redirect_to: str = "/gdb/", key: str = "") -> None:  # type: ignore[override]
        super().initialize(relay=relay, redirect_to=redirect_to)
        self._key = key
        self._auth = JupyterAuth()

    def _has_key(self) -> bool:
        supplied = self.get_query_argument(RELAY_KEY_ARG, "")
        return bool(self._key) and bool(supplied) and hmac.compare_digest(supplied.encode(), self._key.encode())

    @allow_unauthenticated  # it authenticates itself: Jupyter's user, or the internal key
    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self._has_key():
            await self._auth.authorize(self, "write")
        await super().get(*args, **kwargs)

    def check_origin(self, origin: str = "") -> bool:
        if self._has_key():
            return True
        return JupyterHandler.check_origin(self, origin)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Plain-text errors: the caller is a WebSocket client, not a browser page."""
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(f"{status_code}\n")
