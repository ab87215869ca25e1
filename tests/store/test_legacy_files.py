"""genosdb-server files: round trip, files shaped like the JS ones, refusal of corrupt files."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from pathlib import Path

import msgpack
import pytest

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import Timestamp
from gdbnb.core.node import MISSING, Node
from gdbnb.errors import StoreCorruptError
from gdbnb.store.legacy_files import export_files, import_files, import_files_detailed, legacy_file_names


def _graph() -> Graph:
    g = Graph()
    g.put({"name": "Ada", "age": 36, "score": 0.5, "tags": ["a", "b"], "nested": {"x": None}}, id="user:ada")
    g.put("just text", id="note")
    g.put(True, id="flag")
    g.link("user:ada", "note")
    g.link("user:ada", "flag")
    return g


def test_round_trip(tmp_path: Path) -> None:
    g = _graph()
    gpath, tpath = export_files(g.nodes, g.global_ts, tmp_path, "my-room")
    assert gpath == tmp_path / "my-room_graph.msgpack" and tpath == tmp_path / "my-room_timestamp.json"
    nodes, ts = import_files(gpath, tpath)
    assert {n.id: n for n in nodes} == g.nodes
    assert ts == g.global_ts
    assert json.loads(tpath.read_text()) == g.global_ts.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([gpath.name, tpath.name])  # no temp files left


def test_export_layout_is_the_js_one(tmp_path: Path) -> None:
    g = Graph()
    g.put({"f": 2.0, "g": 2.5, "big": 5_000_000_000, "2": "b", "1": "a"}, id="x")
    g.apply_ops([{"type": "upsert", "id": "novalue", "timestamp": {"physical": 7, "logical": 1}}])
    gpath, _ = export_files(list(g.nodes.values()), g.global_ts, tmp_path, "r")
    raw = zlib.decompress(gpath.read_bytes())  # RFC 1950, not raw deflate or gzip
    assert gpath.read_bytes()[:1] == b"\x78"
    obj = msgpack.unpackb(raw)
    assert list(obj) == ["x", "novalue"]
    x = obj["x"]
    assert list(x) == ["id", "value", "edges", "timestamp"]
    assert list(x["value"]) == ["1", "2", "f", "g", "big"]  # JS key order: array indices first
    assert type(x["value"]["f"]) is int  # integral float -> int, like JS
    assert "novalue" in obj and obj["novalue"]["value"] is None  # undefined kept as nil
    # byte level: 2.0 -> positive fixint, 2.5 -> float64 (cb), 5e9 -> uint64 (cf)
    assert b"\xa1f\x02" in raw and b"\xa1g\xcb" in raw and b"\xa3big\xcf\x00\x00\x00\x01\x2a\x05\xf2\x00" in raw


def _js_like_file(path: Path, node_map: dict, level: int = 6) -> None:
    """Built by hand the way GenosDB writes it: zlib(msgpack(map))."""
    path.write_bytes(zlib.compress(msgpack.packb(node_map, use_bin_type=True), level))


def test_import_hand_built_js_file(tmp_path: Path) -> None:
    # @msgpack/msgpack writes a JS millisecond timestamp as uint64 (cf …) and 1.5 as float64
    body = (
        b"\x81"  # map of 1
        + b"\xa2n1"
        + b"\x84"
        + b"\xa2id\xa2n1"
        + b"\xa5value\x82\xa1a\x01\xa1b\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"
        + b"\xa5edges\x91\xa2n2"
        + b"\xa9timestamp\x82\xa8physical\xcf\x00\x00\x01\x8f\x00\x00\x00\x00\xa7logical\x05"
    )
    gpath = tmp_path / "room_graph.msgpack"
    gpath.write_bytes(zlib.compress(body))
    tpath = tmp_path / "room_timestamp.json"
    tpath.write_text('{"physical":1713000000000,"logical":9}')
    nodes, ts = import_files(gpath, tpath)
    assert nodes == [Node("n1", {"a": 1, "b": 1.5}, ["n2"], Timestamp(0x18F00000000, 5))]
    assert ts == Timestamp(1713000000000, 9)


def test_import_gzip_and_odd_values(tmp_path: Path) -> None:
    gpath = tmp_path / "g.msgpack"
    node_map = {
        "bin": {"id": "bin", "value": b"\x01\x02", "edges": [], "timestamp": {"physical": 1, "logical": 0}},
        "nil": {"id": "nil", "value": None, "edges": ["a", "a", 3, ""], "timestamp": {"physical": 2.0, "logical": 1}},
        "nov": {"id": "nov", "edges": [], "timestamp": {"physical": 3, "logical": 0}},
    }
    gpath.write_bytes(gzip.compress(msgpack.packb(node_map, use_bin_type=True)))
    res = import_files_detailed(gpath)
    got = {n.id: n for n in res.nodes}
    assert got["bin"].value == {"0": 1, "1": 2}  # a Uint8Array through JSON
    assert got["nil"].edges == ["a"] and got["nil"].timestamp == Timestamp(2, 1)
    assert got["nov"].value is MISSING
    assert res.global_ts is None and res.skipped == 0


def test_invalid_records_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ok = {"id": "ok", "value": 1, "edges": [], "timestamp": {"physical": 1, "logical": 1}}
    node_map = {
        "ok": ok,
        "": {**ok, "id": ""},
        "nots": {**ok, "id": "nots", "timestamp": {"physical": -1, "logical": 0}},
        "nots2": {**ok, "id": "nots2", "timestamp": None},
        "mismatch": {**ok, "id": "other"},
        "notdict": 42,
        "nan": {**ok, "id": "nan", "value": float("nan")},
        5: {**ok, "id": 5},
    }
    gpath = tmp_path / "g.msgpack"
    _js_like_file(gpath, node_map)
    res = import_files_detailed(gpath)
    assert [n.id for n in res.nodes] == ["ok"] and res.skipped == 7
    with caplog.at_level(logging.WARNING):
        nodes, _ = import_files(gpath)
    assert len(nodes) == 1 and "skipped 7" in caplog.text and str(gpath) in caplog.text


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "truncated"),
        (b"not zlib at all", "not a zlib"),
        (zlib.compress(b"\xc1\xc1\xc1"), "not a MessagePack"),
        (zlib.compress(msgpack.packb([1, 2, 3])), "not a node map"),
        (zlib.compress(msgpack.packb({"a": 1}) + b"\x00"), "not a MessagePack"),
        (zlib.compress(msgpack.packb({"a": {"b": "c" * 100}}))[:-10], "truncated"),
    ],
)
def test_corrupt_graph_file_named(tmp_path: Path, content: bytes, match: str) -> None:
    gpath = tmp_path / "bad_graph.msgpack"
    gpath.write_bytes(content)
    with pytest.raises(StoreCorruptError, match=match) as ei:
        import_files(gpath)
    assert str(gpath) in str(ei.value)


def test_inflate_bound(tmp_path: Path) -> None:
    gpath = tmp_path / "bomb_graph.msgpack"
    gpath.write_bytes(zlib.compress(msgpack.packb({"a": "x" * 5_000_000}), 9))
    assert gpath.stat().st_size < 20_000
    with pytest.raises(StoreCorruptError, match="more than 1000000 bytes") as ei:
        import_files(gpath, max_inflated=1_000_000)
    assert str(gpath) in str(ei.value)
    import_files(gpath, max_inflated=6_000_000)  # skipped (not a node record), not refused


@pytest.mark.parametrize("content", [b"{", b'{"physical":"x","logical":1}', b"[1,2]", b"x" * 100_000])
def test_corrupt_timestamp_file_named(tmp_path: Path, content: bytes) -> None:
    gpath = tmp_path / "g.msgpack"
    _js_like_file(gpath, {})
    tpath = tmp_path / "t.json"
    tpath.write_bytes(content)
    with pytest.raises(StoreCorruptError) as ei:
        import_files(gpath, tpath)
    assert str(tpath) in str(ei.value)


def test_export_replaces_atomically(tmp_path: Path) -> None:
    g = _graph()
    gpath, _ = export_files(g.nodes, g.global_ts, tmp_path, "r")
    old = gpath.read_bytes()

    class Boom(Exception):
        pass

    class BadNode(Node):
        @property  # type: ignore[override]
        def timestamp(self):  # noqa: D401 - fails halfway through the export
            raise Boom

        @timestamp.setter
        def timestamp(self, v):
            pass

    nodes = list(g.nodes.values()) + [BadNode("bad", 1, [], Timestamp(1, 1))]
    with pytest.raises(Boom):
        export_files(nodes, g.global_ts, tmp_path, "r")
    assert gpath.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(legacy_file_names("r"))


def test_unsafe_room_names_make_safe_files(tmp_path: Path) -> None:
    g = _graph()
    gpath, tpath = export_files(g.nodes, None, tmp_path, "../a/b")
    assert gpath.parent == tmp_path and tpath.parent == tmp_path
    assert tpath.read_text() == "null"
    nodes, ts = import_files(gpath, tpath)
    assert len(nodes) == 3 and ts is None


def test_many_nodes_stream(tmp_path: Path) -> None:
    nodes = [Node(f"n{i}", {"i": i, "s": "x" * 50}, [], Timestamp(1_700_000_000_000 + i, i)) for i in range(30_000)]
    gpath, tpath = export_files(nodes, Timestamp(1, 1), tmp_path, "big")
    back, _ = import_files(gpath, tpath)
    assert back == nodes
