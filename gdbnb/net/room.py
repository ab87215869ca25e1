"""A GenosRTC room: announce, dial, glare, watchdog and presence (``spec/signaling.md`` §7).

API skeleton (implementation in progress). The sync node codes against this surface:

```python
room = Room("graph-sync-room-mydb", pool=pool, peer_id=pid, keypair=kp,
            on_peer_join=..., on_message=...)
await room.start()
await room.send("syncGraph", [{"type": "sync", ...}])          # all connected peers
await room.send("syncGraph", value, targets=["peerA"])         # some of them
room.connected_peers()  # {peer_id: PeerInfo}
await room.stop()
```
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

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
]

#: ``on_peer_join(peer_id, peer_type)``: a data channel to ``peer_id`` opened.
OnPeerJoin = Callable[[str, "str | None"], None]
#: ``on_peer_leave(peer_id, reason)``: the connection is gone; reason is one of
#: ``"leave"`` (@_leave received), ``"closed"`` (channel/ICE closed), ``"timeout"`` (watchdog),
#: ``"replaced"`` is never reported (a replacement is not a leave), ``"stop"`` (we stopped).
OnPeerLeave = Callable[[str, str], None]
#: ``on_peer_seen(peer_id, peer_type)``: any signaling message (announce/offer/answer) from it.
OnPeerSeen = Callable[[str, "str | None"], None]
#: ``on_peer_lost(peer_id)``: it published ``bye`` (the connection, if any, is kept, §7.5).
OnPeerLost = Callable[[str], None]
#: ``on_message(peer_id, message)``: a complete message of a registered action; ``message`` is
#: the object ``gdbnb.wire.framing.FrameAssembler.feed`` returns (``.action``, ``.value``...).
OnMessage = Callable[[str, Any], None]


@dataclass(slots=True)
class PeerInfo:
    """A connected peer. Times are ``time.time()`` seconds."""

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


class Room:
    """One room over a shared :class:`RelayPool`; one aiortc connection per remote peer.

    Callbacks are plain functions called on the event loop; they must not block. Exceptions
    they raise are logged and swallowed.
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
    ) -> None:
        self.room_id = room_id
        self.peer_id = peer_id
        raise NotImplementedError  # skeleton

    async def start(self) -> None:
        """Subscribe (two REQs per relay, also on every relay reconnect) and start announcing,
        the reaper and the watchdog. Returns at once; peers come later via callbacks."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Leave (§7.5): ``@_leave`` to every peer, ~99 ms, close connections, CLOSE the
        subscriptions, stop announcing, then publish ``bye`` on every relay. Idempotent."""
        raise NotImplementedError

    def connected_peers(self) -> dict[str, PeerInfo]:
        """Peers whose data channel is open (a copy)."""
        raise NotImplementedError

    def seen_peers(self) -> dict[str, float]:
        """Census: peer id -> ``time.time()`` of its last signaling message (bye removes it)."""
        raise NotImplementedError

    async def send(self, action: str, value: Any, targets: Iterable[str] | None = None) -> None:
        """Encode ``value`` once with the action's next nonce (consumed even with no peer) and
        send the frames to each target (all connected peers when None), with backpressure.

        Unknown or failing targets are skipped (logged at debug); never raises for a peer."""
        raise NotImplementedError

