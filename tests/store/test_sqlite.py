"""SQLiteStore: round trips through commit + reopen, trimming, clear, refusal of foreign files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import HybridClock, Timestamp
from gdbnb.core.node import MISSING, Node
from gdbnb.errors import ClosedError, StoreCorruptError, StoreError, StoreLockedError
from gdbnb.store import SQLiteStore, default_data_dir, default_store_path, room_file_stem
from gdbnb.store.paths import room_from_file_stem
from gdbnb.store.sqlite import _TRIM_SLACK

ROOM = "test-room"


def reopen(path: Path, room: str = ROOM, **kw) -> tuple[Graph, SQLiteStore]:
    store = SQLiteStore(path, room)
    snap = store.load()
    return Graph.from_snapshot(snap.nodes, snap.oplog, snap.global_ts, snap.clock, **kw), store


def by_id(nodes: list[Node]) -> dict[str, Node]:
    return {n.id: n for n in nodes}


def test_round_trip_nodes_edges_oplog_clock(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    with SQLiteStore(path, ROOM) as store:
        g.put({"name": "a", "n": [1, 2.5, None, True], "deep": {"x": {"y": "z"}}}, id="a")
        g.put("text", id="b")
        g.put(None, id="c")
        g.link("a", "b")
        g.link("a", "c")
        store.commit(g.take_journal())
        g.remove("c")  # strips the edge a -> c
        g.put(2**70, id="big")  # beyond 64 bits: stored losslessly
        store.commit(g.take_journal())
    g2, store = reopen(path)
    with store:
        assert g2.nodes == g.nodes
        assert g2.nodes["a"].edges == ["b"]
        assert list(g2.oplog) == list(g.oplog)
        assert g2.global_ts == g.global_ts
        assert g2.clock.current() >= g.clock.current()
        assert g2.oplog.tombstone("c") == g.oplog.tombstone("c")


def test_missing_value_and_float_survive(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    g.apply_ops([{"type": "upsert", "id": "nov", "timestamp": {"physical": 5, "logical": 1}}])
    g.put({"f": 2.0, "i": 2}, id="num")
    with SQLiteStore(path, ROOM) as store:
        store.commit(g.take_journal())
    with SQLiteStore(path, ROOM) as store:
        nodes = by_id(store.load().nodes)
    assert nodes["nov"].value is MISSING
    assert type(nodes["num"].value["f"]) is float and type(nodes["num"].value["i"]) is int


def test_surrogate_ids_and_values(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    g.put("v\ud800", id="id\udfff")
    g.put("plain", id="p")
    g.link("p", "id\udfff")
    with SQLiteStore(path, ROOM) as store:
        store.commit(g.take_journal())
        g.put("again", id="id\udfff")
        store.commit(g.take_journal())
    with SQLiteStore(path, ROOM) as store:
        nodes = by_id(store.load().nodes)
        assert nodes["id\udfff"].value == "again"
        assert nodes["p"].edges == ["id\udfff"]
        g.remove("id\udfff")
        store.commit(g.take_journal())
    with SQLiteStore(path, ROOM) as store:
        assert set(by_id(store.load().nodes)) == {"p"}


def test_oplog_trimmed_to_capacity(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph(oplog_size=10)
    with SQLiteStore(path, ROOM) as store:
        for i in range(25):
            g.put(i, id=f"n{i}")
            store.commit(g.take_journal())
        for i in range(7):
            g.put(i, id=f"m{i}")
        store.commit(g.take_journal())  # one journal with several entries
        rows = store._connection().execute("SELECT count(*) FROM oplog").fetchone()[0]
        assert 10 <= rows <= 10 + _TRIM_SLACK  # trimmed lazily
        assert [e["id"] for e in store.load().oplog] == [e["id"] for e in g.oplog]
        for i in range(200):
            g.put(i, id=f"k{i}")
            store.commit(g.take_journal())
        rows = store._connection().execute("SELECT count(*) FROM oplog").fetchone()[0]
        assert 10 <= rows <= 10 + _TRIM_SLACK
    g2, store = reopen(path, oplog_size=10)
    with store:
        assert [e["id"] for e in g2.oplog] == [e["id"] for e in g.oplog]
        assert len(g2.nodes) == 232
        assert len(store.load().oplog) == 10  # the slack rows are not returned


def test_big_journal_trims_in_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph(oplog_size=5)
    for i in range(50):
        g.put(i, id=f"n{i}")
    j = g.take_journal()
    assert len(j.oplog_appended) == 5
    with SQLiteStore(path, ROOM) as store:
        store.commit(j)
        assert [e["id"] for e in store.load().oplog] == [f"n{i}" for i in range(45, 50)]


def test_clear(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    with SQLiteStore(path, ROOM) as store:
        for i in range(5):
            g.put(i, id=f"n{i}")
        store.commit(g.take_journal())
        g.clear()
        g.put("after", id="z")  # a write after the clear in the same journal
        store.commit(g.take_journal())
    with SQLiteStore(path, ROOM) as store:
        snap = store.load()
    assert [n.id for n in snap.nodes] == ["z"]
    assert [e["id"] for e in snap.oplog] == ["z"]
    assert snap.global_ts == g.global_ts


def test_clear_alone_empties_everything(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    with SQLiteStore(path, ROOM) as store:
        g.put(1, id="a")
        store.commit(g.take_journal())
        g.clear()
        store.commit(g.take_journal())
        snap = store.load()
    assert snap.nodes == [] and snap.oplog == [] and snap.global_ts is None


def test_fresh_store_is_empty(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "new" / "dir" / "r.sqlite", ROOM) as store:
        snap = store.load()
    assert snap.nodes == [] and snap.oplog == [] and snap.global_ts is None and snap.clock is None


def test_clock_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    future = 10**13  # far ahead of the wall clock
    g = Graph(clock=HybridClock(Timestamp(future, 0)))
    g.put(1, id="a")
    with SQLiteStore(path, ROOM) as store:
        store.commit(g.take_journal())
    g2, store = reopen(path)
    store.close()
    assert g2.clock.current() >= Timestamp(future, 1)
    assert g2.put(2, id="b")[0].timestamp > g.nodes["a"].timestamp


def test_room_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    SQLiteStore(path, ROOM).close()
    with pytest.raises(StoreError, match="holds room 'test-room'"):
        SQLiteStore(path, "other")
    SQLiteStore(path, ROOM).close()  # the refusal released the lock


def test_closed_store_refuses(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "r.sqlite", ROOM)
    store.close()
    store.close()
    with pytest.raises(ClosedError):
        store.load()
    with pytest.raises(ClosedError):
        store.commit(Graph().take_journal())


def test_bad_durability(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteStore(tmp_path / "r.sqlite", ROOM, durability="maybe")


def test_full_durability_works(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    g = Graph()
    g.put(1, id="a")
    with SQLiteStore(path, ROOM, durability="full") as store:
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 2
        store.commit(g.take_journal())
    with SQLiteStore(path, ROOM) as store:
        assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 1
        assert [n.id for n in store.load().nodes] == ["a"]


# ---------------------------------------------------------------------- corrupt and foreign files


def _assert_refused_untouched(path: Path, match: str) -> None:
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match=match) as ei:
        with SQLiteStore(path, ROOM) as store:
            store.load()
    assert str(path) in str(ei.value)
    assert path.read_bytes() == before
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0


def test_random_bytes_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(os.urandom(5000))
    _assert_refused_untouched(path, "not an SQLite database")


def test_short_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"SQLite format 3\x00abc")
    _assert_refused_untouched(path, "not an SQLite database")


def test_foreign_sqlite_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users(name TEXT)")
    conn.execute("INSERT INTO users VALUES ('ada')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "not a gdbnb store")


def test_foreign_sqlite_with_same_table_names_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    conn = sqlite3.connect(path)
    for t in ("meta", "nodes", "oplog"):
        conn.execute(f"CREATE TABLE {t}(key TEXT, value TEXT)")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "not a gdbnb store")


def _store_with_nodes(path: Path, n: int) -> None:
    g = Graph()
    with SQLiteStore(path, ROOM) as store:
        for i in range(n):
            g.put({"i": i, "pad": "x" * 200}, id=f"node-{i:05d}")
        store.commit(g.take_journal())


def test_truncated_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _store_with_nodes(path, 2000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_refused_untouched(path, "corrupt|cannot read")


def test_bad_row_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _store_with_nodes(path, 3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE nodes SET data = x'c1' WHERE id = 'node-00001'")  # c1: never used in msgpack
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "bad node row 'node-00001'")


def test_corrupt_load_closes_and_releases(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _store_with_nodes(path, 3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE nodes SET data = x'c1' WHERE id = 'node-00001'")
    conn.commit()
    conn.close()
    store = SQLiteStore(path, ROOM)
    with pytest.raises(StoreCorruptError):
        store.load()
    assert store.closed
    path.rename(tmp_path / "moved-aside.sqlite")
    with SQLiteStore(path, ROOM) as fresh:  # the lock was released
        assert fresh.load().nodes == []


def test_bad_row_shape_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    _store_with_nodes(path, 3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE nodes SET data = x'93a178a17890' WHERE id = 'node-00002'")  # ["x","x",[]]
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "bad node row 'node-00002'")


def test_newer_schema_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    SQLiteStore(path, ROOM).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(path, ROOM)


def test_empty_files_are_initialized(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    SQLiteStore(empty, ROOM).close()
    blank = tmp_path / "blank.sqlite"
    sqlite3.connect(blank).execute("PRAGMA user_version = 0").close()
    with SQLiteStore(blank, ROOM) as store:
        assert store.load().nodes == []


# ---------------------------------------------------------------------- exclusive ownership


def test_second_opener_in_process_locked(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with SQLiteStore(path, ROOM):
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()}") as ei:
            SQLiteStore(path, ROOM)
        assert str(path) in str(ei.value)
    SQLiteStore(path, ROOM).close()  # released on close


def test_second_opener_other_process_locked(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    code = textwrap.dedent(
        f"""
        import sys
        from gdbnb.errors import StoreLockedError
        from gdbnb.store import SQLiteStore
        try:
            SQLiteStore({str(path)!r}, {ROOM!r})
        except StoreLockedError as e:
            print("LOCKED", e)
            sys.exit(0)
        print("OPENED")
        """
    )
    with SQLiteStore(path, ROOM):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LOCKED") and f"process {os.getpid()}" in out.stdout
    # a holder killed without closing does not block the next owner (the kernel drops the lock)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from gdbnb.store import SQLiteStore\ns = SQLiteStore({str(path)!r}, {ROOM!r})\nprint('ready', flush=True)\ninput()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        with pytest.raises(StoreLockedError, match=f"process {holder.pid}"):
            SQLiteStore(path, ROOM)
    finally:
        holder.kill()
        holder.wait()
    SQLiteStore(path, ROOM).close()


# ---------------------------------------------------------------------- paths


def test_default_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GDB_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_data_dir() == tmp_path / "home" / ".local" / "share" / "gdbnb"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "gdbnb"
    monkeypatch.setenv("GDB_DATA_DIR", str(tmp_path / "data"))
    assert default_store_path("my-room") == tmp_path / "data" / "my-room.sqlite"


@pytest.mark.parametrize("room", ["plain-room_1.x", "a/b", "../up", ".hidden", "ünï cødé 🚀", "back\\slash", "nul\x00", "lone\ud800", "%41"])
def test_room_file_stem_safe_and_reversible(room: str) -> None:
    stem = room_file_stem(room)
    assert "/" not in stem and "\\" not in stem and "\x00" not in stem and not stem.startswith(".")
    assert stem.isascii()
    assert room_from_file_stem(stem) == room


def test_room_file_stem_plain_is_verbatim_and_long_is_bounded() -> None:
    assert room_file_stem("my-room") == "my-room"
    a, b = room_file_stem("é" * 500), room_file_stem("é" * 499)
    assert len(a) <= 180 and a != b
    with pytest.raises(ValueError):
        room_file_stem("")


def test_commits_from_several_threads(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "r.sqlite"
    with SQLiteStore(path, ROOM) as store:

        def writer(k: int) -> None:
            g = Graph()
            for i in range(100):
                g.put({"k": k, "i": i, "s": "\ud800" if i % 10 == 0 else "x"}, id=f"t{k}-{i}")
                store.commit(g.take_journal())

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        nodes = by_id(store.load().nodes)
    assert len(nodes) == 400 and nodes["t3-99"].value == {"k": 3, "i": 99, "s": "x"}
