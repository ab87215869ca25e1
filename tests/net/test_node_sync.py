"""Two and three gdbnb nodes in one process: real RelayServer, real aiortc (loopback), real sync."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest


import gdbnb  # noqa: E402
from gdbnb.net.relay_server import RelayServer  # noqa: E402

TIMEOUT = 30.0
ROOM_OPTS = {"announce_interval": 0.5}


@pytest.fixture
async def relay() -> AsyncIterator[RelayServer]:
    async with RelayServer("127.0.0.1", 0) as server:
        yield server


async def open_node(tmp_path: Path, name: str, relay: RelayServer, room: str = "t", **kw: Any) -> Any:
    kw.setdefault("room_options", ROOM_OPTS)
    return await gdbnb.open(room, rtc=True, relay_urls=[relay.url], loopback=True, path=tmp_path / f"{name}.sqlite", **kw)


def until(db: Any, event: str, pred: Callable[[Any], bool] = lambda p: True) -> asyncio.Future[Any]:
    """A future set by the first ``event`` on ``db.events`` whose payload matches ``pred``."""
    fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def cb(payload: Any) -> None:
        if not fut.done() and pred(payload):
            fut.set_result(payload)
            unsub()

    unsub = db.events.on(event, cb)
    return fut


def holds(db: Any, pred: Callable[[Any], bool]) -> asyncio.Future[None]:
    """A future set once ``pred(db.graph)`` holds (checked now and after every change)."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if pred(db.graph):
        fut.set_result(None)
        return fut

    def cb(_: Any) -> None:
        if not fut.done() and pred(db.graph):
            fut.set_result(None)
            unsub()

    unsub = db.events.on("change", cb)
    return fut


async def wait(fut: "asyncio.Future[Any]", timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(fut, timeout)


async def connected(*dbs: Any) -> None:
    need = len(dbs) - 1
    await wait(asyncio.gather(*(holds_peers(d, need) for d in dbs)))


def holds_peers(db: Any, n: int) -> asyncio.Future[None]:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if len(db.network.peers()) >= n:
        fut.set_result(None)
        return fut

    def cb(_: Any) -> None:
        if not fut.done() and len(db.network.peers()) >= n:
            fut.set_result(None)
            unsub()

    unsub = db.events.on("peer:join", cb)
    return fut


def values(db: Any) -> dict[str, Any]:
    return {k: n.value for k, n in db.graph.nodes.items()}


async def test_put_link_remove_propagate_both_ways(tmp_path: Path, relay: RelayServer) -> None:
    a = await open_node(tmp_path, "a", relay)
    b = await open_node(tmp_path, "b", relay)
    try:
        await connected(a, b)
        assert {p["type"] for p in a.network.peers()} == {"superpeer"}
        await a.put({"v": 1}, "x")
        await b.put({"v": 2}, "y")
        await wait(asyncio.gather(holds(b, lambda g: "x" in g.nodes), holds(a, lambda g: "y" in g.nodes)))
        await b.link("y", "x")
        await wait(holds(a, lambda g: g.nodes["y"].edges == ["x"]))
        await a.remove("x")
        await wait(holds(b, lambda g: "x" not in g.nodes and g.nodes["y"].edges == []))
        assert values(a) == values(b) == {"y": {"v": 2}}
        st = a.network.status()
        assert st["peer_id"] == a.network.peer_id and st["peers"]
    finally:
        await a.close()
        await b.close()


async def test_realtime_map_fires_for_remote_changes(tmp_path: Path, relay: RelayServer) -> None:
    a = await open_node(tmp_path, "a", relay)
    b = await open_node(tmp_path, "b", relay)
    try:
        await connected(a, b)
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def cb(ev: Any) -> None:
            if isinstance(ev, dict) and ev.get("action") == "added" and not got.done():
                got.set_result(ev)

        await b.map({"query": {"kind": "live"}}, cb)
        await a.put({"kind": "live", "n": 1}, "l1")
        ev = await wait(got)
        assert ev["id"] == "l1"
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("path", ["delta", "full"])
async def test_offline_node_catches_up_on_rejoin(tmp_path: Path, relay: RelayServer, path: str) -> None:
    a = await open_node(tmp_path, "a", relay, oplog_size=5 if path == "full" else 1000)
    b = await open_node(tmp_path, "b", relay, oplog_size=5 if path == "full" else 1000)
    await connected(a, b)
    await a.put({"v": 0}, "base")
    await wait(holds(b, lambda g: "base" in g.nodes))
    await b.close()
    for i in range(12):
        await a.put({"v": i}, f"n{i}")
    kind = until(a, "sync:served", lambda p: p["kind"] == path)
    b = await open_node(tmp_path, "b", relay, oplog_size=5 if path == "full" else 1000)
    try:
        await wait(holds(b, lambda g: all(f"n{i}" in g.nodes for i in range(12))))
        await wait(kind)
        assert values(a) == values(b)
    finally:
        await a.close()
        await b.close()


async def test_concurrent_offline_writes_converge(tmp_path: Path, relay: RelayServer) -> None:
    a = await open_node(tmp_path, "a", relay)
    b = await open_node(tmp_path, "b", relay)
    await connected(a, b)
    await a.put({"v": "init"}, "doc")
    await wait(holds(b, lambda g: "doc" in g.nodes))
    await b.close()
    await a.put({"v": "A-offline"}, "doc")
    await a.put({"who": "A"}, "a-off")
    b = await gdbnb.open("t", path=tmp_path / "b.sqlite")  # offline: no network
    await b.put({"v": "B-offline"}, "doc")  # later HLC: wins everywhere
    await b.put({"who": "B"}, "b-off")
    await b.link("b-off", "doc")
    await b.close()
    b = await open_node(tmp_path, "b", relay)
    try:
        done = lambda g: {"a-off", "b-off"} <= set(g.nodes) and g.nodes["doc"].value == {"v": "B-offline"}  # noqa: E731
        await wait(asyncio.gather(holds(a, done), holds(b, done)))
        assert values(a) == values(b)
        assert a.graph.nodes["b-off"].edges == ["doc"]
    finally:
        await a.close()
        await b.close()


async def test_three_nodes_converge(tmp_path: Path, relay: RelayServer) -> None:
    dbs = [await open_node(tmp_path, n, relay) for n in "abc"]
    try:
        await connected(*dbs)
        for i, d in enumerate(dbs):
            await d.put({"from": i}, f"k{i}")
        await wait(asyncio.gather(*(holds(d, lambda g: {"k0", "k1", "k2"} <= set(g.nodes)) for d in dbs)))
        assert values(dbs[0]) == values(dbs[1]) == values(dbs[2])
    finally:
        for d in dbs:
            await d.close()


async def test_wrong_password_is_isolated(tmp_path: Path, relay: RelayServer) -> None:
    a = await open_node(tmp_path, "a", relay, password="right")
    b = await open_node(tmp_path, "b", relay, password="right")
    c = await open_node(tmp_path, "c", relay, password="wrong")
    try:
        await connected(a, b)
        await a.put({"secret": 1}, "s")
        await wait(holds(b, lambda g: "s" in g.nodes))
        assert c.network.peers() == [] and "s" not in c.graph.nodes
    finally:
        for d in (a, b, c):
            await d.close()


@pytest.mark.slow
async def test_100k_node_catch_up_from_another_gdbnb_node(tmp_path: Path, relay: RelayServer) -> None:
    a = await open_node(tmp_path, "a", relay)
    rnd = random.Random(7)
    for i in range(100_000):
        a.graph.put({"type": "item", "i": i, "score": rnd.random()})  # bulk: graph only, then commit once
    a._record(gdbnb.ChangeBatch([], "bulk-load"))
    await a.flush()
    served = until(a, "sync:served", lambda p: p["kind"] == "full")
    b = await open_node(tmp_path, "b", relay)
    try:
        await wait(holds(b, lambda g: len(g.nodes) >= 100_000), 120)
        info = await wait(served, 60)
        assert info["nodes"] == 100_000 and info["parts"] >= 2
        assert values(a) == values(b)
    finally:
        await a.close()
        await b.close()
