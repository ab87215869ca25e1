"""A GenosRTC room: announce, dial, glare, watchdog and presence (``spec/signaling.md`` §7).

```python
room = Room("graph-sync-room-mydb", pool=pool, peer_id=pid, keypair=kp,
            on_peer_join=..., on_message=...)
await room.start()
await room.send("syncGraph", [{"type": "sync", ...}])          # all connected peers
await room.send("syncGraph", value, targets=["peerA"])         # some of them
room.connected_peers()  # {peer_id: PeerInfo}
await room.stop()
```

One :class:`~gdbnb.net.peer.PeerConnection` per remote peer; several rooms (graph + presence)
share one :class:`~gdbnb.net.relay_pool.RelayPool`, one peer id and one key pair. Incoming
signaling follows the reference's per-message algorithm (§7.3) line by line, *per relay index*:
the same event arriving through two relays is handled twice, and a dial, its answer and the
glare rule all belong to one relay.

Data-channel frames: control actions (``@_ping``/``@_pong``/``@_leave``) are recognised from
the 12-byte action field before reassembly; registered actions go through a per-connection
:class:`~gdbnb.wire.framing.FrameAssembler`; anything else is dropped. Every frame is proof of
life for the watchdog.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Sequence

from gdbnb.net.peer import PeerConnection
from gdbnb.wire import framing
from gdbnb.wire.nostr import (
    SignalKind,
    announce_content,
    answer_content,
    bye_content,
    make_event,
    new_sub_id,
    offer_content,
    parse_signal,
    root_topic,
    self_topic,
)
from gdbnb.wire.sdp_crypto import SdpDecryptError, decrypt_sdp, encrypt_sdp, room_key

if TYPE_CHECKING:  # pragma: no cover
    from gdbnb.net.relay_pool import RelayPool
    from gdbnb.wire.nostr import KeyPair

__all__ = [
    "PeerInfo",
    "WatchdogTimings",
    "Room",
    "OnPeerJoin",
    "OnPeerLeave",
    "OnPeerSeen",
    "OnPeerLost",
    "OnMessage",
    "CONNECT_TIMEOUT",
    "DIAL_COOLDOWN",
]

logger = logging.getLogger("gdbnb.room")

#: ``on_peer_join(peer_id, peer_type)``: a data channel to ``peer_id`` opened.
OnPeerJoin = Callable[[str, "str | None"], None]
#: ``on_peer_leave(peer_id, reason)``: the connected peer is gone. ``reason``: ``"leave"``
#: (``@_leave`` received), ``"closed"`` (channel or ICE/DTLS closed), ``"timeout"`` (watchdog),
#: ``"stop"`` (our own :meth:`Room.stop`). A replacement by a newer connection is not a leave.
OnPeerLeave = Callable[[str, str], None]
#: ``on_peer_seen(peer_id, peer_type)``: any announce/offer/answer from it (type when carried).
OnPeerSeen = Callable[[str, "str | None"], None]
#: ``on_peer_lost(peer_id)``: it published ``bye``; its connection, if any, is kept (§7.5).
OnPeerLost = Callable[[str], None]
#: ``on_message(peer_id, message)``: a complete message of a registered action; ``message`` is
#: the object :meth:`gdbnb.wire.framing.FrameAssembler.feed` returns.
OnMessage = Callable[[str, Any], None]

#: A connection that is not the connected one this long after its creation is destroyed; it
#: is also the maximum age of a pending dial and of a pooled offer (§7.2, §7.3).
CONNECT_TIMEOUT = 57.333
#: Per-peer dial pause after a dead dial or a failed connection creation.
DIAL_COOLDOWN = 30.0
#: An offer from a peer connected less than this ago is never taken as a reboot.
REBOOT_GRACE = 2.0
#: We do not dial a peer whose offer we answered less than this ago while that connection is
#: still opening (see ``Room._answering``).
ANSWER_GRACE = 10.0
#: Between ``@_leave`` and closing the connections on :meth:`Room.stop`.
LEAVE_DELAY = 0.099
MAX_DIALS_PER_PEER = 2
MAX_DIALS_TOTAL = 10

_CONTROL_PING = "@_ping"
_CONTROL_PONG = "@_pong"
_CONTROL_LEAVE = "@_leave"


@dataclass(slots=True)
class PeerInfo:
    """A connected peer. Times are ``time.time()`` seconds; ``last_seen`` is the last frame."""

    peer_id: str
    peer_type: str | None
    connected_at: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class WatchdogTimings:
    """Watchdog (§7.6): every ``tick`` s, ping a peer silent for ``silence`` s, drop it when
    the ping stays unanswered ``ping_timeout`` s. Tests pass short values."""

    tick: float = 5.0
    silence: float = 10.0
    ping_timeout: float = 20.0


@dataclass(eq=False, slots=True)
class _Link:
    """Room-side state of one connection (reassembly, liveness, log de-duplication)."""

    conn: PeerConnection
    assembler: Any
    last_rx: float = field(default_factory=time.monotonic)
    ping_sent: float | None = None
    close_reason: str = "closed"
    logged: set[str] = field(default_factory=set)
    reaper: asyncio.TimerHandle | None = None


def _action_of(frame: bytes) -> str:
    """The action name of a frame: the first 12 bytes without any NUL (lenient UTF-8)."""
    return frame[:12].replace(b"\0", b"").decode("utf-8", "replace")


class Room:
    """One room over a shared :class:`RelayPool`; one aiortc connection per remote peer.

    Callbacks are plain functions called on the event loop; they must not block. Exceptions
    they raise are logged and swallowed, so a buggy consumer cannot break the room.
    """

    def __init__(
        self,
        room_id: str,
        *,
        pool: RelayPool,
        peer_id: str,
        keypair: KeyPair,
        password: str | None = None,
        app_id: str = "1234",
        peer_type: str | None = "superpeer",
        ice_servers: Sequence[dict[str, Any]] | None = None,
        loopback: bool = False,
        actions: Iterable[str] = ("syncGraph",),
        on_peer_join: OnPeerJoin | None = None,
        on_peer_leave: OnPeerLeave | None = None,
        on_peer_seen: OnPeerSeen | None = None,
        on_peer_lost: OnPeerLost | None = None,
        on_message: OnMessage | None = None,
        announce_interval: float = 2.5,
        watchdog: WatchdogTimings = WatchdogTimings(),
        offer_pool_size: int = 5,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.room_id = room_id
        self.peer_id = peer_id
        self.app_id = app_id
        self.peer_type = peer_type
        self.pool = pool
        self.keypair = keypair
        self.actions = frozenset(actions)
        self.on_peer_join = on_peer_join
        self.on_peer_leave = on_peer_leave
        self.on_peer_seen = on_peer_seen
        self.on_peer_lost = on_peer_lost
        self.on_message = on_message
        self.announce_interval = announce_interval
        self.watchdog = watchdog
        self.offer_pool_size = offer_pool_size
        self.connect_timeout = connect_timeout
        self._ice_servers = list(ice_servers or ())
        self._loopback = loopback
        self._key = room_key(password, app_id, room_id)
        self.root_topic = root_topic(app_id, room_id)
        self.self_topic = self_topic(app_id, room_id, peer_id)
        self._sub_ids = (new_sub_id(), new_sub_id())
        self._nonces: dict[str, int] = {}  # per-action 8-bit counters (sync-protocol §3.3)

        self._links: dict[PeerConnection, _Link] = {}
        self._connected: dict[str, PeerConnection] = {}
        self._info: dict[str, PeerInfo] = {}
        self._pending: dict[str, dict[int, PeerConnection]] = {}
        self._cooldown: dict[str, float] = {}
        self._known_type: dict[str, str] = {}
        self._census: dict[str, float] = {}
        self._offer_pool: list[tuple[PeerConnection, asyncio.Task[str]]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._started = False
        self._stopped = False
        #: Offers/answers whose SDP did not decrypt (wrong password, garbage).
        self.decrypt_failures = 0

    def __repr__(self) -> str:
        return f"<Room {self.room_id!r} me={self.peer_id} peers={len(self._connected)}>"

    # ============================================================== public API

    async def start(self) -> None:
        """Subscribe (two REQs per relay; the pool repeats them on every reconnect) and start
        announcing, the offer pool and the watchdog. Returns at once; peers arrive later
        through the callbacks."""
        if self._started:
            return
        self._started = True
        self._subscribe()
        for _ in range(self.offer_pool_size):
            conn = self._new_connection(None, None)
            self._offer_pool.append((conn, self._spawn(conn.create_offer())))
        self._loops = [
            asyncio.create_task(self._announce_loop(), name=f"room-announce-{self.room_id}"),
            asyncio.create_task(self._watchdog_loop(), name=f"room-watchdog-{self.room_id}"),
        ]
        logger.info("joined room %s as %s", self.room_id, self.peer_id)

    async def stop(self) -> None:
        """Leave (§7.5): stop announcing, ``@_leave`` to every peer, wait ~99 ms, close every
        connection (``on_peer_leave(..., "stop")``), CLOSE both subscriptions, then publish
        ``bye`` on every relay. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        # Stop announcing first: a late announce would re-mark us as seen after the bye.
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for link in self._links.values():
            link.close_reason = "stop"  # even if the peer hangs up first after our @_leave
        if self._connected:
            leave = framing.leave_frame(self._next_nonce(_CONTROL_LEAVE))
            for conn in list(self._connected.values()):
                conn.send_now(leave)
            await asyncio.sleep(LEAVE_DELAY)
        conns = list(self._links)
        for conn in conns:
            self._close(conn, "stop")
        await asyncio.gather(*(conn.close() for conn in conns), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._started:
            self._unsubscribe()
            self._publish(self.root_topic, bye_content(self.peer_id), None)
        logger.info("left room %s", self.room_id)

    @property
    def has_peers(self) -> bool:
        """Whether any data channel is open (cheaper than ``connected_peers()``)."""
        return bool(self._info)

    def connected_peers(self) -> dict[str, PeerInfo]:
        """Peers whose data channel is open (a copy; the ``PeerInfo`` objects are live)."""
        return dict(self._info)

    def seen_peers(self) -> dict[str, float]:
        """Census: peer id -> ``time.time()`` of its last signaling message (bye removes it)."""
        return dict(self._census)

    def peer_type_of(self, peer_id: str) -> str | None:
        """The last ``type`` a peer declared in an offer or answer."""
        return self._known_type.get(peer_id)

    async def send(self, action: str, value: Any, targets: Iterable[str] | None = None) -> None:
        """Encode ``value`` once with the action's next nonce (consumed even with no peer) and
        send the frames to each target (all connected peers when None), with backpressure.

        Targets that are not connected are skipped; a peer that fails mid-send is skipped and
        logged at debug. Only encoding errors (a value that cannot be framed) raise.
        """
        # The nonce is consumed only once the frames are built, like the reference.
        frames = framing.encode_message(action, self._nonces.get(action, 0), value)
        self._next_nonce(action)
        if targets is None:
            conns = list(self._connected.items())
        else:
            if isinstance(targets, str):
                targets = [targets]
            conns = [(t, self._connected[t]) for t in dict.fromkeys(targets) if t in self._connected]
        if not conns:
            return
        results = await asyncio.gather(
            *(conn.send_frames(frames) for _, conn in conns), return_exceptions=True
        )
        for (pid, _), res in zip(conns, results):
            if isinstance(res, BaseException):
                logger.debug("%s: send %s to %s failed: %s", self.room_id, action, pid, res)

    # ============================================================== relay glue

    def _subscribe(self) -> None:
        self.pool.subscribe(self._sub_ids[0], self.root_topic)
        self.pool.subscribe(self._sub_ids[1], self.self_topic)

    def _unsubscribe(self) -> None:
        for sub_id in self._sub_ids:
            self.pool.unsubscribe(sub_id)

    def _publish(self, topic: str, content: str, relay_index: int | None) -> None:
        """Sign and publish on one relay (``relay_index``) or on all of them (None)."""
        try:
            event = make_event(self.keypair, topic, content)
            self.pool.publish(relay_index, event)
        except Exception as exc:  # a relay gone meanwhile: the pool drops, we just log
            logger.debug("%s: publish failed: %s", self.room_id, exc)

    @property
    def subscription_ids(self) -> tuple[str, str]:
        """Our two subscription ids (root topic, self topic)."""
        return self._sub_ids

    def handle_relay_event(self, relay_index: int, sub_id: str, event: dict[str, Any]) -> bool:
        """Feed one ``["EVENT", sub_id, event]`` received on relay ``relay_index``.

        Returns False (and does nothing) when ``sub_id`` is not one of this room's, so one
        pool callback can offer every event to every room. The topic comes from the
        subscription id, not from the event's tags (§4.4); id and signature are not checked.
        """
        if sub_id == self._sub_ids[0]:
            topic = self.root_topic
        elif sub_id == self._sub_ids[1]:
            topic = self.self_topic
        else:
            return False
        if self._stopped or not self._started:
            return True
        try:
            self._on_signal(relay_index, topic, event.get("content"))
        except Exception:  # never let one event break the relay reader
            logger.exception("%s: error handling a signaling event", self.room_id)
        return True

    async def _announce_loop(self) -> None:
        content = announce_content(self.peer_id)
        while True:
            self._publish(self.root_topic, content, None)
            await asyncio.sleep(self.announce_interval)

    # ============================================================== §7.3 signaling

    def _on_signal(self, relay: int, topic: str, content: object) -> None:
        sig = parse_signal(content)
        if sig is None:
            logger.debug("%s: malformed signaling content dropped", self.room_id)
            return
        x, me = sig.peer_id, self.peer_id
        # Offers and answers are only meaningful on our self topic, announces on the root.
        if sig.kind is SignalKind.BYE:
            if x != me:
                self._census.pop(x, None)
                self._emit(self.on_peer_lost, x)
            return
        if x != me:
            self._census[x] = time.time()
            self._emit(self.on_peer_seen, x, sig.peer_type)
        if sig.peer_type:
            self._known_type[x] = sig.peer_type
        if x == me:
            return
        current = self._connected.get(x)
        if current is not None:
            opened = current.opened if current.opened is not None else current.created
            young = time.monotonic() - opened < REBOOT_GRACE
            if sig.kind is not SignalKind.OFFER or current.is_open or young:
                return
            logger.debug("%s: offer from %s over a stale link: treated as a reboot", self.room_id, x)
            self._close(current, "closed")
        if sig.kind is SignalKind.OFFER:
            if relay in self._pending.get(x, {}) and me > x:
                return  # glare (§7.4): the higher id keeps its own offer
            sdp = self._decrypt(x, sig.sdp or "")
            if sdp is None:
                return
            # Created synchronously so that an announce handled before the task runs already
            # sees this answer in progress (``_answering``).
            conn = self._new_connection(x, relay)
            conn.initiator = False
            self._spawn(self._answer(conn, relay, x, sdp))
        elif sig.kind is SignalKind.ANSWER:
            dial = self._pending.get(x, {}).get(relay)
            if dial is None or dial.closed:
                return
            self._spawn(self._accept_answer(dial, x, sig.sdp or ""))
        else:
            self._dial(relay, x)

    def _dial(self, relay: int, x: str) -> None:
        now = time.monotonic()
        dials = self._pending.setdefault(x, {})
        for r, conn in list(dials.items()):
            if conn.closed or conn.age() > self.connect_timeout:
                del dials[r]
                if conn.closed:
                    self._cooldown[x] = now + DIAL_COOLDOWN
                else:
                    self._close(conn, "closed")
        if relay in dials or len(dials) >= MAX_DIALS_PER_PEER or self._cooldown.get(x, 0) > now:
            return
        if self._live_dials() >= MAX_DIALS_TOTAL:
            return
        if self._answering(x, now):
            return
        try:
            conn, offer = self._take_initiator()
        except Exception as exc:
            logger.debug("%s: cannot create a connection to %s: %s", self.room_id, x, exc)
            self._cooldown[x] = now + DIAL_COOLDOWN
            return
        conn.remote_id, conn.relay_index = x, relay
        dials[relay] = conn  # claimed before the offer is ready
        self._spawn(self._send_offer(conn, offer, relay, x))

    def _answering(self, x: str, now: float) -> bool:
        """True while we answered an offer from ``x`` less than ``ANSWER_GRACE`` ago and that
        connection is still opening.

        A deviation from the reference, which dials anyway and may end up with two connections
        that open in a different order on each side, each side keeping "the latest" (§7.4) and
        sometimes dropping both. Waiting for our answer to connect avoids that second
        connection; after the grace period we dial as the reference does.
        """
        return any(
            c.remote_id == x
            and c.initiator is False
            and c.opened is None
            and not c.closed
            and now - c.created < ANSWER_GRACE
            for c in self._links
        )

    def _live_dials(self) -> int:
        return sum(not c.closed for dials in self._pending.values() for c in dials.values())

    def _take_initiator(self) -> tuple[PeerConnection, asyncio.Future[str] | None]:
        while self._offer_pool:
            conn, offer = self._offer_pool.pop()  # the newest, like the reference
            if not conn.closed and not (offer.done() and offer.exception() is not None):
                return conn, offer
            self._close(conn, "closed")
        return self._new_connection(None, None), None

    async def _send_offer(
        self, conn: PeerConnection, offer: asyncio.Future[str] | None, relay: int, x: str
    ) -> None:
        sdp = offer if offer is not None else conn.create_offer()
        await self._send_sdp(conn, sdp, offer_content, relay, x, "offer to")

    async def _answer(self, conn: PeerConnection, relay: int, x: str, sdp: str) -> None:
        await self._send_sdp(conn, conn.accept_offer(sdp), answer_content, relay, x, "answer to")

    async def _send_sdp(
        self, conn: PeerConnection, sdp: Awaitable[str], content: Callable[..., str], relay: int, x: str, what: str
    ) -> None:
        """Publish our SDP (offer or answer) for ``x`` on the relay the exchange runs on."""
        try:
            text = await sdp
        except Exception as exc:
            logger.debug("%s: %s %s failed: %s", self.room_id, what, x, exc)
            self._close(conn, "closed")
            return
        if conn.closed:
            return
        self._publish(self_topic(self.app_id, self.room_id, x), content(self.peer_id, encrypt_sdp(self._key, text), self.peer_type), relay)
        logger.debug("%s: sent %s %s on relay %d", self.room_id, what, x, relay)

    async def _accept_answer(self, dial: PeerConnection, x: str, encrypted: str) -> None:
        sdp = self._decrypt(x, encrypted)
        if sdp is None:
            return
        try:
            await dial.accept_answer(sdp)
        except Exception as exc:  # e.g. the same answer twice, or a dial closed meanwhile
            logger.debug("%s: answer from %s not applied: %s", self.room_id, x, exc)

    def _decrypt(self, x: str, encrypted: str) -> str | None:
        try:
            return decrypt_sdp(self._key, encrypted)
        except SdpDecryptError as exc:
            self.decrypt_failures += 1
            if self.decrypt_failures == 1:
                logger.debug("%s: SDP from %s not decrypted (%s); further failures are only "
                              "counted in Room.decrypt_failures", self.room_id, x, exc)
            return None

    # ============================================================== connections

    def _new_connection(self, remote_id: str | None, relay: int | None) -> PeerConnection:
        conn = PeerConnection(
            remote_id=remote_id,
            relay_index=relay,
            ice_servers=self._ice_servers,
            loopback=self._loopback,
            on_open=self._on_open,
            on_frame=self._on_frame,
            on_close=self._on_conn_closed,
        )
        link = _Link(conn, framing.FrameAssembler())
        link.reaper = asyncio.get_running_loop().call_later(
            self.connect_timeout, self._reap, conn
        )
        self._links[conn] = link
        return conn

    def _reap(self, conn: PeerConnection) -> None:
        """§7.3: a connection that is not the connected one after 57 333 ms is destroyed."""
        if conn.remote_id is None or self._connected.get(conn.remote_id) is not conn:
            self._close(conn, "closed")

    def _close(self, conn: PeerConnection, reason: str) -> None:
        link = self._links.get(conn)
        if link is not None:
            link.close_reason = reason
        conn.close_soon()  # fires _on_conn_closed synchronously (once)

    def _on_conn_closed(self, conn: PeerConnection) -> None:
        link = self._links.pop(conn, None)
        if link is not None and link.reaper is not None:
            link.reaper.cancel()
        x = conn.remote_id
        if x is not None and self._connected.get(x) is conn:
            del self._connected[x]
            self._info.pop(x, None)
            reason = link.close_reason if link is not None else "closed"
            logger.info("%s: peer %s left (%s)", self.room_id, x, reason)
            self._emit(self.on_peer_leave, x, reason)

    def _on_open(self, conn: PeerConnection) -> None:
        x = conn.remote_id
        if self._stopped or x is None or conn not in self._links:
            conn.close_soon()
            return
        previous = self._connected.get(x)
        if previous is not None and previous is not conn:
            # A newer link replaces the old one silently (no leave, no second join).
            self._links[previous].close_reason = "replaced"
            del self._connected[x]
            previous.close_soon()
        self._connected[x] = conn
        for relay, dial in list(self._pending.pop(x, {}).items()):
            if dial is not conn:
                self._close(dial, "closed")
        link = self._links[conn]
        link.last_rx = time.monotonic()
        now = time.time()
        self._info[x] = PeerInfo(x, self._known_type.get(x), now, now)
        if previous is None:
            logger.info("%s: peer %s connected (%s)", self.room_id, x, self._known_type.get(x))
            self._emit(self.on_peer_join, x, self._known_type.get(x))

    # ============================================================== frames

    def _on_frame(self, conn: PeerConnection, frame: bytes) -> None:
        link = self._links.get(conn)
        x = conn.remote_id
        if link is None or x is None or self._connected.get(x) is not conn:
            return  # frames before 'open' are lost in the reference too (sync-protocol §2.3)
        link.last_rx = time.monotonic()
        link.ping_sent = None
        info = self._info.get(x)
        if info is not None:
            info.last_seen = time.time()
        action = _action_of(frame)
        if action == _CONTROL_PING:
            conn.send_now(framing.pong_frame(self._next_nonce(_CONTROL_PONG)))
            return
        if action == _CONTROL_PONG:
            return
        if action == _CONTROL_LEAVE:
            self._close(conn, "leave")
            return
        if action not in self.actions:
            self._log_once(link, f"unregistered:{action}",
                           "%s: dropped frames of unregistered action %r from %s",
                           self.room_id, action, x)
            return
        try:
            messages = link.assembler.feed(frame)
        except Exception as exc:  # hostile frames: drop, log once per kind, keep the link
            self._log_once(link, type(exc).__name__,
                           "%s: bad frame from %s dropped: %s", self.room_id, x, exc)
            return
        for message in messages:
            self._emit(self.on_message, x, message)

    def _log_once(self, link: _Link, kind: str, msg: str, *args: Any) -> None:
        if kind in link.logged or len(link.logged) > 32:
            return
        link.logged.add(kind)
        logger.warning(msg, *args)

    # ============================================================== watchdog

    async def _watchdog_loop(self) -> None:
        wd = self.watchdog
        while True:
            await asyncio.sleep(wd.tick)
            now = time.monotonic()
            for x, conn in list(self._connected.items()):
                link = self._links.get(conn)
                if link is None:
                    continue
                if link.ping_sent is not None:
                    if now - link.ping_sent > wd.ping_timeout:
                        logger.debug("%s: %s did not answer a ping", self.room_id, x)
                        self._close(conn, "timeout")
                elif now - link.last_rx > wd.silence:
                    link.ping_sent = now
                    conn.send_now(framing.ping_frame(self._next_nonce(_CONTROL_PING)))

    # ============================================================== helpers

    def _next_nonce(self, action: str) -> int:
        """Return the action's current nonce and advance it (wraps at 256)."""
        nonce = self._nonces.get(action, 0)
        self._nonces[action] = (nonce + 1) & 255
        return nonce

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("%s: background task failed", self.room_id, exc_info=exc)

    def _emit(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("%s: %s callback raised", self.room_id, getattr(callback, "__name__", "a"))

