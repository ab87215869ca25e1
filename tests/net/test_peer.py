"""Real aiortc connections on loopback through ``gdbnb.net.peer`` (no relay, SDP handed over)."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest

from gdbnb.net.peer import (
    BUFFERED_AMOUNT_LOW_THRESHOLD,
    PeerClosedError,
    PeerConnection,
    ice_servers_from_config,
    strip_trickle,
)

TIMEOUT = 10.0


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the host has no interface but loopback, like a bare CI container."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **kw: [])


class Side:
    """A PeerConnection whose callbacks feed futures/queues the test can await."""

    def __init__(self, loopback: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.close_calls = 0
        self.conn = PeerConnection(
            loopback=loopback,
            on_open=lambda c: self.opened.done() or self.opened.set_result(None),
            on_frame=lambda c, f: self.frames.put_nowait(f),
            on_close=self._on_close,
        )

    def _on_close(self, conn: PeerConnection) -> None:
        self.close_calls += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def _connect(a: Side, b: Side) -> tuple[str, str]:
    offer = await a.conn.create_offer()
    answer = await b.conn.accept_offer(offer)
    await a.conn.accept_answer(answer)
    await asyncio.wait_for(asyncio.gather(a.opened, b.opened), TIMEOUT)
    return offer, answer


def _candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


async def test_loopback_connects_without_network(no_network: None) -> None:
    a, b = Side(), Side()
    try:
        offer, answer = await _connect(a, b)
        for sdp in (offer, answer):
            cands = _candidates(sdp)
            assert cands and all(" 127.0.0.1 " in c for c in cands)
            assert "a=end-of-candidates" in sdp
            assert "a=ice-options:trickle" not in sdp
        assert a.conn.initiator is True and b.conn.initiator is False
        for side in (a, b):
            ch = side.conn.channel
            assert ch is not None and ch.label == "data" and ch.ordered and not ch.negotiated
            assert ch.bufferedAmountLowThreshold == BUFFERED_AMOUNT_LOW_THRESHOLD
        await a.conn.send_frames([b"\x01ping from a"])
        await b.conn.send_frames([b"\x02pong from b"])
        assert await asyncio.wait_for(b.frames.get(), TIMEOUT) == b"\x01ping from a"
        assert await asyncio.wait_for(a.frames.get(), TIMEOUT) == b"\x02pong from b"
    finally:
        await a.conn.close()
        await b.conn.close()


async def test_without_loopback_option_there_is_no_candidate(no_network: None) -> None:
    a = Side(loopback=False)
    try:
        offer = await a.conn.create_offer()
        assert _candidates(offer) == []
    finally:
        await a.conn.close()


async def test_close_propagates_once_and_send_after_close_raises(no_network: None) -> None:
    a, b = Side(), Side()
    await _connect(a, b)
    await a.conn.close()
    await asyncio.wait_for(b.closed, TIMEOUT)  # the channel close reaches the other side
    assert a.close_calls == 1 and b.close_calls == 1
    assert not a.conn.is_open and not b.conn.is_open
    with pytest.raises(PeerClosedError):
        await a.conn.send_frames([b"late"])
    assert a.conn.send_now(b"late") is False
    await b.conn.close()
    assert b.close_calls == 1


async def test_backpressure_delivers_everything_in_order(no_network: None) -> None:
    a, b = Side(), Side()
    try:
        await _connect(a, b)
        frames = [bytes([i % 256]) * 16384 for i in range(120)]  # ~2 MB, far above 64 KiB
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                assert a.conn.channel is not None
                peak = max(peak, a.conn.channel.bufferedAmount)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(a.conn.send_frames(frames), 30)
        got = [await asyncio.wait_for(b.frames.get(), TIMEOUT) for _ in frames]
        watcher.cancel()
        assert got == frames
        # The buffer never grows far beyond the threshold: one frame over it at most.
        assert peak <= BUFFERED_AMOUNT_LOW_THRESHOLD + 16384
    finally:
        await a.conn.close()
        await b.conn.close()


def test_strip_trickle() -> None:
    sdp = "v=0\r\na=ice-options:trickle\r\na=mid:0\r\na=ice-options:trickle\na=x\r\n"
    assert strip_trickle(sdp) == "v=0\r\na=mid:0\r\na=x\r\n"


def test_ice_servers_from_turn_config() -> None:
    assert ice_servers_from_config(None) == []
    servers = ice_servers_from_config(
        [
            {"urls": "stun:stun.example.org:3478"},
            {"urls": ["turn:t.example.org:3478"], "username": "u", "credential": "p"},
        ]
    )
    assert servers[0].urls == ["stun:stun.example.org:3478"] and servers[0].username is None
    assert (servers[1].urls, servers[1].username, servers[1].credential) == (
        ["turn:t.example.org:3478"],
        "u",
        "p",
    )
    bad: list[dict[str, Any]] = [{"username": "u"}]
    with pytest.raises(ValueError):
        ice_servers_from_config(bad)
