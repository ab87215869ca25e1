"""The oplog window (sync-protocol.md §6.3)."""

from __future__ import annotations

import random

import pytest

from gdbnb.core.hlc import Timestamp
from gdbnb.core.oplog import DEFAULT_OPLOG_SIZE, OpLog, entry_to_wire


def up(i, p, l=0):
    return {"type": "upsert", "id": i, "timestamp": Timestamp(p, l)}


def rm(i, p, l=0):
    return {"type": "remove", "id": i, "timestamp": Timestamp(p, l)}


def ln(s, t, p, l=0):
    return {"type": "link", "sourceId": s, "targetId": t, "timestamp": Timestamp(p, l)}


def test_default_capacity_is_genossrv_1000():
    assert DEFAULT_OPLOG_SIZE == 1000
    assert OpLog().capacity == 1000


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        OpLog(0)


def test_append_order_not_timestamp_order():
    log = OpLog(10)
    entries = [up("a", 30), up("b", 10), rm("a", 20), ln("b", "c", 5)]
    for e in entries:
        log.append(e)
    assert list(log) == entries
    assert log.oldest() is entries[0]  # "oldest" = first appended, not smallest timestamp
    assert len(log) == 4 and bool(log)


def test_empty_log():
    log = OpLog(3)
    assert log.oldest() is None
    assert not log and len(log) == 0
    assert log.removals() == [] and log.tombstones() == {}
    assert log.tombstone("x") is None


def test_capacity_drops_oldest_first():
    log = OpLog(3)
    es = [up(str(i), i) for i in range(5)]
    for e in es:
        log.append(e)
    assert list(log) == es[2:]
    assert log.oldest() is es[2]


def test_constructor_entries_respect_capacity():
    es = [up(str(i), i) for i in range(5)]
    log = OpLog(2, es)
    assert list(log) == es[3:]


def test_tombstone_index_and_removals_in_log_order():
    log = OpLog(10)
    log.append(rm("x", 5))
    log.append(up("y", 6))
    log.append(rm("y", 7))
    log.append(rm("x", 3))  # an older removal appended later
    assert log.tombstone("x") == Timestamp(5, 0)
    assert log.tombstone("y") == Timestamp(7, 0)
    assert log.tombstones() == {"x": Timestamp(5, 0), "y": Timestamp(7, 0)}
    assert [e["id"] for e in log.removals()] == ["x", "y", "x"]


def test_tombstone_forgotten_when_remove_falls_out():
    log = OpLog(3)
    log.append(rm("x", 5))
    log.append(up("a", 6))
    log.append(up("b", 7))
    assert log.tombstone("x") == Timestamp(5, 0)
    log.append(up("c", 8))  # pushes the removal out
    assert log.tombstone("x") is None
    assert log.tombstones() == {} and log.removals() == []


def test_tombstone_index_with_several_removals_of_one_id():
    log = OpLog(3)
    log.append(rm("x", 9))
    log.append(rm("x", 4))
    log.append(rm("x", 4))  # equal stamps are fine
    assert log.tombstone("x") == Timestamp(9, 0)
    log.append(up("a", 1))  # drops (x,9): the newest in the window is now 4
    assert log.tombstone("x") == Timestamp(4, 0)
    log.append(up("b", 1))
    assert log.tombstone("x") == Timestamp(4, 0)
    log.append(up("c", 1))
    assert log.tombstone("x") is None


def test_tombstone_index_matches_window_randomized():
    rnd = random.Random(7)
    log = OpLog(5)
    for _ in range(2000):
        i = rnd.choice("abc")
        ts = Timestamp(rnd.randrange(20), rnd.randrange(3))
        log.append(rm(i, *ts) if rnd.random() < 0.5 else up(i, *ts))
        expect: dict[str, Timestamp] = {}
        for e in log:
            if e["type"] == "remove":
                expect[e["id"]] = max(expect.get(e["id"], e["timestamp"]), e["timestamp"])
        assert log.tombstones() == expect
        for k in "abc":
            assert log.tombstone(k) == expect.get(k)
        assert len(log) <= 5


def test_clear_empties_entries_and_tombstones():
    log = OpLog(4, [rm("x", 1), up("y", 2)])
    log.clear()
    assert len(log) == 0 and log.tombstone("x") is None and log.oldest() is None


def test_entry_to_wire_converts_timestamp_and_keeps_key_order():
    e = {"type": "link", "sourceId": "a", "targetId": "b", "timestamp": Timestamp(3, 4), "extra": 1}
    w = entry_to_wire(e)
    assert list(w) == ["type", "sourceId", "targetId", "timestamp", "extra"]
    assert w["timestamp"] == {"physical": 3, "logical": 4}
    assert e["timestamp"] == Timestamp(3, 4)  # the stored entry is untouched
