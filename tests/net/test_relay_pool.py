"""RelayPool over real sockets: against our embedded relay and against scripted fake relays."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve

from gdbnb.net.relay_pool import Backoff, RelayPool
from gdbnb.net.relay_server import RelayServer
from gdbnb.wire import nostr

TIMEOUT = 5.0
FAST = {"reconnect_delay": 0.02, "max_reconnect_delay": 0.1}

Delivered = tuple[int, str, dict[str, Any]]


class Inbox:
    """Collects ``on_event`` and ``on_status`` calls into queues the test can await."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[Delivered] = asyncio.Queue()
        self.status: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()

    def on_event(self, index: int, sub_id: str, event: dict[str, Any]) -> None:
        self.events.put_nowait((index, sub_id, event))

    def on_status(self, index: int, up: bool) -> None:
        self.status.put_nowait((index, up))

    async def event(self) -> Delivered:
        return await asyncio.wait_for(self.events.get(), TIMEOUT)

    async def next_status(self) -> tuple[int, bool]:
        return await asyncio.wait_for(self.status.get(), TIMEOUT)


class FakeRelay:
    """A scripted relay recording every frame; ``script(ws, frames)`` runs per connection."""

    def __init__(self, script: Callable[[ServerConnection, asyncio.Queue[str]], Awaitable[None]] | None = None) -> None:
        self.script = script
        self.connections = 0
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.server: Any = None

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        if self.script is not None:
            await self.script(ws, self.frames)
            return
        async for msg in ws:
            self.frames.put_nowait(str(msg))

    async def frame(self) -> str:
        return await asyncio.wait_for(self.frames.get(), TIMEOUT)

    async def __aenter__(self) -> FakeRelay:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def test_backoff_sequence() -> None:
    b = Backoff()
    assert [round(b.next(), 3) for _ in range(6)] == [3.333, 6.666, 13.332, 26.664, 30.0, 30.0]
    b.reset()
    assert b.next() == 3.333


async def test_subscribe_publish_echo_and_urls() -> None:
    inbox = Inbox()
    topic = nostr.root_topic(nostr.APP_ID, nostr.data_room_id("pool"))
    async with RelayServer() as relay:
        pool = RelayPool([relay.url + "/", relay.url], inbox.on_event, on_status=inbox.on_status)
        assert pool.urls == [relay.url]
        extra: list[tuple[int, bool]] = []
        remove = pool.add_status_listener(lambda i, up: extra.append((i, up)))
        assert pool.publish(None, {"x": 1}) == 0  # nothing open yet: dropped silently
        pool.subscribe("root", topic)
        async with pool:
            assert await inbox.next_status() == (0, True)
            assert pool.open_relays == [0] and extra == [(0, True)]
            remove()
            remove()
            ev = nostr.make_event(nostr.KeyPair(), topic, nostr.announce_content("me"))
            assert pool.publish(0, ev) == 1
            assert await inbox.event() == (0, "root", ev)  # the relay echoes our own events
            pool.unsubscribe("root")
            pool.unsubscribe("root")  # unknown: no-op
            pool.subscribe("late", topic)
            assert pool.subscriptions == ["late"]
            ev2 = nostr.make_event(nostr.KeyPair(), topic, "x")
            pool.publish(None, ev2)
            assert await inbox.event() == (0, "late", ev2)
        assert pool.open_relays == [] and extra == [(0, True)]
    assert inbox.events.empty()


async def test_relays_are_independent_and_keep_their_index() -> None:
    inbox = Inbox()
    topic = "shared-topic"
    async with RelayServer() as r0, RelayServer() as r1:
        async with RelayPool([r0.url, r1.url, "ws://127.0.0.1:1"], inbox.on_event, **FAST) as pool:
            pool.subscribe("s", topic)
            await asyncio.wait_for(pool.wait_open(0), TIMEOUT)
            await asyncio.wait_for(pool.wait_open(1), TIMEOUT)
            assert not pool.is_open(2)  # unreachable relay: retried quietly, others unaffected
            ev = nostr.make_event(nostr.KeyPair(), topic, "one")
            assert pool.publish(1, ev) == 1
            assert await inbox.event() == (1, "s", ev)
            ev = nostr.make_event(nostr.KeyPair(), topic, "all")
            assert pool.publish(None, ev) == 2
            got = {(await inbox.event())[0], (await inbox.event())[0]}
            assert got == {0, 1}  # no deduplication: once per relay


async def test_reconnects_after_relay_restart_and_resubscribes() -> None:
    inbox = Inbox()
    topic = "restart-topic"
    relay = RelayServer()
    await relay.start()
    port = relay.port
    try:
        async with RelayPool([relay.url], inbox.on_event, on_status=inbox.on_status, **FAST) as pool:
            pool.subscribe("keep", topic)
            assert await inbox.next_status() == (0, True)
            await relay.stop()
            assert await inbox.next_status() == (0, False)
            assert pool.publish(0, {"dropped": True}) == 0
            relay = RelayServer(port=port)
            await relay.start()
            assert await inbox.next_status() == (0, True)
            # REQs are queued before the status callback runs, so an event published now
            # comes back under the same sub id once the relay has the subscription again
            ev = nostr.make_event(nostr.KeyPair(), topic, "after restart")
            assert pool.publish(0, ev) == 1
            assert await inbox.event() == (0, "keep", ev)
            assert relay.stats.connections == 1
    finally:
        await relay.stop()


async def test_resends_same_sub_ids_with_fresh_since() -> None:
    async def drop_after_two_reqs(ws: ServerConnection, frames: asyncio.Queue[str]) -> None:
        for _ in range(2):
            frames.put_nowait(str(await ws.recv()))
        await ws.close()

    async with FakeRelay(drop_after_two_reqs) as fake:
        inbox = Inbox()
        async with RelayPool([fake.url], inbox.on_event, on_status=inbox.on_status, **FAST) as pool:
            pool.subscribe("sub-a", "topic-a")
            pool.subscribe("sub-b", "topic-b", kind=20001)
            first = [await fake.frame(), await fake.frame()]
            again = [await fake.frame(), await fake.frame()]
            assert fake.connections >= 2
            before = nostr.now_s()
            for frames in (first, again):
                (_, a_id, a_flt), (_, b_id, b_flt) = map(json.loads, frames)
                assert (a_id, b_id) == ("sub-a", "sub-b")
                assert list(a_flt) == ["kinds", "since", "#x"]
                assert a_flt["kinds"] == [nostr.topic_kind("topic-a")] and a_flt["#x"] == ["topic-a"]
                assert b_flt["kinds"] == [20001]
                assert abs(a_flt["since"] - before) <= 2
            assert frames[0] == nostr.encode_req("sub-a", "topic-a", a_flt["since"])


async def test_close_message_and_socket_stays_open() -> None:
    async with FakeRelay() as fake:
        inbox = Inbox()
        async with RelayPool([fake.url], inbox.on_event) as pool:
            await asyncio.wait_for(pool.wait_open(), TIMEOUT)
            pool.subscribe("s1", "t")
            pool.unsubscribe("s1")
            assert json.loads(await fake.frame())[:2] == ["REQ", "s1"]
            assert await fake.frame() == '["CLOSE","s1"]'
            assert pool.is_open(0)


@pytest.mark.parametrize(
    "pow_message",
    ['["NOTICE","pow: 20 bits needed"]', '["OK","abc",false,"pow: 28 bits needed for kind 22833"]'],
)
async def test_pow_relay_is_dropped_for_good(pow_message: str) -> None:
    async def demand_pow(ws: ServerConnection, frames: asyncio.Queue[str]) -> None:
        await ws.send('["NOTICE","welcome"]')
        await ws.send('["OK","x",false,"pow: 0 bits needed"]')  # N = 0: not a demand
        await ws.send(pow_message)
        async for msg in ws:
            frames.put_nowait(str(msg))

    async with FakeRelay(demand_pow) as fake, RelayServer() as good:
        inbox = Inbox()
        async with RelayPool([fake.url, good.url], inbox.on_event, on_status=inbox.on_status, **FAST) as pool:
            changes = {await inbox.next_status() for _ in range(3)}
            assert changes == {(0, True), (0, False), (1, True)}
            assert pool.is_disabled(0) and not pool.is_disabled(1)
            # Absence cannot be awaited: give the pool many reconnect periods to misbehave.
            await asyncio.sleep(0.3)
            assert fake.connections == 1 and not pool.is_open(0)
            assert pool.publish(None, nostr.make_event(nostr.KeyPair(), "t", "x")) == 1


async def test_hostile_relay_does_not_break_the_pool() -> None:
    calls = 0

    async def hostile(ws: ServerConnection, frames: asyncio.Queue[str]) -> None:
        nonlocal calls
        calls += 1
        req = json.loads(str(await ws.recv()))
        good = nostr.make_event(nostr.KeyPair(), "t", "ok")
        for junk in ["garbage", "{}", "[]", "[" * 50_000, '["EVENT"]', '["EVENT","s","x"]',
                     '["EVENT","unknown-sub",{}]', '["OK"]', '["NOTICE",{}]', b"\xff\xfe"]:
            await ws.send(junk)
        await ws.send(json.dumps(["EVENT", req[1], good]))
        if calls == 1:
            await ws.send("[" + " " * 70_000 + "]")  # above the pool's max_message_size
        await ws.wait_closed()

    async with FakeRelay(hostile) as fake:
        inbox = Inbox()
        pool = RelayPool([fake.url], inbox.on_event, max_message_size=60_000, **FAST)
        pool.subscribe("s", "t")
        async with pool:
            first = await inbox.event()
            second = await inbox.event()  # reconnected after the oversized frame
            assert first[:2] == second[:2] == (0, "s")
            assert calls == 2


async def test_verify_option_and_callback_errors() -> None:
    seen: list[str] = []

    def on_event(index: int, sub_id: str, event: dict[str, Any]) -> None:
        seen.append(event["content"])
        if event["content"] == "boom":
            raise RuntimeError("callback bug")

    async def send_three(ws: ServerConnection, frames: asyncio.Queue[str]) -> None:
        req = json.loads(str(await ws.recv()))
        kp = nostr.KeyPair()
        forged = {**nostr.make_event(kp, "t", "forged"), "content": "tampered"}
        for ev in (nostr.make_event(kp, "t", "boom"), forged, nostr.make_event(kp, "t", "last")):
            await ws.send(json.dumps(["EVENT", req[1], ev]))
        frames.put_nowait("sent")
        await ws.wait_closed()

    async with FakeRelay(send_three) as fake:
        done = asyncio.Event()

        def watch(index: int, sub_id: str, event: dict[str, Any]) -> None:
            on_event(index, sub_id, event)
            if event["content"] == "last":
                done.set()

        async with RelayPool([fake.url], watch, verify=True) as pool:
            pool.subscribe("s", "t")
            await asyncio.wait_for(done.wait(), TIMEOUT)
            assert seen == ["boom", "last"] and pool.is_open(0)
