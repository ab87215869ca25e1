"""One aiortc ``RTCPeerConnection`` to one remote peer in one room (``spec/signaling.md`` §7.1, §8).

The room (``gdbnb.net.room``) decides *when* to dial, answer or drop; this module only wraps the
WebRTC object:

* an **initiator** creates exactly one channel ``data`` (ordered, default options) and offers;
* an **answerer** adopts whatever channel arrives;
* SDPs are complete (aiortc gathers inside ``setLocalDescription``); ``a=ice-options:trickle``
  lines are stripped like the reference does;
* frames are binary only; ``send_frames`` applies the reference's backpressure rule (§3.4 of
  ``sync-protocol.md``);
* the connection is "closed" on channel close or ``connectionState`` disconnected / failed /
  closed, and ``on_close`` fires exactly once.

Loopback
--------
aioice never gathers on 127.0.0.1 (``aioice.ice.get_host_addresses`` skips it), so two peers on
one machine without another interface cannot meet. With ``loopback=True`` we wrap, **on this
connection's own** ``aioice.Connection`` instance only, ``get_component_candidates`` so that
``127.0.0.1`` is added to the addresses it binds (in front of the others). Our SDP then
carries a ``127.0.0.1`` host candidate next to the usual ones, so two peers on one host that
both use the option can pair loopback to loopback even when the host has no other interface.
Nothing global is patched; connections made without the option are untouched. Used by the
tests and for local demos; a remote peer simply fails the checks against our loopback
candidate and uses the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from typing import TYPE_CHECKING

from gdbnb.errors import ClosedError

if TYPE_CHECKING:
    from aiortc import RTCDataChannel, RTCIceServer, RTCPeerConnection


def _aiortc() -> Any:
    """aiortc, imported on first use: it takes ~0.4 s (its media stack comes along), and a node
    alone in its room, or just starting, never needs it."""
    import aiortc

    return aiortc

__all__ = [
    "LOOPBACK_ADDRESS",
    "BUFFERED_AMOUNT_LOW_THRESHOLD",
    "CHANNEL_LABEL",
    "PeerClosedError",
    "PeerConnection",
    "ice_servers_from_config",
    "strip_trickle",
]

logger = logging.getLogger("gdbnb.peer")

LOOPBACK_ADDRESS = "127.0.0.1"
CHANNEL_LABEL = "data"
#: ``bufferedAmountLowThreshold`` of the reference channel (§7.1).
BUFFERED_AMOUNT_LOW_THRESHOLD = 65535
#: Backpressure of the reference (``sync-protocol.md`` §3.4): wait for ``bufferedamountlow`` at
#: most this long, pause, retry; give up after this many retries.
BACKPRESSURE_WAIT = 5.0
BACKPRESSURE_PAUSE = 0.2
BACKPRESSURE_RETRIES = 3

_CLOSING_STATES = frozenset({"disconnected", "failed", "closed"})


class PeerClosedError(ClosedError):
    """A send on a connection that is closed, or whose buffer never drained (backpressure)."""


def strip_trickle(sdp: str) -> str:
    """Remove every ``a=ice-options:trickle`` line (with its line ending), as the reference does."""
    lines = sdp.splitlines(keepends=True)
    return "".join(line for line in lines if line.rstrip("\r\n") != "a=ice-options:trickle")


def ice_servers_from_config(config: Iterable[Mapping[str, Any]] | None) -> "list[RTCIceServer]":
    """GenosDB's ``turnConfig`` shape (``[{urls, username?, credential?}]``) as aiortc servers.

    ``None`` or empty gives ``[]``: no STUN/TURN server is contacted (aiortc's default would call
    a public Google STUN server).
    """
    RTCIceServer = _aiortc().RTCIceServer
    servers: list[Any] = []
    for entry in config or ():
        urls = entry.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not urls or not all(isinstance(u, str) for u in urls):
            raise ValueError(f"ICE server entry without usable 'urls': {entry!r}")
        servers.append(
            RTCIceServer(
                urls=list(urls),
                username=entry.get("username"),
                credential=entry.get("credential"),
            )
        )
    return servers


def _add_loopback(pc: "RTCPeerConnection") -> None:
    """Make this connection's ICE agent also bind 127.0.0.1 (see the module docstring).

    Must run after the SCTP transport exists (``createDataChannel`` on the initiator,
    ``setRemoteDescription`` on the answerer) and before ``setLocalDescription`` gathers.
    """
    sctp = pc.sctp
    if sctp is None:  # pragma: no cover - programming error
        raise RuntimeError("no SCTP transport yet; add loopback after the channel exists")
    connection = sctp.transport.transport.iceGatherer._connection  # aioice.Connection
    if getattr(connection, "_gdbnb_loopback", False):
        return
    original = connection.get_component_candidates

    async def get_component_candidates(
        component: int, addresses: list[str], timeout: int = 5
    ) -> Any:
        if LOOPBACK_ADDRESS not in addresses:
            addresses = [LOOPBACK_ADDRESS, *addresses]
        return await original(component=component, addresses=addresses, timeout=timeout)

    connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]
    connection._gdbnb_loopback = True  # type: ignore[attr-defined]


class PeerConnection:
    """One WebRTC connection; ``remote_id`` may be set later (pooled initiators).

    Callbacks: ``on_open(conn)`` when the channel opens, ``on_frame(conn, bytes)`` for every
    binary message, ``on_close(conn)`` once when the connection is over. ``str`` messages are
    dropped (the reference never sends them).
    """

    def __init__(
        self,
        *,
        remote_id: str | None = None,
        relay_index: int | None = None,
        ice_servers: Sequence[Mapping[str, Any]] | None = None,
        loopback: bool = False,
        on_open: Callable[[PeerConnection], None] | None = None,
        on_frame: Callable[[PeerConnection, bytes], None] | None = None,
        on_close: Callable[[PeerConnection], None] | None = None,
    ) -> None:
        self.remote_id = remote_id
        self.relay_index = relay_index
        self.loopback = loopback
        self.on_open = on_open
        self.on_frame = on_frame
        self.on_close = on_close
        #: ``time.monotonic()`` at creation (reaper, reboot rule) and when the channel opened.
        self.created = time.monotonic()
        self.opened: float | None = None
        self.initiator: bool | None = None
        self.channel: "RTCDataChannel | None" = None
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._send_lock = asyncio.Lock()  # one message at a time keeps per-action order
        rtc = _aiortc()
        self.pc = rtc.RTCPeerConnection(
            rtc.RTCConfiguration(iceServers=ice_servers_from_config(ice_servers))
        )
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("datachannel", self._adopt)

    def __repr__(self) -> str:
        role = {True: "initiator", False: "answerer", None: "new"}[self.initiator]
        state = "closed" if self._closed else ("open" if self.is_open else "pending")
        return f"<PeerConnection {role} remote={self.remote_id} {state}>"

    # ---------------------------------------------------------------- state

    @property
    def is_open(self) -> bool:
        return not self._closed and self.channel is not None and self.channel.readyState == "open"

    @property
    def closed(self) -> bool:
        return self._closed

    def age(self) -> float:
        return time.monotonic() - self.created

    # ---------------------------------------------------------------- signaling

    async def create_offer(self) -> str:
        """Create the ``data`` channel and return the complete offer SDP (trickle stripped)."""
        self._check_open("offer")
        self.initiator = True
        # Attach the handlers now: frames may arrive before the DCEP ACK (sync-protocol §2.3).
        self._adopt(self.pc.createDataChannel(CHANNEL_LABEL))
        if self.loopback:
            _add_loopback(self.pc)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return strip_trickle(self.pc.localDescription.sdp)

    async def accept_offer(self, sdp: str) -> str:
        """Apply a remote offer and return the complete answer SDP (trickle stripped)."""
        self._check_open("answer")
        self.initiator = False
        await self.pc.setRemoteDescription(_aiortc().RTCSessionDescription(sdp=sdp, type="offer"))
        if self.loopback:
            _add_loopback(self.pc)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return strip_trickle(self.pc.localDescription.sdp)

    async def accept_answer(self, sdp: str) -> None:
        """Apply the remote answer to our offer; ICE/DTLS/SCTP then proceed in the background."""
        self._check_open("accept an answer")
        await self.pc.setRemoteDescription(_aiortc().RTCSessionDescription(sdp=sdp, type="answer"))

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise PeerClosedError(f"cannot {what}: connection closed")

    # ---------------------------------------------------------------- channel

    def _adopt(self, channel: "RTCDataChannel") -> None:
        if self._closed:
            channel.close()
            return
        if self.channel is not None and self.channel is not channel:
            # The reference adopts the newest channel; a second one never comes from a
            # GenosRTC peer, so keep it simple and follow suit.
            logger.debug("%r: a second data channel %r replaces the first", self, channel.label)
        self.channel = channel
        channel.bufferedAmountLowThreshold = BUFFERED_AMOUNT_LOW_THRESHOLD

        @channel.on("open")
        def _on_open() -> None:
            self._opened(channel)

        @channel.on("message")
        def _on_message(data: bytes | str) -> None:
            if channel is not self.channel or self._closed:
                return
            if not isinstance(data, (bytes, bytearray)):
                logger.debug("%r: dropped a text message (frames are binary)", self)
                return
            if self.on_frame is not None:
                self.on_frame(self, bytes(data))

        @channel.on("close")
        def _on_close() -> None:
            if channel is self.channel:
                self.close_soon()

        @channel.on("bufferedamountlow")
        def _on_low() -> None:
            self._drained.set()

        # The answerer's channel arrives already open in aiortc.
        if channel.readyState == "open":
            self._opened(channel)

    def _opened(self, channel: "RTCDataChannel") -> None:
        if self._closed or channel is not self.channel or self.opened is not None:
            return
        self.opened = time.monotonic()
        logger.debug("%r: channel open", self)
        if self.on_open is not None:
            self.on_open(self)

    def _on_state(self) -> None:
        if self.pc.connectionState in _CLOSING_STATES:
            logger.debug("%r: connectionState %s", self, self.pc.connectionState)
            self.close_soon()

    # ---------------------------------------------------------------- sending

    def send_now(self, frame: bytes) -> bool:
        """Send one frame without backpressure (``@_pong``, ``@_leave``); False when closed."""
        channel = self.channel
        if not self.is_open or channel is None:
            return False
        try:
            channel.send(frame)
        except Exception as exc:  # aiortc raises InvalidStateError when it just closed
            logger.debug("%r: send failed: %s", self, exc)
            return False
        return True

    async def send_frames(self, frames: Iterable[bytes]) -> None:
        """Send frames in order with the reference's backpressure rule.

        Before each frame, while ``bufferedAmount`` exceeds 65535, wait for
        ``bufferedamountlow`` (5 s), then pause 200 ms; after 3 fruitless retries give up.
        Raises :class:`PeerClosedError` when the connection closes or stays congested.
        """
        async with self._send_lock:
            for frame in frames:
                await self._send_one(frame)

    async def _send_one(self, frame: bytes) -> None:
        retries = 0
        while True:
            channel = self.channel
            if not self.is_open or channel is None:
                raise PeerClosedError(f"{self!r}: closed during send")
            if channel.bufferedAmount <= BUFFERED_AMOUNT_LOW_THRESHOLD:
                break
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), BACKPRESSURE_WAIT)
            except asyncio.TimeoutError:
                retries += 1
                if retries > BACKPRESSURE_RETRIES:
                    raise PeerClosedError(f"{self!r}: send buffer never drained") from None
                await asyncio.sleep(BACKPRESSURE_PAUSE)
        if not self.send_now(frame):
            raise PeerClosedError(f"{self!r}: closed during send")

    # ---------------------------------------------------------------- closing

    def close_soon(self) -> None:
        """Mark closed now (``on_close`` fires synchronously) and close aiortc in the background."""
        if self._closed:
            return
        self._closed = True
        self._drained.set()  # wake a blocked sender; it will see the closed state
        self._close_task = asyncio.ensure_future(self._close_pc())
        if self.on_close is not None:
            self.on_close(self)

    async def close(self) -> None:
        """Close and wait until aiortc released its sockets."""
        self.close_soon()
        if self._close_task is not None:
            await asyncio.shield(self._close_task)

    async def _close_pc(self) -> None:
        try:
            await self.pc.close()
        except Exception as exc:  # pragma: no cover - aiortc teardown noise
            logger.debug("%r: error while closing: %s", self, exc)
