"""Embedded Nostr relay: the ephemeral subset GenosDB signaling uses (``signaling.md`` §9).

Mirrors GenosSRV's ``GDB_RELAY=1`` relay: nothing is stored (no history), ``REQ`` keeps only its
first filter and honours ``kinds``, ``since`` (60 s grace) and ``#x``; ``EVENT`` is verified (id
and BIP-340 signature) and fanned out to every connection, the sender included, at most once per
connection (first matching subscription in insertion order); anything else is ignored. A plain
HTTP request gets a JSON health answer.

Two layers, so one relay logic can serve two transports:

* ``RelayHub`` is the protocol, without I/O: ``conn = hub.connect(send)``,
  ``conn.receive(text)``, ``hub.disconnect(conn)``. ``send(text)`` must not block (queue it).
  A Tornado ``WebSocketHandler`` can drive it with ``hub.connect(self.write_message)``.
* ``RelayServer`` drives a hub with a ``websockets`` asyncio server.

Beyond GenosSRV, every input is bounded (``RelayLimits``). Limit violations on a subscription
are answered with NIP-01 ``["CLOSED", sub_id, reason]`` (GenosSRV never needs to send it); other
violations drop the message and keep the connection. A frame above ``max_message_size`` is
the exception on the websockets transport: it is refused by the WebSocket layer (close 1009)
before it is read into memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gdbnb.errors import GdbnbError
from gdbnb.wire.nostr import (
    ClientClose,
    ClientEvent,
    ClientReq,
    event_topics,
    parse_client_message,
    verify_event,
)

__all__ = [
    "connect_with_outbox",
    "RelayLimits",
    "RelayStats",
    "RelayFullError",
    "RelayHub",
    "RelayConnection",
    "RelayServer",
    "SINCE_GRACE_S",
]

logger = logging.getLogger("gdbnb.relay")

SINCE_GRACE_S = 60  # GenosSRV drops events with created_at < since - 60


class _DebugInfoLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every connection open/close at INFO; for a relay that is chatter."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG if level == logging.INFO else level, msg, *args, **kwargs)


class RelayFullError(GdbnbError):
    """The relay already serves ``max_connections`` connections."""


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Bounds on what one client can make the relay hold or do.

    The defaults leave room for a GenosDB peer in dozens of rooms (two subscriptions and one
    announce per 2.5 s per room) while capping memory and CPU per connection.
    """

    max_message_size: int = 128 * 1024  # bytes per incoming frame (characters for the hub)
    max_subscriptions: int = 64  # per connection
    max_filter_values: int = 64  # entries of "kinds" and of "#x" in one filter
    max_sub_id_length: int = 256
    max_connections: int = 512
    rate: float = 100.0  # messages per second a connection may send, sustained
    burst: int = 200  # ... and in a burst
    max_outbox: int = 1024  # messages queued for a slow reader before new ones are dropped


@dataclass(slots=True)
class RelayStats:
    """Counters; the first three are GenosSRV's health fields."""

    connections: int = 0  # open connections
    events: int = 0  # events accepted
    dropped: int = 0  # events rejected by verification
    ignored: int = 0  # malformed or unsupported messages
    rate_limited: int = 0  # messages dropped by the per-connection rate limit
    oversized: int = 0  # messages above max_message_size seen by the hub
    refused_connections: int = 0  # connections refused because the relay was full
    overflowed: int = 0  # outgoing messages dropped because a reader was too slow

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _wire(obj: Any) -> str:
    """Compact JSON like ``JSON.stringify``.

    ``json.loads`` lets lone surrogates (``"\\ud800"``) through; they cannot be UTF-8 encoded
    into a text frame, so that rare message is re-escaped as ASCII instead.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=True)
    return text


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class _Filter:
    kinds: frozenset[float] | None
    since: float | None
    xs: frozenset[str] | None

    def matches(self, ev: dict[str, Any], xs: list[str]) -> bool:
        if self.kinds is not None and ev.get("kind") not in self.kinds:
            return False
        if self.since is not None and ev["created_at"] < self.since - SINCE_GRACE_S:
            return False
        if self.xs is not None and not any(x in self.xs for x in xs):
            return False
        return True


def _compile_filter(raw: object, limits: RelayLimits) -> _Filter | str:
    """The filter, or the reason it is refused. Fields other than kinds/since/#x are ignored."""
    if raw is None:
        return _Filter(None, None, None)
    if not isinstance(raw, dict):
        return "invalid: filter is not an object"
    kinds = raw.get("kinds")
    since = raw.get("since")
    xs = raw.get("#x")
    if kinds is not None:
        if not isinstance(kinds, list) or not all(_is_number(k) for k in kinds):
            return "invalid: kinds must be a list of numbers"
        if len(kinds) > limits.max_filter_values:
            return "error: too many kinds"
    if since is not None and not _is_number(since):
        return "invalid: since must be a number"
    if xs is not None:
        if not isinstance(xs, list) or not all(isinstance(x, str) for x in xs):
            return "invalid: #x must be a list of strings"
        if len(xs) > limits.max_filter_values:
            return "error: too many #x values"
    return _Filter(
        None if kinds is None else frozenset(kinds),
        since,
        None if xs is None else frozenset(xs),
    )


class RelayConnection:
    """One client of a ``RelayHub``; feed it every text message with ``receive``."""

    __slots__ = ("_hub", "_send", "subscriptions", "_tokens", "_stamp", "closed")

    def __init__(self, hub: RelayHub, send: Callable[[str], object]) -> None:
        self._hub = hub
        self._send = send
        self.subscriptions: dict[str, _Filter] = {}  # insertion order = fan-out priority
        self._tokens = float(hub.limits.burst)
        self._stamp = hub.clock()
        self.closed = False

    def receive(self, message: str | bytes) -> None:
        """Handle one message from the client; never raises."""
        if self.closed:
            return
        try:
            self._hub._receive(self, message)
        except Exception:  # a bug here must not take the connection down
            logger.exception("relay: unexpected error while handling a message")

    def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            self._send(text)
        except Exception as exc:  # e.g. Tornado's WebSocketClosedError
            logger.debug("relay: send failed: %r", exc)

    def _take_token(self) -> bool:
        limits = self._hub.limits
        now = self._hub.clock()
        self._tokens = min(float(limits.burst), self._tokens + (now - self._stamp) * limits.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class RelayHub:
    """The relay's protocol logic, shared by every transport that drives it."""

    def __init__(
        self,
        limits: RelayLimits | None = None,
        *,
        name: str = "gdbnb embedded relay",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or RelayLimits()
        self.name = name
        self.clock = clock
        self.stats = RelayStats()
        self._connections: dict[RelayConnection, None] = {}  # ordered set

    @property
    def full(self) -> bool:
        return len(self._connections) >= self.limits.max_connections

    def connect(self, send: Callable[[str], object]) -> RelayConnection:
        """Register a client; ``send(text)`` queues one text message to it without blocking."""
        if self.full:
            self.stats.refused_connections += 1
            raise RelayFullError(f"relay full ({self.limits.max_connections} connections)")
        conn = RelayConnection(self, send)
        self._connections[conn] = None
        self.stats.connections = len(self._connections)
        return conn

    def disconnect(self, conn: RelayConnection) -> None:
        conn.closed = True
        conn.subscriptions.clear()
        self._connections.pop(conn, None)
        self.stats.connections = len(self._connections)

    def health(self) -> dict[str, Any]:
        return {
            "relay": self.name,
            "protocol": "nostr (ephemeral subset)",
            "connections": self.stats.connections,
            "events": self.stats.events,
            "dropped": self.stats.dropped,
        }

    def health_json(self) -> str:
        return _wire(self.health())

    # -- protocol -----------------------------------------------------------------------------

    def _receive(self, conn: RelayConnection, message: str | bytes) -> None:
        if len(message) > self.limits.max_message_size:
            self.stats.oversized += 1
            return
        if not conn._take_token():
            self.stats.rate_limited += 1
            return
        msg = parse_client_message(message)
        if isinstance(msg, ClientEvent):
            self._on_event(conn, msg.event)
        elif isinstance(msg, ClientReq):
            self._on_req(conn, msg)
        elif isinstance(msg, ClientClose):
            conn.subscriptions.pop(msg.sub_id, None)
        else:
            self.stats.ignored += 1

    def _on_req(self, conn: RelayConnection, req: ClientReq) -> None:
        sub_id = req.sub_id
        if len(sub_id) > self.limits.max_sub_id_length:
            self.stats.ignored += 1
            return
        compiled = _compile_filter(req.filter, self.limits)
        if isinstance(compiled, str):
            conn.subscriptions.pop(sub_id, None)
            conn.send(_wire(["CLOSED", sub_id, compiled]))
            return
        if sub_id not in conn.subscriptions and len(conn.subscriptions) >= self.limits.max_subscriptions:
            conn.send(_wire(["CLOSED", sub_id, "error: too many subscriptions"]))
            return
        conn.subscriptions[sub_id] = compiled  # replacing keeps the original position, like a JS Map
        conn.send(_wire(["EOSE", sub_id]))

    def _on_event(self, sender: RelayConnection, ev: dict[str, Any]) -> None:
        if not verify_event(ev):
            self.stats.dropped += 1
            ident = ev.get("id")
            sender.send(_wire(["OK", ident if isinstance(ident, str) else "", False, "invalid: bad signature"]))
            return
        self.stats.events += 1
        sender.send(_wire(["OK", ev["id"], True, ""]))
        xs = event_topics(ev)
        body: str | None = None
        for conn in list(self._connections):
            for sub_id, flt in conn.subscriptions.items():
                if flt.matches(ev, xs):
                    if body is None:
                        body = _wire(ev)
                    conn.send(f"[\"EVENT\",{_wire(sub_id)},{body}]")
                    break


def connect_with_outbox(hub: "RelayHub") -> "tuple[RelayConnection, asyncio.Queue[str]]":
    """Connect to ``hub`` through a bounded outbox that a socket driver drains.

    The hub's ``send`` must never block: a reader too slow to keep up loses messages (counted
    as ``overflowed``) instead of stalling the relay. Raises :class:`RelayFullError`.
    """
    outbox: asyncio.Queue[str] = asyncio.Queue(hub.limits.max_outbox)
    stats = hub.stats

    def send(text: str) -> None:
        try:
            outbox.put_nowait(text)
        except asyncio.QueueFull:
            stats.overflowed += 1

    return hub.connect(send), outbox


class RelayServer:
    """A ``RelayHub`` served over WebSocket (any path) with a JSON health answer over HTTP.

    ``async with RelayServer() as relay: … relay.url …`` (port 0 picks a free port).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: RelayLimits | None = None,
        hub: RelayHub | None = None,
        name: str = "gdbnb embedded relay",
    ) -> None:
        self.host = host
        self._requested_port = port
        self.hub = hub or RelayHub(limits, name=name)
        self.limits = self.hub.limits
        self._server: Server | None = None

    @property
    def stats(self) -> RelayStats:
        return self.hub.stats

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("relay not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"ws://{host}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=self.limits.max_message_size,
            logger=_DebugInfoLogger(logging.getLogger("gdbnb.relay.ws"), {}),
        )
        logger.info("embedded relay listening on %s", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def __aenter__(self) -> RelayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- websockets glue ----------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        upgrade = [v.lower() for v in request.headers.get_all("Upgrade")]
        if "websocket" not in upgrade:
            body = self.hub.health_json().encode()
            headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Access-Control-Allow-Origin", "*"),
                    ("Cache-Control", "no-store"),
                ]
            )
            return Response(200, "OK", headers, body)
        if self.hub.full:
            self.hub.stats.refused_connections += 1
            return connection.respond(503, "relay full\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            conn, outbox = connect_with_outbox(self.hub)
        except RelayFullError:
            await ws.close(1013, "relay full")
            return
        writer = asyncio.create_task(self._drain(ws, outbox))
        try:
            async for message in ws:
                conn.receive(message)
        except ConnectionClosed:
            pass
        finally:
            self.hub.disconnect(conn)
            writer.cancel()

    @staticmethod
    async def _drain(ws: ServerConnection, outbox: asyncio.Queue[str]) -> None:
        try:
            while True:
                await ws.send(await outbox.get())
        except ConnectionClosed:
            pass
