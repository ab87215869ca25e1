"""The async data API: writes, reads, realtime callbacks, middleware, persistence."""

from __future__ import annotations

import asyncio

import pytest

import gdbnb
from gdbnb.errors import ClosedError, QueryError, ValidationError


@pytest.fixture
async def db(tmp_path):
    async with gdbnb.open("testroom", path=tmp_path / "db.sqlite") as d:
        yield d


async def test_put_get_roundtrip(db):
    nid = await db.put({"name": "Ana", "tags": ["a", "b"]})
    rec = await db.get(nid)
    assert rec["id"] == nid
    assert rec["value"] == {"name": "Ana", "tags": ["a", "b"]}
    assert rec["edges"] == []
    assert set(rec["timestamp"]) == {"physical", "logical"}
    # generated ids are lowercase UUID4
    assert len(nid) == 36 and nid == nid.lower() and nid[14] == "4"


async def test_put_with_id_replaces_value_and_keeps_edges(db):
    await db.put({"v": 1}, "a")
    await db.put({"v": 2}, "b")
    assert await db.link("a", "b") is True
    await db.put({"v": 3}, "a")
    rec = await db.get("a")
    assert rec["value"] == {"v": 3} and rec["edges"] == ["b"]


async def test_returned_records_are_copies(db):
    await db.put({"list": [1]}, "a")
    rec = await db.get("a")
    rec["value"]["list"].append(2)
    assert (await db.get("a"))["value"] == {"list": [1]}


async def test_link_missing_end_is_false(db):
    await db.put({}, "a")
    assert await db.link("a", "nope") is False
    assert (await db.get("a"))["edges"] == []


async def test_remove_strips_incoming_edges(db):
    for i in "abc":
        await db.put({"n": i}, i)
    await db.link("a", "c")
    await db.link("b", "c")
    assert await db.remove("c") is True
    assert await db.get("c") is None
    assert (await db.get("a"))["edges"] == [] and (await db.get("b"))["edges"] == []
    assert await db.remove("c") is False


async def test_bad_input_is_refused_and_changes_nothing(db):
    for bad in ({1: "int key"}, {"x": {1, 2}}, {"f": float("nan")}, object()):
        with pytest.raises(ValidationError):
            await db.put(bad)
    with pytest.raises(ValidationError):
        await db.put({}, 42)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await db.put({}, "")
    assert db.stats()["nodes"] == 0
    assert len(db.graph.oplog) == 0


async def test_bad_queries_are_refused(db):
    await db.put({"a": 1})
    with pytest.raises(QueryError):
        await db.map({"a": {"$nope": 1}})
    with pytest.raises(QueryError):
        await db.map({"a": {"$regex": "("}})
    with pytest.raises(ValidationError):
        await db.map(order="sideways")


async def test_map_filters_sorts_and_limits(db):
    for i in range(10):
        await db.put({"type": "item", "i": i}, f"n{i}")
    await db.put({"type": "other"}, "x")
    res = await db.map({"type": "item", "i": {"$gte": 5}}, field="i", order="desc", limit=3)
    assert [r["value"]["i"] for r in res["results"]] == [9, 8, 7]
    assert res["unsubscribe"] is None
    # GenosDB's call shape: one options object
    res2 = await db.map({"query": {"type": "item"}, "field": "i", "$limit": 2})
    assert [r["id"] for r in res2["results"]] == ["n0", "n1"]


async def test_realtime_map_sees_local_changes(db):
    await db.put({"type": "t", "n": 1}, "a")
    events: list[tuple[str, str]] = []
    res = await db.map({"type": "t"}, callback=lambda ev: events.append((ev["action"], ev["id"])))
    assert events == [("initial", "a")]
    await db.put({"type": "t", "n": 2}, "b")
    await db.put({"type": "t", "n": 3}, "a")
    await db.put({"type": "other"}, "b")  # stops matching
    await db.remove("a")
    assert events[1:] == [("added", "b"), ("updated", "a"), ("removed", "b"), ("removed", "a")]
    res["unsubscribe"]()
    await db.put({"type": "t"}, "c")
    assert ("added", "c") not in events


async def test_reactive_get(db):
    seen = []
    handle = await db.get("a", seen.append)
    assert handle["result"] is None and seen == [None]
    await db.put({"v": 1}, "a")
    await db.remove("a")
    assert [s and s["value"] for s in seen] == [None, {"v": 1}, None]
    handle["unsubscribe"]()


async def test_middleware_filters_remote_ops(db):
    async def no_removes(ops):
        return [op for op in ops if op.get("type") != "remove"]

    db.use(no_removes)
    ts = {"physical": 2_000_000_000_000 - 10**9, "logical": 1}
    await db.apply_remote_ops([{"type": "upsert", "id": "r", "value": {"x": 1}, "timestamp": ts}], "peerA")
    ts2 = {"physical": ts["physical"] + 1, "logical": 2}
    await db.apply_remote_ops([{"type": "remove", "id": "r", "timestamp": ts2}], "peerA")
    assert (await db.get("r"))["value"] == {"x": 1}
    db.use(lambda ops: [])  # a sync middleware that drops everything
    await db.apply_remote_ops([{"type": "upsert", "id": "s", "value": 1, "timestamp": ts2}], "peerA")
    assert await db.get("s") is None


async def test_remote_changes_reach_realtime_callbacks(db):
    events = []
    await db.map({"k": 1}, callback=lambda ev: events.append(ev["action"]))
    ts = {"physical": 1_700_000_000_000, "logical": 5}
    await db.apply_remote_ops([{"type": "upsert", "id": "r", "value": {"k": 1}, "timestamp": ts}], "peerA")
    assert events == ["added"]


async def test_clear_resets_everything(db):
    await db.put({"a": 1}, "a")
    await db.clear()
    assert db.stats()["nodes"] == 0 and db.graph.global_ts is None and len(db.graph.oplog) == 0


async def test_reopen_restores_nodes_edges_oplog_and_clock(tmp_path):
    path = tmp_path / "r.sqlite"
    async with gdbnb.open("r", path=path) as d:
        await d.put({"v": 1}, "a")
        await d.put({"v": 2}, "b")
        await d.link("a", "b")
        await d.remove("b")
        await d.put({"v": 3}, "c")
        g_before = d.graph.global_ts
        oplog_before = list(d.graph.oplog)
    async with gdbnb.open("r", path=path) as d2:
        assert (await d2.get("a"))["edges"] == []
        assert await d2.get("b") is None
        assert (await d2.get("c"))["value"] == {"v": 3}
        assert d2.graph.global_ts == g_before
        assert list(d2.graph.oplog) == oplog_before
        # the clock was restored: a new write is newer than everything before
        await d2.put({"v": 4}, "d")
        assert d2.graph.nodes["d"].timestamp > g_before


async def test_closed_database_refuses_use(tmp_path):
    d = await gdbnb.open("c", path=tmp_path / "c.sqlite")
    await d.close()
    await d.close()  # idempotent
    with pytest.raises(ClosedError):
        await d.put({})


async def test_parallel_puts_are_grouped_and_all_durable(tmp_path):
    path = tmp_path / "p.sqlite"
    async with gdbnb.open("p", path=path) as d:
        ids = await asyncio.gather(*(d.put({"i": i}) for i in range(500)))
    async with gdbnb.open("p", path=path) as d2:
        assert all(i in d2.graph.nodes for i in ids)


async def test_in_memory_database_has_no_store():
    async with gdbnb.open("mem", path=False) as d:
        await d.put({"a": 1}, "a")
        assert d.store is None and (await d.get("a"))["value"] == {"a": 1}
