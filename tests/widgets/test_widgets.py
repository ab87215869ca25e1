"""The widgets' Python side without a browser: batching, thread safety, queries, both db kinds."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

import pytest

import gdbnb
from gdbnb.core.query import run_map
from gdbnb.widgets import GraphView, QueryView, RoomView

from .conftest import attach


def bulk_put(db: gdbnb.SyncDatabase, records: list[tuple[str, Any]]) -> None:
    """Many puts applied in one loop iteration: one burst of change events."""

    async def go(adb: gdbnb.Database) -> None:
        await asyncio.gather(*(adb.put(v, i) for i, v in records))

    db.call(go)


def settle(widget: Any) -> None:
    time.sleep(widget._throttle.interval * 1.5)
    widget.flush()


# ------------------------------------------------------------------------------ no CDN


@pytest.mark.parametrize("cls", [GraphView, QueryView, RoomView])
def test_widget_code_is_vendored_no_remote_import(cls: type) -> None:
    code = cls._esm
    assert "export default" in code
    assert not re.search(r"""\bimport\s*(?:[\w*{}\s,]+from\s*)?\(?\s*["']https?:""", code)
    assert not re.search(r"""\bimport\s*\(\s*["'`]\s*(?:https?:)?//""", code)
    for cdn in ("esm.sh", "unpkg.com", "jsdelivr", "cdnjs", "skypack"):
        assert cdn not in code


def test_force_graph_is_vendored_with_its_license() -> None:
    from gdbnb.widgets._bundle import STATIC

    assert (STATIC / "force-graph.min.js").stat().st_size > 100_000
    assert "MIT License" in (STATIC / "force-graph.LICENSE.txt").read_text()


# ------------------------------------------------------------------------------ GraphView


def test_graph_view_burst_is_coalesced(sdb: gdbnb.SyncDatabase) -> None:
    sdb.put({"name": "root"}, "root")
    view = GraphView(sdb)
    fe = attach(view)
    assert fe.kinds() == ["snapshot"] and set(fe.nodes) == {"root"}
    for k in range(5):
        bulk_put(sdb, [(f"n{k}-{i}", {"name": f"n{i}"}) for i in range(1000)])
    sdb.put({"name": "root", "v": 2}, "root")  # the same id again: one upsert
    settle(view)
    assert len(fe.nodes) == 5001
    deltas = [m for m in fe.messages if m["type"] == "delta"]
    assert 1 <= len(deltas) <= 15  # 5000 changes, a handful of messages
    assert all(len({n["id"] for n in d["upsert"]}) == len(d["upsert"]) for d in deltas)
    assert view.node_count == 5001


def test_graph_view_links_updates_removes_and_details(sdb: gdbnb.SyncDatabase) -> None:
    view = GraphView(sdb)
    fe = attach(view)
    sdb.put({"name": "Ada", "type": "person"}, "a")
    sdb.put({"title": "Notes"}, "b")
    sdb.link("a", "b")
    settle(view)
    assert fe.nodes["a"] == {"id": "a", "label": "Ada", "group": "person", "edges": ["b"]}
    assert fe.nodes["b"]["label"] == "Notes"
    assert (view.node_count, view.link_count) == (2, 1)
    sdb.remove("b")
    settle(view)
    assert set(fe.nodes) == {"a"} and fe.nodes["a"]["edges"] == []
    assert view.link_count == 0
    view._on_msg(view, {"type": "details", "id": "a"}, [])
    view.flush()  # queued behind the update on the loop thread
    assert fe.messages[-1]["type"] == "details"
    assert fe.messages[-1]["node"]["value"] == {"name": "Ada", "type": "person"}
    assert view.selected["id"] == "a"


def test_graph_view_query_filter_and_change(sdb: gdbnb.SyncDatabase) -> None:
    for i in range(20):
        sdb.put({"n": i, "kind": "even" if i % 2 == 0 else "odd"}, f"x{i}")
    view = GraphView(sdb, query={"kind": "even"})
    fe = attach(view)
    assert set(fe.nodes) == {f"x{i}" for i in range(0, 20, 2)}
    sdb.put({"n": 0, "kind": "odd"}, "x0")  # leaves the filter
    sdb.put({"n": 99, "kind": "even"}, "x99")  # enters it
    settle(view)
    assert "x0" not in fe.nodes and "x99" in fe.nodes
    view.query = {"n": {"$gte": 15}}
    view.flush()  # queued behind the update on the loop thread
    assert fe.messages[-1]["type"] == "snapshot"
    assert set(fe.nodes) == {"x15", "x16", "x17", "x18", "x19", "x99"}
    view.query = {"n": {"$bogus": 1}}
    view.flush()  # queued behind the update on the loop thread
    assert "bogus" in view.error
    assert set(fe.nodes) == {"x15", "x16", "x17", "x18", "x19", "x99"}  # the old filter stays


def test_graph_view_edge_query(sdb: gdbnb.SyncDatabase) -> None:
    sdb.put({"name": "root"}, "r")
    for i in range(3):
        sdb.put({"name": f"c{i}"}, f"c{i}")
        sdb.link("r", f"c{i}")
    view = GraphView(sdb, query={"name": "root", "$edge": {}})
    fe = attach(view)
    assert set(fe.nodes) == {"c0", "c1", "c2"}
    sdb.put({"name": "c3"}, "c3")
    sdb.link("c2", "c3")
    settle(view)
    assert set(fe.nodes) == {"c0", "c1", "c2", "c3"}


def test_graph_view_threads_hammering_while_query_changes(sdb: gdbnb.SyncDatabase) -> None:
    """Writers on 4 threads, events on the loop thread, query changes and flushes on this one."""
    view = GraphView(sdb, query={"w": {"$gte": 0}}, interval=0.02)
    fe = attach(view)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(150):
                nid = f"w{w}-{i % 40}"
                sdb.put({"w": w, "i": i}, nid)
                if i % 7 == 0:
                    sdb.link(nid, f"w{(w + 1) % 4}-{i % 40}")
                if i % 11 == 0:
                    sdb.remove(f"w{w}-{(i + 5) % 40}")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    queries = [{"w": {"$gte": 0}}, {"w": {"$in": [1, 2]}}, {"i": {"$lt": 75}}]
    k = 0
    while any(t.is_alive() for t in threads):
        view.query = queries[k % len(queries)]
        k += 1
        time.sleep(0.01)
        view.flush()
    for t in threads:
        t.join()
    stop.set()
    assert not errors
    final = {"i": {"$gte": 0}}
    view.query = final
    view.flush()  # queued behind the update on the loop thread
    settle(view)
    nodes = sdb.db.graph.nodes
    expected = {n.id: list(n.edges) for n in sdb.call(lambda db: _async_map(db, final))}
    assert {i: n["edges"] for i, n in fe.nodes.items()} == expected
    assert view.node_count == len(expected) and len(nodes) >= len(expected)


async def _async_map(db: gdbnb.Database, query: dict[str, Any]) -> list[Any]:
    return run_map(db.graph.nodes, query)


async def test_graph_view_with_async_database() -> None:
    async with gdbnb.open("widgets-async", path=False) as db:
        await db.put({"name": "a"}, "a")
        view = GraphView(db)
        fe = attach(view)
        assert set(fe.nodes) == {"a"}
        await asyncio.gather(*(db.put({"name": f"n{i}"}, f"n{i}") for i in range(500)))
        await db.link("a", "n1")
        await asyncio.sleep(0.25)
        assert len(fe.nodes) == 501 and fe.nodes["a"]["edges"] == ["n1"]
        assert len([m for m in fe.messages if m["type"] == "delta"]) <= 3
        view.close()
        await db.put({"name": "late"}, "late")
        await asyncio.sleep(0.15)
        assert "late" not in fe.nodes  # closed views stop following


# ------------------------------------------------------------------------------ QueryView


def test_query_view_sort_page_live_and_edit(sdb: gdbnb.SyncDatabase) -> None:
    bulk_put(sdb, [(f"p{i:02d}", {"name": f"person {i}", "age": i}) for i in range(30)])
    view = QueryView(sdb, {"age": {"$gte": 10}}, field="age", order="desc", page_size=5)
    assert view.total == 20
    assert [r["id"] for r in view.rows] == ["p29", "p28", "p27", "p26", "p25"]
    assert view.columns == ["name", "age"]
    view.page = 3
    view.flush()  # queued behind the update on the loop thread
    assert [r["value"]["age"] for r in view.rows] == [14, 13, 12, 11, 10]
    view.page = 99  # clamped to the last page
    view.flush()  # queued behind the update on the loop thread
    assert view.page == 3
    sdb.put({"name": "old", "age": 99}, "old")
    settle(view)
    assert view.total == 21 and view.rows[-1]["id"] == "p11"
    view.order = "asc"
    view.page = 0
    view.flush()  # queued behind the update on the loop thread
    assert [r["id"] for r in view.rows][:2] == ["p10", "p11"]
    view.query = {"name": {"$like": "person 2%"}}  # an edit from the front end lands the same way
    view.flush()  # queued behind the update on the loop thread
    assert view.page == 0 and view.total == 11  # "person 2" and 20-29
    view.query = {"age": {"$nope": 1}}
    view.flush()  # queued behind the update on the loop thread
    assert "nope" in view.error and view.total == 11


def test_query_view_refreshes_once_per_burst(sdb: gdbnb.SyncDatabase) -> None:
    view = QueryView(sdb)
    before = view.flushes
    for k in range(3):
        bulk_put(sdb, [(f"b{k}-{i}", {"i": i}) for i in range(1000)])
    settle(view)
    assert view.total == 3000
    assert view.flushes - before <= 6


# ------------------------------------------------------------------------------ RoomView


def test_room_view_follows_peer_events(sdb: gdbnb.SyncDatabase) -> None:
    view = RoomView(sdb)
    assert view.room == "widgets-test" and view.online is False and view.peers == []
    bus = sdb.events

    async def emit(name: str, payload: Any) -> None:
        bus.emit(name, payload)

    sdb.call(lambda db: emit("peer:seen", {"peer": "p1", "type": None, "room": "r"}))
    sdb.call(lambda db: emit("peer:join", {"peer": "p1", "type": "browser", "room": "r"}))
    sdb.call(lambda db: emit("peer:join", {"peer": "p2", "type": "superpeer", "room": "r"}))
    sdb.call(lambda db: emit("sync:served", {"peer": "p2", "kind": "full", "nodes": 3}))
    sdb.call(lambda db: emit("peer:leave", {"peer": "p2", "type": "superpeer", "room": "r", "reason": "bye"}))
    sdb.put({"x": 1}, "x")
    settle(view)
    states = {p["peer"]: (p["state"], p["type"]) for p in view.peers}
    assert states == {"p1": ("connected", "browser"), "p2": ("left", "superpeer")}
    texts = [a["text"] for a in view.activity]
    assert texts[0].startswith("p2 left as superpeer (bye)")
    assert any("served full sync to p2: 3 nodes" in t for t in texts)
    assert view.stats["nodes"] == 1 and view.stats["local_writes"] == 1
