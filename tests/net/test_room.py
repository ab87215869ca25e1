"""Rooms meeting for real: embedded relay over TCP on 127.0.0.1, aiortc on loopback only.

The host's other interfaces are hidden from aioice (``no_network``), so these tests also prove
that the ``loopback`` option is what lets two nodes on one machine meet.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from typing import Any, AsyncIterator, Callable

import aioice.ice
import pytest


from gdbnb.net.peer import PeerConnection
from gdbnb.net.relay_pool import RelayPool
from gdbnb.net.relay_server import RelayServer
from gdbnb.net.room import Room, WatchdogTimings
from gdbnb.wire.nostr import KeyPair, new_peer_id

TIMEOUT = 15.0
ROOM = "graph-sync-room-pytest"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the host has no interface but loopback, like a bare CI container."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **kw: [])


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    async with RelayServer("127.0.0.1", 0) as server:
        yield server


class Node:
    """One process worth of state: a pool, a peer id, a key, rooms, and recorded events."""

    def __init__(self, relay_urls: list[str], peer_id: str | None = None) -> None:
        self.peer_id = peer_id or new_peer_id()
        self.keypair = KeyPair()
        self.rooms: list[Room] = []
        self.pool = RelayPool(relay_urls, self._route)
        self.events: list[tuple[Any, ...]] = []
        self._changed = asyncio.Event()

    def _route(self, relay_index: int, sub_id: str, event: dict[str, Any]) -> None:
        for room in self.rooms:
            if room.handle_relay_event(relay_index, sub_id, event):
                return

    def record(self, *event: Any) -> None:
        self.events.append(event)
        self._changed.set()

    def room(self, room_id: str = ROOM, **kwargs: Any) -> Room:
        kwargs.setdefault("loopback", True)
        kwargs.setdefault("announce_interval", 0.5)
        room = Room(
            room_id,
            pool=self.pool,
            peer_id=self.peer_id,
            keypair=self.keypair,
            on_peer_join=lambda p, t: self.record("join", p, t),
            on_peer_leave=lambda p, r: self.record("leave", p, r),
            on_peer_seen=lambda p, t: self.record("seen", p, t),
            on_peer_lost=lambda p: self.record("lost", p),
            on_message=lambda p, m: self.record("message", p, m),
            **kwargs,
        )
        self.rooms.append(room)
        return room

    async def wait(self, pred: Callable[[tuple[Any, ...]], bool], timeout: float = TIMEOUT) -> tuple[Any, ...]:
        """The first recorded event (past or future) matching ``pred``."""

        async def scan() -> tuple[Any, ...]:
            seen = 0
            while True:
                for ev in self.events[seen:]:
                    if pred(ev):
                        return ev
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), timeout)

    def joins(self, peer: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[:2] == ("join", peer)]

    async def start(self) -> None:
        await self.pool.start()
        for room in self.rooms:
            await room.start()

    async def close(self) -> None:
        for room in self.rooms:
            await room.stop()
        await self.pool.close()


@pytest.fixture
async def make_node(relay: RelayServer) -> AsyncIterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def make(peer_id: str | None = None) -> Node:
        node = Node([relay.url], peer_id)
        nodes.append(node)
        return node

    yield make
    await asyncio.gather(*(n.close() for n in nodes), return_exceptions=True)


async def _meet(*nodes: Node) -> None:
    """Wait until every node joined every other one."""
    await asyncio.gather(
        *(
            a.wait(lambda e, b=b: e[:2] == ("join", b.peer_id))
            for a in nodes
            for b in nodes
            if a is not b
        )
    )


def _links_to(room: Room, peer_id: str) -> list[PeerConnection]:
    return [c for c in room._links if c.remote_id == peer_id and not c.closed]


def _message(node: Node, sender: str) -> Callable[[tuple[Any, ...]], bool]:
    return lambda e: e[0] == "message" and e[1] == sender


# ------------------------------------------------------------------------------------------


async def test_two_rooms_meet_and_exchange_messages(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    ra, rb = a.room(), b.room()
    await a.start()
    await b.start()
    await _meet(a, b)

    assert a.joins(b.peer_id) == [("join", b.peer_id, "superpeer")]
    assert b.joins(a.peer_id) == [("join", a.peer_id, "superpeer")]
    assert set(ra.connected_peers()) == {b.peer_id} and set(rb.connected_peers()) == {a.peer_id}
    info = ra.connected_peers()[b.peer_id]
    assert info.peer_type == "superpeer" and info.connected_at <= info.last_seen
    assert b.peer_id in ra.seen_peers() and a.peer_id in rb.seen_peers()
    assert ("seen", b.peer_id, None) in a.events  # announces carry no type

    # JSON both ways.
    await ra.send("syncGraph", [{"type": "sync", "timestamp": {"physical": 1, "logical": 0}}])
    ev = await b.wait(_message(b, a.peer_id))
    assert ev[2].action == "syncGraph"
    assert ev[2].value == [{"type": "sync", "timestamp": {"physical": 1, "logical": 0}}]
    await rb.send("syncGraph", {"hello": "a"}, targets=[a.peer_id])
    ev = await a.wait(_message(a, b.peer_id))
    assert ev[2].value == {"hello": "a"}

    # Big: compressible but still several 16 KiB chunks once deflated.
    big = {"type": "fullStateSync", "blob": [os.urandom(32).hex() for _ in range(6000)]}
    assert len(zlib.compress(repr(big).encode())) > 3 * 16369
    await ra.send("syncGraph", big)
    await rb.send("syncGraph", big)
    got_b = await b.wait(lambda e: e[0] == "message" and isinstance(e[2].value, dict) and "blob" in e[2].value)
    got_a = await a.wait(lambda e: e[0] == "message" and isinstance(e[2].value, dict) and "blob" in e[2].value)
    assert got_b[2].value == big and got_a[2].value == big


async def test_three_rooms_broadcast(make_node: Callable[..., Node]) -> None:
    nodes = [make_node() for _ in range(3)]
    rooms = [n.room() for n in nodes]
    for n in nodes:
        await n.start()
    await _meet(*nodes)
    for n, r in zip(nodes, rooms):
        assert len(r.connected_peers()) == 2
        for other in nodes:
            if other is not n:
                assert len(n.joins(other.peer_id)) == 1
    await rooms[0].send("syncGraph", {"n": 1})
    for other in nodes[1:]:
        ev = await other.wait(_message(other, nodes[0].peer_id))
        assert ev[2].value == {"n": 1}


async def test_stop_gives_leave_then_lost(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    a.room()
    rb = b.room()
    await a.start()
    await b.start()
    await _meet(a, b)
    await rb.stop()
    leave = await a.wait(lambda e: e[:2] == ("leave", b.peer_id))
    assert leave[2] == "leave"  # the @_leave frame, not a channel close
    await a.wait(lambda e: e == ("lost", b.peer_id))
    kinds = [e[0] for e in a.events if e[1] == b.peer_id]
    assert kinds.index("leave") < kinds.index("lost")
    assert b.peer_id not in a.rooms[0].seen_peers()
    assert a.rooms[0].connected_peers() == {}
    assert ("leave", a.peer_id, "stop") in b.events
    assert b.pool.subscriptions == []


async def test_wrong_password_never_connects_but_is_seen(make_node: Callable[..., Node]) -> None:
    a, b, c = make_node(), make_node(), make_node()
    ra = a.room(password="pw1")
    b.room(password="pw1")
    rc = c.room(password="wrong")
    for n in (a, b, c):
        await n.start()
    await _meet(a, b)
    # Each side of the a/c pair receives an offer it cannot decrypt.
    await a.wait(lambda e: e[:2] == ("seen", c.peer_id))
    await c.wait(lambda e: e[:2] == ("seen", a.peer_id))

    # Glare: the higher id ignores the lower's offer, so the lower id is sure to decrypt (and
    # fail on) the higher's. Announces keep arriving, so the predicate is re-checked.
    lower = ra if a.peer_id < c.peer_id else rc
    await a.wait(lambda e: lower.decrypt_failures > 0)
    assert c.peer_id in ra.seen_peers()
    assert c.peer_id not in ra.connected_peers()
    assert not a.joins(c.peer_id) and not c.joins(a.peer_id) and not c.joins(b.peer_id)


@pytest.mark.parametrize("pool_size", [0, 5])
async def test_glare_resolves_to_one_connection(make_node: Callable[..., Node], pool_size: int) -> None:
    a, b = make_node(), make_node()
    ra, rb = a.room(offer_pool_size=pool_size), b.room(offer_pool_size=pool_size)
    # Started together, both see each other's announce and both dial (§7.4).
    await asyncio.gather(a.start(), b.start())
    await _meet(a, b)
    ca, cb = ra._connected[b.peer_id], rb._connected[a.peer_id]
    assert _links_to(ra, b.peer_id) == [ca] and _links_to(rb, a.peer_id) == [cb]
    assert ca.initiator != cb.initiator  # the two ends of one connection
    # Later announces do not create more connections or joins.
    await a.wait(lambda e: e[:2] == ("seen", b.peer_id) and len([x for x in a.events if x[:2] == ("seen", b.peer_id)]) >= 3)
    assert len(a.joins(b.peer_id)) == 1 and len(b.joins(a.peer_id)) == 1
    assert _links_to(ra, b.peer_id) == [ca]


async def test_ping_is_answered(make_node: Callable[..., Node]) -> None:
    fast = WatchdogTimings(tick=0.1, silence=0.2, ping_timeout=1.0)
    a, b = make_node(), make_node()
    ra, rb = a.room(watchdog=fast), b.room()
    await a.start()
    await b.start()
    await _meet(a, b)
    loop = asyncio.get_running_loop()
    ping_seen: asyncio.Future[None] = loop.create_future()
    pong_seen: asyncio.Future[None] = loop.create_future()
    _tap(rb._connected[a.peer_id], b"@_ping", ping_seen)
    _tap(ra._connected[b.peer_id], b"@_pong", pong_seen)
    await asyncio.wait_for(asyncio.gather(ping_seen, pong_seen), TIMEOUT)
    assert b.peer_id in ra.connected_peers()


def _tap(conn: PeerConnection, prefix: bytes, fut: asyncio.Future[None], swallow: bool = False) -> None:
    """Observe (and optionally swallow) frames arriving on ``conn``."""
    inner = conn.on_frame

    def on_frame(c: PeerConnection, frame: bytes) -> None:
        if frame.startswith(prefix) and not fut.done():
            fut.set_result(None)
        if not swallow and inner is not None:
            inner(c, frame)

    conn.on_frame = on_frame


async def test_watchdog_drops_a_silent_peer(make_node: Callable[..., Node]) -> None:
    fast = WatchdogTimings(tick=0.1, silence=0.2, ping_timeout=0.5)
    a, b = make_node(), make_node()
    ra, rb = a.room(watchdog=fast), b.room()
    await a.start()
    await b.start()
    await _meet(a, b)
    # b goes deaf: it swallows every frame, so it never answers a's ping.
    pinged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _tap(rb._connected[a.peer_id], b"@_ping", pinged, swallow=True)
    await asyncio.wait_for(pinged, TIMEOUT)
    ev = await a.wait(lambda e: e[:2] == ("leave", b.peer_id))
    assert ev[2] == "timeout"
    assert b.peer_id not in ra.connected_peers()


async def test_garbage_frames_do_not_break_the_room(make_node: Callable[..., Node]) -> None:
    a, b = make_node(), make_node()
    ra, rb = a.room(), b.room(actions=("syncGraph", "chat"))
    await a.start()
    await b.start()
    await _meet(a, b)
    conn = ra._connected[b.peer_id]
    action = b"syncGraph".ljust(12, b"\0")
    garbage = [
        b"",
        b"\x00",
        b"short",
        action,  # header cut short
        action + bytes([0, 0x01]),
        action + bytes([1, 0x09, 255]) + b"{not json",
        action + bytes([2, 0x19, 255]) + b"not zlib at all",
        action + bytes([3, 0x11, 255]) + zlib.compress(b"x" * 10_000_000)[:50],  # truncated
        action + bytes([4, 0x1B, 255]) + b"[1,2",  # metadata flag on a JSON chunk
        b"\xff" * 12 + bytes([0, 1, 255]),  # undecodable action name
        b"chat".ljust(12, b"\0") + bytes([0, 0x09, 255]) + b"\xff\xfe",
        b"@_signal".ljust(12, b"\0") + bytes([0, 0x09, 255]) + b"{}",
        os.urandom(20000)[:16384],
    ]
    # Chunks that never end: more than the 100-chunk limit of one message.
    garbage += [action + bytes([9, 0x08, 1]) + b"x" * 100 for _ in range(150)]
    for frame in garbage:
        conn.send_now(frame)
    await ra.send("syncGraph", {"still": "alive"})
    ev = await b.wait(lambda e: e[0] == "message" and e[2].value == {"still": "alive"})
    assert ev[1] == a.peer_id
    assert a.peer_id in rb.connected_peers()


async def test_send_consumes_the_nonce_without_peers(make_node: Callable[..., Node]) -> None:
    a = make_node()
    ra = a.room()
    await a.start()
    await ra.send("syncGraph", {"x": 1})
    await ra.send("syncGraph", {"x": 2}, targets=["nobody"])
    assert ra._nonces["syncGraph"] == 2
