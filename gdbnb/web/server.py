"""The standalone web server of ``python -m gdbnb``: the shared handlers plus ``/``.

One port serves the status page, the SSE stream, the JSON API and (when on) the embedded
Nostr relay (WebSocket upgrade on ``/``; see ``gdbnb.web.relay``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from .auth import http_error
from .context import GdbWebContext
from .handlers import MAX_JSON_BODY, GdbHandler, make_handlers
from .relay import RootHandler

__all__ = ["make_app", "WebServer", "format_host"]

log = logging.getLogger("gdbnb.web")


class NotFoundHandler(GdbHandler):
    """JSON 404 for every unknown path (no auth needed to learn that nothing is there)."""

    needs_auth = False

    def prepare(self) -> None:  # type: ignore[override]
        raise http_error(404, f"no such endpoint: {self.request.path}")


def make_app(context: GdbWebContext, *, relay: Any = None, **settings: Any) -> Application:
    """The Tornado application: ``/`` (relay / redirect) + ``make_handlers("/", context)``."""
    rules: list[Any] = [(r"/", RootHandler, {"relay": relay, "redirect_to": "/gdb/"})]
    rules += make_handlers("/", context)
    settings.setdefault("websocket_ping_interval", 30)
    settings.setdefault("websocket_ping_timeout", 30)  # Tornado caps it at the interval
    return Application(
        rules,
        default_handler_class=NotFoundHandler,
        default_handler_args={"context": context},
        **settings,
    )


def format_host(host: str) -> str:
    """``host`` as it goes in a URL (IPv6 in brackets; a wildcard as this machine's name)."""
    if host in ("", "0.0.0.0", "::"):
        return socket.gethostname()
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class WebServer:
    """``await WebServer(app, host, port).start()``; port 0 picks a free port."""

    def __init__(self, app: Application, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: HTTPServer | None = None

    async def start(self) -> None:
        sockets = bind_sockets(self.requested_port, address=self.host or None)
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(self.app, max_body_size=MAX_JSON_BODY + 1024, idle_connection_timeout=3600)
        self._server.add_sockets(sockets)

    @property
    def url(self) -> str:
        return f"http://{format_host(self.host)}:{self.port}"

    @property
    def local_url(self) -> str:
        """A URL this machine can reach the server at (loopback when bound to a wildcard)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        return f"http://{format_host(host)}:{self.port}"

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()
