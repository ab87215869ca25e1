"""/gdb/events over real sockets: order, ids, Last-Event-ID resume, disconnects, fan-out, slow clients."""

from __future__ import annotations

import asyncio

import gdbnb
from gdbnb.web.hub import BULK_THRESHOLD, EventHub

from .conftest import TOKEN, SSEClient, serve, wait_for


async def test_node_events_in_order_with_ids(served):
    c = await SSEClient.connect(served.server.port)
    try:
        assert c.status == 200 and "text/event-stream" in c.headers
        await wait_for(lambda: served.context.hub().clients == 1)
        await served.db.put({"v": "<script>alert(1)</script>"}, "a")
        await served.db.put({"v": 2}, "a")
        await served.db.put(3, "b")
        await served.db.link("a", "b")
        await served.db.remove("b")
        evs = await c.events(6)
        assert [e["event"] for e in evs] == ["node:added", "node:updated", "node:added", "node:updated",
                                             "node:removed", "node:updated"]
        assert evs[0]["data"]["node"]["value"] == {"v": "<script>alert(1)</script>"}
        assert evs[0]["data"]["origin"] == "local" and evs[0]["data"]["room"] == "webroom"
        assert evs[4]["data"] == {"room": "webroom", "id": "b", "node": None, "origin": "local", "kind": "write"}
        seqs = [int(e["id"].rpartition("-")[2]) for e in evs]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        assert "retry: 2000" not in c.comments  # retry is a field, not a comment
    finally:
        c.close()


async def test_resume_with_last_event_id(served):
    c = await SSEClient.connect(served.server.port)
    await wait_for(lambda: served.context.hub().clients == 1)
    await served.db.put(1, "x1")
    first = (await c.events(1))[0]
    c.close()
    await wait_for(lambda: served.context.hub().clients == 0)
    for i in range(2, 5):
        await served.db.put(i, f"x{i}")
    c2 = await SSEClient.connect(served.server.port, last_event_id=first["id"])
    try:
        evs = await c2.events(3)
        assert [e["data"]["id"] for e in evs] == ["x2", "x3", "x4"]
        await served.db.put(5, "x5")
        assert (await c2.events(1))[0]["data"]["id"] == "x5"
    finally:
        c2.close()
    # the query form, for clients that cannot set headers
    c3 = await SSEClient.connect(served.server.port, path=f"/gdb/events?lastEventId={evs[-1]['id']}")
    try:
        assert (await c3.events(1))[0]["data"]["id"] == "x5"
    finally:
        c3.close()


async def test_unresumable_id_gets_a_reset(served):
    await served.db.put(1, "n")
    c = await SSEClient.connect(served.server.port, last_event_id="0000dead-3")
    try:
        ev = (await c.events(1))[0]
        assert ev["event"] == "reset"
        await served.db.put(2, "m")
        assert (await c.events(1))[0]["data"]["id"] == "m"
    finally:
        c.close()


async def test_resume_after_buffer_eviction_resets():
    async with gdbnb.open("small", path=False) as db:
        s = await serve(db, sse_buffer=3)
        try:
            c = await SSEClient.connect(s.server.port)
            await wait_for(lambda: s.context.hub().clients == 1)
            await db.put(0, "k0")
            first = (await c.events(1))[0]
            c.close()
            for i in range(1, 6):
                await db.put(i, f"k{i}")
            c2 = await SSEClient.connect(s.server.port, last_event_id=first["id"])
            assert (await c2.events(1))[0]["event"] == "reset"
            c2.close()
        finally:
            s.context.close()
            await s.server.stop()


async def test_server_notices_disconnects(served):
    clients = [await SSEClient.connect(served.server.port) for _ in range(5)]
    hub = served.context.hub()
    await wait_for(lambda: hub.clients == 5)
    for c in clients[:3]:
        c.close()
    await served.db.put(1, "ping")  # a write to a closed socket is noticed at the latest
    await wait_for(lambda: hub.clients == 2)
    for c in clients[3:]:
        c.close()
    await wait_for(lambda: hub.clients == 0)


async def test_many_concurrent_clients(served):
    n = 60
    clients = await asyncio.gather(*(SSEClient.connect(served.server.port) for _ in range(n)))
    hub = served.context.hub()
    await wait_for(lambda: hub.clients == n)
    for i in range(20):
        await served.db.put(i, f"c{i}")
    results = await asyncio.gather(*(c.events(20) for c in clients))
    for evs in results:
        assert [e["data"]["id"] for e in evs] == [f"c{i}" for i in range(20)]
    for c in clients:
        c.close()
    await wait_for(lambda: hub.clients == 0)


async def test_keepalive_comments():
    async with gdbnb.open("ka", path=False) as db:
        s = await serve(db, sse_keepalive=0.1)
        try:
            c = await SSEClient.connect(s.server.port)
            await asyncio.sleep(0.35)
            await db.put(1, "after")
            ev = (await c.events(1))[0]
            assert ev["data"]["id"] == "after"
            assert c.comments.count("keepalive") >= 2
            c.close()
        finally:
            s.context.close()
            await s.server.stop()


async def test_slow_client_is_dropped_not_the_node():
    async with gdbnb.open("slow", path=False) as db:
        s = await serve(db, sse_client_queue=5)
        try:
            slow = await SSEClient.connect(s.server.port)
            hub = s.context.hub()
            await wait_for(lambda: hub.clients == 1)
            # 20 events in one loop iteration: the handler cannot drain in between
            hub._publish_all([("node:added", {"id": f"s{i}"}) for i in range(20)])
            assert hub.clients == 0 and hub.counters["dropped_clients"] == 1
            # its connection is closed at once: the client sees EOF and may resume from its last id
            got = []
            while (ev := await slow.next_event()) is not None:
                got.append(ev["data"]["id"])
            assert got == [f"s{i}" for i in range(len(got))] and len(got) <= 5
            slow.close()
            # others are unaffected
            ok = await SSEClient.connect(s.server.port, last_event_id=f"{hub.epoch}-5")
            evs = await ok.events(15)
            assert [e["data"]["id"] for e in evs] == [f"s{i}" for i in range(5, 20)]
            ok.close()
        finally:
            s.context.close()
            await s.server.stop()


async def test_events_need_the_token_when_protected():
    async with gdbnb.open("p", path=False) as db:
        s = await serve(db, protect_reads=True)
        try:
            c = await SSEClient.connect(s.server.port)
            assert c.status == 401
            c.close()
            c = await SSEClient.connect(s.server.port, path=f"/gdb/events?token={TOKEN}")
            assert c.status == 200
            c.close()
        finally:
            s.context.close()
            await s.server.stop()


async def test_room_streams_and_bulk_batches(served):
    async with gdbnb.open("r2", path=False) as other:
        served.context.add_room(other)
        c = await SSEClient.connect(served.server.port, path="/gdb/rooms/r2/events")
        c2 = await SSEClient.connect(served.server.port, path="/gdb/events?room=r2")
        try:
            await wait_for(lambda: served.context.hub("r2").clients == 2)
            await served.db.put(1, "not-here")
            await other.put(1, "here")
            assert (await c.events(1))[0]["data"]["id"] == "here"
            assert (await c2.events(1))[0]["data"]["id"] == "here"
            data = {f"n{i}": {"id": f"n{i}", "value": i, "edges": [], "timestamp": {"physical": 1, "logical": i}}
                    for i in range(BULK_THRESHOLD + 1)}
            await other.merge_full_state(data, [], None, "peerX")
            ev = (await c.events(1))[0]
            assert ev["event"] == "nodes:bulk" and ev["data"]["counts"] == {"added": BULK_THRESHOLD + 1}
        finally:
            c.close()
            c2.close()
            served.context.remove_room("r2")


async def test_network_events_pass_through(served):
    c = await SSEClient.connect(served.server.port)
    try:
        await wait_for(lambda: served.context.hub().clients == 1)
        bus = served.db.events
        bus.emit("peer:join", {"peer": "P1", "type": "browser", "room": "graph-sync-room-webroom"})
        bus.emit("sync:served", {"peer": "P1", "kind": "delta", "ops": 3})
        bus.emit("peer:leave", {"peer": "P1", "type": "browser", "room": "graph-sync-room-webroom"})
        bus.emit("unrelated", {"x": 1})
        evs = await c.events(3)
        assert [e["event"] for e in evs] == ["peer:join", "sync:served", "peer:leave"]
        assert evs[0]["data"]["peer"] == "P1" and evs[0]["data"]["type"] == "browser"
        assert served.context.hub().counters["sync_served"] == 1
    finally:
        c.close()


def test_hub_from_another_thread_hops_to_its_loop():
    """A SyncDatabase emits on its own thread; the hub must publish on the server's loop."""
    sdb = gdbnb.connect("hop", path=False)

    async def main() -> list[str]:
        hub = EventHub(sdb.db)
        hub.start()
        sub = hub.subscribe()
        await asyncio.to_thread(sdb.put, 1, "t1")
        ev = await asyncio.wait_for(sub.get(), 5)
        hub.close()
        return [ev.event]

    try:
        assert asyncio.run(main()) == ["node:added"]
    finally:
        sdb.close()
