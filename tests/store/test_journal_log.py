"""The journal log: records round-trip, a torn tail is dropped, replay fills SQLite once."""

from __future__ import annotations

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import HybridClock
from gdbnb.store.journal_log import JournalLog, merge_journals
from gdbnb.store.sqlite import SQLiteStore


def _graph() -> Graph:
    return Graph(oplog_size=10, clock=HybridClock(wall=lambda: 1_700_000_000_000))


def test_records_round_trip(tmp_path):
    g = _graph()
    g.put({"a": [1, 2.5, None, "é"], "big": 2**70}, "x")
    g.put({}, "y")
    g.link("x", "y")
    j1 = g.take_journal()
    g.remove("y")
    j2 = g.take_journal()
    log = JournalLog(tmp_path / "s.log")
    log.append(j1, 1)
    log.append(j2, 2)
    got = list(JournalLog(tmp_path / "s.log").records())
    assert [s for s, _ in got] == [1, 2]
    assert got[0][1].nodes == j1.nodes and got[0][1].oplog_appended == j1.oplog_appended
    assert got[1][1].nodes == {"y": None, "x": g.nodes["x"]}
    assert got[1][1].clock == j2.clock and got[1][1].global_ts == j2.global_ts


def test_torn_tail_is_dropped(tmp_path):
    g = _graph()
    log = JournalLog(tmp_path / "s.log")
    for i in range(3):
        g.put({"i": i}, f"n{i}")
        log.append(g.take_journal(), i + 1)
    data = (tmp_path / "s.log").read_bytes()
    (tmp_path / "s.log").write_bytes(data[:-5])  # the last record loses its end
    assert [s for s, _ in JournalLog(tmp_path / "s.log").records()] == [1, 2]
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # a corrupt byte in the last record: its CRC fails
    (tmp_path / "s.log").write_bytes(bytes(flipped))
    assert [s for s, _ in JournalLog(tmp_path / "s.log").records()] == [1, 2]


def test_merge_keeps_the_latest_state_and_restarts_at_clear():
    g = _graph()
    g.put({"v": 1}, "a")
    j1 = g.take_journal()
    g.put({"v": 2}, "a")
    j2 = g.take_journal()
    m = merge_journals([j1, j2])
    assert m.nodes["a"].value == {"v": 2} and len(m.oplog_appended) == 2
    g.clear()
    j3 = g.take_journal()
    g.put({"v": 3}, "b")
    j4 = g.take_journal()
    m = merge_journals([j1, j2, j3, j4])
    assert m.cleared and set(m.nodes) == {"b"} and len(m.oplog_appended) == 1


def test_appended_but_not_checkpointed_writes_are_replayed_once(tmp_path):
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path, "r")
    g = _graph()
    g.put({"v": 1}, "a")
    j1 = g.take_journal()
    store.checkpoint(j1, store.append(j1))
    g.put({"v": 2}, "b")
    store.append(g.take_journal())  # acknowledged, never checkpointed: as after kill -9
    store._log.close()  # simulate the crash: no checkpoint, no clean close of the log
    store._log = None
    store.close()
    reopened = SQLiteStore(path, "r")
    snap = reopened.load()
    assert {n.id: n.value for n in snap.nodes} == {"a": {"v": 1}, "b": {"v": 2}}
    assert [e["id"] for e in snap.oplog] == ["a", "b"]
    reopened.close()
    again = SQLiteStore(path, "r")  # the log was emptied after the replay: nothing doubles
    assert [e["id"] for e in again.load().oplog] == ["a", "b"]
    again.close()
