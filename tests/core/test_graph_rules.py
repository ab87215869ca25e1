"""The merge rules of sync-protocol.md §7.2-§7.6, one test per rule, plus the two deliberate
safety exceptions (drift cap on every incoming timestamp; malformed ids/timestamps rejected)
and the journal handed to the store after each kind of write."""

from __future__ import annotations

import re

import pytest

from gdbnb.core.graph import Graph, Journal
from gdbnb.core.hlc import DRIFT_CAP_MS, HybridClock, Timestamp
from gdbnb.core.node import MISSING, Node
from gdbnb.errors import ValidationError

T0 = 1_795_940_761_000
YEAR_2100 = 4_102_444_800_000
NOVALUE = object()


class Wall:
    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def mk(strip: bool = True, size: int = 1000, wall: Wall | None = None) -> Graph:
    return Graph(size, HybridClock(wall=wall or Wall()), strip)


def hlc(p: int, l: int) -> dict:
    """A wire timestamp ``p`` ms after T0."""
    return {"physical": T0 + p, "logical": l}


def TS(p: int, l: int) -> Timestamp:
    return Timestamp(T0 + p, l)


def U(i, value=NOVALUE, p=0, l=1):
    op = {"type": "upsert", "id": i}
    if value is not NOVALUE:
        op["value"] = value
    op["timestamp"] = hlc(p, l)
    return op


def R(i, p=0, l=1, value=NOVALUE):
    op = {"type": "remove", "id": i}
    if value is not NOVALUE:
        op["value"] = value
    op["timestamp"] = hlc(p, l)
    return op


def L(s, t, p=0, l=1, **extra):
    return {"type": "link", "sourceId": s, "targetId": t, "timestamp": hlc(p, l), **extra}


def N(i, value, edges=(), p=0, l=1):
    return {"id": i, "value": value, "edges": list(edges), "timestamp": hlc(p, l)}


def state(g: Graph) -> dict:
    return {i: (n.value, list(n.edges), n.timestamp) for i, n in g.nodes.items()}


def log(g: Graph) -> list[tuple]:
    out = []
    for e in g.oplog:
        if e["type"] == "link":
            out.append(("link", e["sourceId"], e["targetId"], e["timestamp"]))
        else:
            out.append((e["type"], e["id"], e["timestamp"]))
    return out


# ============================================================== §7.3 upsert


def test_upsert_new_node_accepted_and_logged():
    g = mk()
    res = g.apply_ops([U("a", {"v": 1}, 5, 3)])
    assert state(g) == {"a": ({"v": 1}, [], TS(5, 3))}
    assert log(g) == [("upsert", "a", TS(5, 3))]
    assert list(g.oplog)[0] == {"type": "upsert", "id": "a", "timestamp": TS(5, 3)}
    assert g.clock.current() == Timestamp(T0 + 5, 4)  # clock.update(ts)
    assert g.global_ts == TS(5, 3)
    assert [(c.action, c.id, c.old) for c in res.changes] == [("added", "a", None)]
    assert res.accepted == [U("a", {"v": 1}, 5, 3)] and res.rejected == 0


def test_upsert_newer_replaces_value_and_keeps_edges():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1), U("b", 2, 1, 2), L("a", "b", 2, 3)])
    res = g.apply_ops([U("a", {"new": True}, 3, 1)])
    assert state(g)["a"] == ({"new": True}, ["b"], TS(3, 1))
    assert res.changes[0].action == "updated" and res.changes[0].old.value == 1


@pytest.mark.parametrize("p,l", [(1, 1), (0, 9)])
def test_upsert_older_is_ignored(p, l):
    g = mk()
    g.apply_ops([U("a", "local", 1, 5)])
    before = log(g)
    res = g.apply_ops([U("a", "older", p, l)])
    assert state(g)["a"][0] == "local" and log(g) == before or (p, l) == (1, 1)
    assert not res.changes and not res.accepted


def test_upsert_tie_keeps_local_version():
    g = mk()
    g.apply_ops([U("a", "local", 1, 5)])
    res = g.apply_ops([U("a", "remote", 1, 5)])
    assert state(g)["a"] == ("local", [], TS(1, 5))
    assert not res.changes and len(g.oplog) == 1


def test_upsert_physical_wins_over_logical():
    g = mk()
    g.apply_ops([U("doc", "A", 0, 3)])
    g.apply_ops([U("doc", "B", 1, 1)])  # §12.b: physical time wins even with a lower logical
    assert state(g)["doc"][0] == "B"


@pytest.mark.parametrize("tomb_p,tomb_l,accepted", [(5, 2, False), (5, 1, False), (4, 9, True)])
def test_upsert_delete_guard(tomb_p, tomb_l, accepted):
    g = mk()
    g.apply_ops([U("x", "v", 0, 1), R("x", tomb_p, tomb_l)])
    assert "x" not in g.nodes
    res = g.apply_ops([U("x", "stale", 5, 1)])
    assert ("x" in g.nodes) is accepted
    assert bool(res.accepted) is accepted


def test_delete_guard_only_uses_the_window():
    g = mk(size=3)
    g.apply_ops([U("x", "v", 0, 1), R("x", 5, 1)])
    g.apply_ops([U("f1", 0, 6, 1), U("f2", 0, 6, 2), U("f3", 0, 6, 3)])  # the removal falls out
    assert g.oplog.tombstone("x") is None
    g.apply_ops([U("x", "stale", 1, 1)])
    assert state(g)["x"][0] == "stale"  # resurrected (§7.6 row 4)


def test_upsert_priority_key_is_stripped():
    g = mk()
    g.apply_ops([U("a", {"priority": 5, "a": 1}, 1, 1)])
    assert g.nodes["a"].value == {"a": 1}


def test_upsert_priority_stripped_but_older_still_loses():
    g = mk()
    g.apply_ops([U("a", {"a": 1}, 5, 1)])
    g.apply_ops([U("a", {"priority": True, "a": 2}, 1, 1)])  # not a user: role record
    assert g.nodes["a"].value == {"a": 1}


def test_upsert_priority_role_is_accepted_unconditionally():
    g = mk()
    g.apply_ops([U("user:abc", {"role": "guest"}, 5, 1)])
    res = g.apply_ops([U("user:abc", {"role": "admin", "priority": True}, 1, 1)])
    assert g.nodes["user:abc"].value == {"role": "admin"}
    assert g.nodes["user:abc"].timestamp == TS(1, 1)
    assert res.accepted
    # tie too
    g.apply_ops([U("user:abc", {"role": "x", "priority": True}, 1, 1)])
    assert g.nodes["user:abc"].value == {"role": "x"}


@pytest.mark.parametrize(
    "nid,value",
    [
        ("user:abc", {"role": "admin", "priority": "true"}),  # not === true
        ("user:abc", {"priority": True, "name": "no role"}),
        ("abc", {"role": "admin", "priority": True}),  # id does not start with user:
        ("User:abc", {"role": "admin", "priority": True}),
    ],
)
def test_upsert_priority_not_unconditional(nid, value):
    g = mk()
    g.apply_ops([U(nid, {"role": "guest"}, 5, 1)])
    g.apply_ops([U(nid, value, 1, 1)])
    assert g.nodes[nid].value == {"role": "guest"}


def test_priority_does_not_bypass_delete_guard():
    g = mk()
    g.apply_ops([U("user:a", {"role": "g"}, 0, 1), R("user:a", 5, 1)])
    g.apply_ops([U("user:a", {"role": "admin", "priority": True}, 1, 1)])
    assert "user:a" not in g.nodes


def test_valueless_hydrated_upsert_creates_node_without_value():
    g = mk()
    res = g.apply_ops([U("x", NOVALUE, 1, 1)])
    n = g.nodes["x"]
    assert n.value is MISSING and res.changes[0].action == "added"
    assert n.to_dict()["value"] is None
    assert "value" not in n.to_wire()
    assert "value" not in g.hydrated_window()[0]
    assert "value" not in g.full_state_message()["graphData"]["x"]


def test_upsert_value_is_deep_copied():
    g = mk()
    op = U("a", {"nested": {"k": [1, 2]}}, 1, 1)
    res = g.apply_ops([op])
    op["value"]["nested"]["k"].append(3)
    res.accepted[0]["value"]["nested"]["x"] = 1
    assert g.nodes["a"].value == {"nested": {"k": [1, 2]}}


def test_upsert_with_non_json_value_is_rejected():
    g = mk()
    res = g.apply_ops([U("a", {"f": float("nan")}, 1, 1), U("b", object(), 1, 2), U("c", 1, 1, 3)])
    assert set(g.nodes) == {"c"} and res.rejected == 2


# ============================================================== §7.3 remove


def test_remove_of_absent_node_is_not_recorded():
    g = mk()
    res = g.apply_ops([R("ghost", 5, 1)])
    assert len(g.oplog) == 0 and g.oplog.tombstone("ghost") is None
    assert not res.accepted and g.global_ts is None
    g.apply_ops([U("ghost", "stale", 1, 1)])  # so a stale upsert is accepted later
    assert "ghost" in g.nodes


@pytest.mark.parametrize("p,l", [(3, 2), (3, 1)])
def test_remove_older_or_equal_is_ignored(p, l):
    g = mk()
    g.apply_ops([U("a", 1, 3, 2)])
    res = g.apply_ops([R("a", p, l)])
    assert "a" in g.nodes and not res.accepted and len(g.oplog) == 1


def test_remove_newer_deletes_and_logs():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1)])
    res = g.apply_ops([R("a", 2, 1, value=1)])
    assert "a" not in g.nodes
    assert log(g)[-1] == ("remove", "a", TS(2, 1))
    assert list(g.oplog)[-1] == {"type": "remove", "id": "a", "timestamp": TS(2, 1)}
    assert g.clock.current() == Timestamp(T0 + 2, 3)
    assert g.global_ts == TS(2, 1)
    assert [(c.action, c.id) for c in res.changes] == [("removed", "a")]


def _edges_to_x(strip: bool) -> Graph:
    g = mk(strip=strip)
    g.apply_ops([U("x", 1, 1, 1), U("y", 1, 1, 2), U("z", 1, 1, 3), L("y", "x", 2, 1), L("z", "x", 2, 2), L("z", "y", 2, 3)])
    return g


def test_remote_remove_strips_edges_genossrv():
    g = _edges_to_x(True)
    res = g.apply_ops([R("x", 9, 1)])
    assert state(g) == {"y": (1, [], TS(2, 1)), "z": (1, ["y"], TS(2, 3))}  # timestamps untouched
    assert sorted((c.action, c.id) for c in res.changes) == [("removed", "x"), ("updated", "y"), ("updated", "z")]


def test_remote_remove_leaves_dangling_edges_browser():
    g = _edges_to_x(False)
    res = g.apply_ops([R("x", 9, 1)])
    assert state(g) == {"y": (1, ["x"], TS(2, 1)), "z": (1, ["x", "y"], TS(2, 3))}
    assert [(c.action, c.id) for c in res.changes] == [("removed", "x")]


# ============================================================== §7.3 link


def test_link_accepted_sets_edge_and_source_timestamp():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1), U("b", 2, 5, 1)])
    res = g.apply_ops([L("a", "b", 2, 1)])  # target's (newer) timestamp is irrelevant
    assert state(g)["a"] == (1, ["b"], TS(2, 1))
    assert state(g)["b"] == (2, [], TS(5, 1))
    assert log(g)[-1] == ("link", "a", "b", TS(2, 1))
    assert res.changes[0].action == "updated" and res.changes[0].id == "a"


@pytest.mark.parametrize("ops", [[U("b", 1, 0, 1)], [U("a", 1, 0, 1)], []])
def test_link_ignored_when_an_end_is_missing(ops):
    g = mk()
    g.apply_ops(ops)
    n = len(g.oplog)
    res = g.apply_ops([L("a", "b", 5, 1)])
    assert not res.accepted and len(g.oplog) == n
    assert all(not n.edges for n in g.nodes.values())


@pytest.mark.parametrize("p,l", [(3, 3), (3, 2), (1, 9)])
def test_link_ignored_when_source_not_older(p, l):
    g = mk()
    g.apply_ops([U("a", 1, 3, 3), U("b", 1, 0, 1)])
    res = g.apply_ops([L("a", "b", p, l)])
    assert g.nodes["a"].edges == [] and not res.accepted


def test_link_with_edge_already_present_keeps_timestamp_but_is_logged():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1), U("b", 1, 1, 2), L("a", "b", 2, 1)])
    clock_before = g.clock.current()
    res = g.apply_ops([L("a", "b", 4, 7)])
    assert state(g)["a"] == (1, ["b"], TS(2, 1))  # no duplicate, timestamp unchanged
    assert res.accepted and not res.changes
    assert log(g)[-1] == ("link", "a", "b", TS(4, 7))
    assert g.clock.current() == Timestamp(T0 + 4, max(clock_before.logical, 7) + 1)
    assert g.global_ts == TS(4, 7)


def test_link_entry_keeps_extra_fields_type_first():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1), U("b", 1, 1, 2)])
    op = {"sourceId": "a", "targetId": "b", "type": "link", "timestamp": hlc(2, 1), "meta": {"k": [1]}}
    g.apply_ops([op])
    entry = list(g.oplog)[-1]
    assert list(entry) == ["type", "sourceId", "targetId", "timestamp", "meta"]  # {type:"link", ...op}
    assert entry["timestamp"] == TS(2, 1)
    op["meta"]["k"].append(2)  # no sharing with the received op
    assert g.hydrated_window()[-1] == {
        "type": "link", "sourceId": "a", "targetId": "b", "timestamp": hlc(2, 1), "meta": {"k": [1]},
    }


def test_global_timestamp_raised_to_newest_accepted_in_batch():
    g = mk()
    g.apply_ops([U("a", 1, 9, 9)])
    assert g.global_ts == TS(9, 9)
    g.apply_ops([U("b", 1, 1, 1), U("c", 1, 50, 1), U("d", 1, 2, 1), U("c", 1, 99, 1) | {"timestamp": hlc(40, 1)}])
    assert g.global_ts == TS(50, 1)  # newest *accepted* (c@40 was rejected)
    g.apply_ops([U("e", 1, 3, 1)])
    assert g.global_ts == TS(50, 1)  # never lowered
    g.apply_ops([R("ghost", 900, 1)])
    assert g.global_ts == TS(50, 1)  # rejected ops do not count


def test_unknown_types_skipped_and_processing_continues():
    g = mk()
    res = g.apply_ops([{"type": "sync", "timestamp": None}, {"type": "bogus"}, U("a", 1, 1, 1)])
    assert "a" in g.nodes and res.rejected == 0


# ============================================================== §7.4 full state


def test_full_state_adds_nodes_with_edges_and_logs_upserts():
    g = mk()
    res = g.merge_full_state({"a": N("a", 1, ["b"], 1, 1), "b": N("b", 2, [], 1, 2)}, [], hlc(1, 2))
    assert state(g) == {"a": (1, ["b"], TS(1, 1)), "b": (2, [], TS(1, 2))}
    assert log(g) == [("upsert", "a", TS(1, 1)), ("upsert", "b", TS(1, 2))]
    assert [c.action for c in res.changes] == ["added", "added"]
    assert not res.echo_full_state
    assert g.global_ts == TS(1, 2) and g.clock.current() == Timestamp(T0 + 1, 3)


def test_full_state_is_a_merge_not_a_replace():
    g = mk()
    g.apply_ops([U("mine", "m", 1, 1), U("shared", "newer-local", 5, 1), U("old", "old-local", 1, 2)])
    g.merge_full_state(
        {
            "shared": N("shared", "older-remote", ["zz"], 4, 1),
            "old": N("old", "newer-remote", ["mine"], 2, 1),
            "new": N("new", "n", [], 1, 1),
        },
        [],
        hlc(4, 1),
    )
    assert state(g) == {
        "mine": ("m", [], TS(1, 1)),
        "shared": ("newer-local", [], TS(5, 1)),
        "old": ("newer-remote", ["mine"], TS(2, 1)),  # whole record, edges included
        "new": ("n", [], TS(1, 1)),
    }


def test_full_state_tie_keeps_local():
    g = mk()
    g.apply_ops([U("a", "local", 1, 1)])
    res = g.merge_full_state({"a": N("a", "remote", ["q"], 1, 1)}, [], hlc(1, 1))
    assert state(g)["a"] == ("local", [], TS(1, 1)) and not res.changes


@pytest.mark.parametrize("p,l,taken", [(3, 1, False), (2, 9, False), (3, 2, True)])
def test_full_state_tombstone_blocks_older_nodes(p, l, taken):
    g = mk()
    g.apply_ops([U("x", 1, 0, 1), R("x", 3, 1)])
    g.merge_full_state({"x": N("x", "remote", [], p, l)}, [], None)
    assert ("x" in g.nodes) is taken


def test_full_state_removals_applied_without_edge_stripping():
    g = mk(strip=True)
    g.apply_ops([U("x", 1, 1, 1), U("y", 1, 1, 2), L("y", "x", 1, 3)])
    res = g.merge_full_state({"y": N("y", 1, ["x"], 1, 3)}, [{"type": "remove", "id": "x", "timestamp": hlc(2, 1)}], hlc(2, 1))
    assert "x" not in g.nodes
    assert g.nodes["y"].edges == ["x"]  # no stripping here, not even on GenosSRV
    assert log(g)[-1] == ("remove", "x", TS(2, 1))
    assert [(c.action, c.id) for c in res.changes] == [("removed", "x")]


def test_full_state_removals_older_or_absent_are_ignored():
    g = mk()
    g.apply_ops([U("x", 1, 5, 1)])
    n = len(g.oplog)
    g.merge_full_state({"x": N("x", 1, [], 5, 1)}, [{"type": "remove", "id": "x", "timestamp": hlc(4, 1)}, {"type": "remove", "id": "nope", "timestamp": hlc(9, 1)}], None)
    assert "x" in g.nodes and len(g.oplog) == n and g.oplog.tombstone("nope") is None


def test_full_state_removal_after_node_taken_in_same_message():
    g = mk()
    g.merge_full_state({"x": N("x", 1, [], 1, 1)}, [{"type": "remove", "id": "x", "timestamp": hlc(2, 1)}], hlc(2, 1))
    assert "x" not in g.nodes and log(g) == [("upsert", "x", TS(1, 1)), ("remove", "x", TS(2, 1))]


def test_full_state_echo_flag_when_we_hold_nodes_sender_lacks():
    g = mk()
    g.apply_ops([U("mine", 1, 1, 1)])
    assert g.merge_full_state({"other": N("other", 1, [], 1, 2)}, [], None).echo_full_state
    assert not g.merge_full_state({"other": N("other", 1, [], 1, 2), "mine": N("mine", 1, [], 1, 1)}, [], None).echo_full_state
    assert not mk().merge_full_state({}, [], None).echo_full_state


def test_full_state_node_does_not_pass_through_priority_or_clock_update():
    g = mk()
    before = g.clock.current()
    g.merge_full_state({"a": N("a", {"priority": 5, "x": 1}, [], 100, 50)}, [], None)
    assert g.nodes["a"].value == {"priority": 5, "x": 1}
    assert g.clock.current() == before  # only the message timestamp advances the clock
    assert g.global_ts is None


def test_full_state_message_timestamp_advances_clock_and_global():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1)])
    g.merge_full_state({}, [], hlc(7, 40))
    assert g.clock.current() == Timestamp(T0 + 7, 41)
    assert g.global_ts == TS(7, 40)
    g.merge_full_state({}, [], hlc(2, 1))
    assert g.global_ts == TS(7, 40)  # raised, never lowered


def test_full_state_node_value_is_copied():
    g = mk()
    rec = N("a", {"k": [1]}, ["b"], 1, 1)
    g.merge_full_state({"a": rec}, [], None)
    rec["value"]["k"].append(2)
    rec["edges"].append("c")
    assert g.nodes["a"].value == {"k": [1]} and g.nodes["a"].edges == ["b"]


def test_full_state_dedups_edges_and_drops_bad_edge_ids():
    g = mk()
    g.merge_full_state({"a": {"id": "a", "value": 1, "edges": ["b", "b", "", 5, None, "c"], "timestamp": hlc(1, 1)}}, [], None)
    assert g.nodes["a"].edges == ["b", "c"]


# ============================================================== §7.5 local writes


def test_put_op_shape_and_oplog_entry():
    g = mk()
    node, op, changes = g.put({"x": 1}, "a")
    assert list(op) == ["type", "id", "value", "timestamp"]
    assert op == {"type": "upsert", "id": "a", "value": {"x": 1}, "timestamp": {"physical": T0, "logical": 1}}
    assert list(list(g.oplog)[-1]) == ["type", "id", "timestamp"]
    assert node.timestamp == g.global_ts == Timestamp(T0, 1)
    assert [(c.action, c.id, c.old) for c in changes] == [("added", "a", None)]


def test_put_keeps_edges_and_replaces_value():
    g = mk()
    g.put(1, "a")
    g.put(2, "b")
    g.link("a", "b")
    node, _, changes = g.put({"whole": "new"}, "a")
    assert node.value == {"whole": "new"} and node.edges == ["b"]
    assert changes[0].action == "updated" and changes[0].old.value == 1


def test_put_generates_uuid4_id():
    g = mk()
    node, op, _ = g.put(1)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", node.id)
    assert op["id"] == node.id


@pytest.mark.parametrize("bad", ["", 5, None.__class__, ["a"]])
def test_put_rejects_bad_ids(bad):
    g = mk()
    with pytest.raises(ValidationError):
        g.put(1, bad)
    assert not g.nodes and not g.oplog


@pytest.mark.parametrize("bad", [float("nan"), {1: "x"}, object(), {"a": float("inf")}])
def test_put_rejects_non_json_values(bad):
    g = mk()
    with pytest.raises(ValidationError):
        g.put(bad, "a")
    assert not g.nodes and not g.oplog and g.clock.current() == Timestamp(T0, 0)


def test_put_copies_value():
    g = mk()
    v = {"k": [1]}
    node, op, _ = g.put(v, "a")
    v["k"].append(2)
    assert g.nodes["a"].value == {"k": [1]}


def test_local_link_shape_and_source_timestamp():
    g = mk()
    g.put(1, "a")
    g.put(1, "b")
    op, changes = g.link("a", "b")
    assert list(op) == ["type", "sourceId", "targetId", "timestamp"]
    assert op == {"type": "link", "sourceId": "a", "targetId": "b", "timestamp": {"physical": T0, "logical": 3}}
    assert g.nodes["a"].edges == ["b"] and g.nodes["a"].timestamp == Timestamp(T0, 3)
    assert list(g.oplog)[-1] == {"type": "link", "sourceId": "a", "targetId": "b", "timestamp": Timestamp(T0, 3)}
    assert [(c.action, c.id) for c in changes] == [("updated", "a")]
    assert g.global_ts == Timestamp(T0, 3)


def test_local_link_missing_end_does_nothing():
    g = mk()
    g.put(1, "a")
    clock = g.clock.current()
    assert g.link("a", "zz") == (None, [])
    assert g.link("zz", "a") == (None, [])
    assert g.clock.current() == clock and len(g.oplog) == 1


def test_local_link_twice_no_duplicate_edge():
    g = mk()
    g.put(1, "a")
    g.put(1, "b")
    g.link("a", "b")
    op, changes = g.link("a", "b")
    assert g.nodes["a"].edges == ["b"] and not changes and op is not None


@pytest.mark.parametrize("strip", [True, False])
def test_local_remove_strips_edges_on_every_node(strip):
    g = mk(strip=strip)  # the remover always strips, GenosSRV and browser alike
    for i in "xyz":
        g.put({"v": i}, i)
    g.link("y", "x")
    g.link("z", "x")
    g.link("x", "y")
    op, changes = g.remove("x")
    assert list(op) == ["type", "id", "value", "timestamp"]
    assert op == {"type": "remove", "id": "x", "value": {"v": "x"}, "timestamp": {"physical": T0, "logical": 7}}
    assert g.nodes["y"].edges == [] and g.nodes["z"].edges == []
    assert sorted((c.action, c.id) for c in changes) == [("removed", "x"), ("updated", "y"), ("updated", "z")]
    assert list(g.oplog)[-1] == {"type": "remove", "id": "x", "timestamp": Timestamp(T0, 7)}
    assert g.oplog.tombstone("x") == Timestamp(T0, 7)


def test_local_remove_missing_and_valueless():
    g = mk()
    assert g.remove("nope") == (None, [])
    g.apply_ops([U("h", NOVALUE, 0, 1)])
    op, _ = g.remove("h")
    assert list(op) == ["type", "id", "timestamp"]  # undefined value disappears from JSON


def test_clear_resets_global_and_oplog():
    g = mk()
    g.put(1, "a")
    changes = g.clear()
    assert [(c.action, c.id) for c in changes] == [("removed", "a")]
    assert not g.nodes and not g.oplog and g.global_ts is None
    assert g.sync_message() == {"type": "sync", "timestamp": None}


# ============================================================== §7.2 answering a sync


def test_answer_sync_empty_peer():
    g = mk()
    assert g.answer_sync(None) == {"type": "fullStateSync", "graphData": {}, "removals": [], "timestamp": None}
    assert g.answer_sync(hlc(1, 1)) is None  # empty oplog: no answer to a non-null sync


def test_answer_sync_no_answer_when_oplog_empty_even_with_nodes():
    g = Graph.from_snapshot([Node("a", 1, [], TS(1, 1))], [], TS(1, 1), clock=HybridClock(wall=Wall()))
    assert g.answer_sync(hlc(0, 0)) is None
    assert g.answer_sync(None)["graphData"] == {"a": {"id": "a", "value": 1, "edges": [], "timestamp": hlc(1, 1)}}


def _sample() -> Graph:
    g = mk()
    g.apply_ops([U("a", "a1", 10, 1), U("b", "b1", 11, 2), U("a", "a2", 12, 3), L("a", "b", 13, 4), R("b", 14, 5), U("c", NOVALUE, 15, 6)])
    return g


def test_answer_sync_full_when_older_than_oldest_entry():
    g = _sample()
    ans = g.answer_sync(hlc(9, 99))
    assert ans["type"] == "fullStateSync"
    assert list(ans) == ["type", "graphData", "removals", "timestamp"]
    assert ans["graphData"] == {
        "a": {"id": "a", "value": "a2", "edges": [], "timestamp": hlc(13, 4)},  # stripped by remove b
        "c": {"id": "c", "edges": [], "timestamp": hlc(15, 6)},
    }
    assert list(ans["graphData"]["a"]) == ["id", "value", "edges", "timestamp"]
    assert ans["removals"] == [{"type": "remove", "id": "b", "timestamp": hlc(14, 5)}]
    assert ans["timestamp"] == hlc(15, 6)
    assert g.sync_answer_kind(hlc(9, 99)) == "full"


@pytest.mark.parametrize("ts", [hlc(10, 1), hlc(12, 0), hlc(999, 9)])
def test_answer_sync_delta_is_whole_hydrated_window(ts):
    g = _sample()
    ans = g.answer_sync(ts)
    assert list(ans) == ["type", "operations", "timestamp"]
    assert ans["type"] == "deltaSync" and ans["timestamp"] == hlc(15, 6)
    assert ans["operations"] == [
        {"type": "upsert", "id": "a", "timestamp": hlc(10, 1), "value": "a2"},  # current value, old ts
        {"type": "upsert", "id": "b", "timestamp": hlc(11, 2)},  # b is gone: no value key
        {"type": "upsert", "id": "a", "timestamp": hlc(12, 3), "value": "a2"},
        {"type": "link", "sourceId": "a", "targetId": "b", "timestamp": hlc(13, 4)},
        {"type": "remove", "id": "b", "timestamp": hlc(14, 5)},
        {"type": "upsert", "id": "c", "timestamp": hlc(15, 6)},
    ]
    assert list(ans["operations"][0]) == ["type", "id", "timestamp", "value"]
    assert ans == g.delta_message()


@pytest.mark.parametrize("bad", [{"physical": "x"}, "nonsense", {"physical": -1, "logical": 0}])
def test_answer_sync_malformed_timestamp_gets_full_state(bad):
    assert _sample().answer_sync(bad)["type"] == "fullStateSync"


def test_answer_sync_uses_first_entry_not_smallest():
    g = mk()
    g.apply_ops([U("a", 1, 50, 1), U("b", 1, 5, 1)])
    assert g.sync_answer_kind(hlc(10, 1)) == "full"  # older than the first entry (50)
    assert g.sync_answer_kind(hlc(50, 1)) == "delta"


# ============================================================== §7.6 outcome table, row by row


def _peer(wall_ms=T0, strip=True, size=1000):
    return mk(strip=strip, size=size, wall=Wall(wall_ms))


def test_outcome_two_updates_any_order_higher_hlc_wins():
    a1, a2 = U("n", "low", 5, 9), U("n", "high", 6, 1)
    p, q = _peer(), _peer()
    p.apply_ops([a1])
    p.apply_ops([a2])
    q.apply_ops([a2])
    q.apply_ops([a1])
    assert state(p) == state(q) == {"n": ("high", [], TS(6, 1))}


def test_outcome_exact_tie_each_peer_keeps_local():
    p, q = _peer(), _peer()
    p.apply_ops([U("n", "p", 5, 1)])
    q.apply_ops([U("n", "q", 5, 1)])
    p.apply_ops([U("n", "q", 5, 1)])
    q.apply_ops([U("n", "p", 5, 1)])
    assert p.nodes["n"].value == "p" and q.nodes["n"].value == "q"


def test_outcome_remove_wins_over_concurrent_older_update():
    # s3 x: A removes x at t2; B updated x at t1 < t2 offline
    a, b = _peer(), _peer()
    base = [U("x", "v1", 0, 1)]
    a.apply_ops(base)
    b.apply_ops(base)
    a.apply_ops([R("x", 10, 5)])
    b.apply_ops([U("x", "B-update", 5, 2)])
    a.apply_ops([U("x", "B-update", 5, 2)])  # A holds the tombstone: ignored
    b.apply_ops([R("x", 10, 5)])  # B applies the newer remove
    assert "x" not in a.nodes and "x" not in b.nodes
    assert b.oplog.tombstone("x") == TS(10, 5)


def test_outcome_newer_update_after_remove_brings_node_back():
    # s3 y: A removed y at t0, B updated y at t1 > t0
    a, b = _peer(), _peer()
    a.apply_ops([U("y", "v1", 0, 1)])
    b.apply_ops([U("y", "v1", 0, 1)])
    a.apply_ops([R("y", 3, 5)])
    b.apply_ops([U("y", "B-update-y", 4, 2)])
    a.apply_ops([U("y", "B-update-y", 4, 2)])
    b.apply_ops([R("y", 3, 5)])
    assert a.nodes["y"].value == b.nodes["y"].value == "B-update-y"


def test_outcome_removal_forgotten_by_window_lets_stale_upsert_resurrect():
    a = _peer(size=2)
    a.apply_ops([U("g", "v", 0, 1), R("g", 5, 1)])
    a.apply_ops([U("f", 1, 6, 1), U("f", 2, 7, 1)])
    a.apply_ops([U("g", "stale", 1, 1)])
    assert a.nodes["g"].value == "stale"
    b = _peer(size=1000)  # a peer still holding the removal blocks the same upsert
    b.apply_ops([U("g", "v", 0, 1), R("g", 5, 1), U("g", "stale", 1, 1)])
    assert "g" not in b.nodes


def test_outcome_removal_with_incoming_edges_differs_by_kind():
    # s3 z / s12 c1: GenosSRV strips the incoming edge, the browser keeps a dangling id
    srv, web = _peer(strip=True), _peer(strip=False)
    ops = [U("x", 1, 0, 1), U("z", 1, 0, 2), L("z", "x", 0, 3)]
    for g in (srv, web):
        g.apply_ops(ops)
        g.apply_ops([R("x", 9, 1)])
    assert srv.nodes["z"].edges == [] and web.nodes["z"].edges == ["x"]
    assert srv.nodes["z"].value == web.nodes["z"].value and set(srv.nodes) == set(web.nodes)


def test_outcome_future_timestamp_value_same_timestamp_receiver_specific():
    # s8: both receivers store the value; each caps at its own now + 2 h
    p, q = _peer(T0), _peer(T0 + 5)
    op = {"type": "upsert", "id": "f", "value": "future", "timestamp": {"physical": YEAR_2100, "logical": 3}}
    p.apply_ops([op])
    q.apply_ops([op])
    assert p.nodes["f"].value == q.nodes["f"].value == "future"
    assert p.nodes["f"].timestamp == Timestamp(T0 + DRIFT_CAP_MS, 3)
    assert q.nodes["f"].timestamp == Timestamp(T0 + 5 + DRIFT_CAP_MS, 3)


# ============================================================== safety exception 1: drift cap everywhere

CAP = T0 + DRIFT_CAP_MS


def far(l=1):
    return {"physical": YEAR_2100, "logical": l}


def test_cap_applies_to_full_state_nodes_removals_and_message_timestamp():
    g = mk()
    g.apply_ops([U("old", 1, 0, 1)])
    g.merge_full_state(
        {"f": {"id": "f", "value": 1, "edges": [], "timestamp": far(2)}},
        [{"type": "remove", "id": "old", "timestamp": far(3)}],
        far(4),
    )
    assert g.nodes["f"].timestamp == Timestamp(CAP, 2)
    assert g.oplog.tombstone("old") == Timestamp(CAP, 3)
    assert g.clock.current().physical == CAP  # a year-2100 full state does not move us to 2100
    assert g.global_ts == Timestamp(CAP, 4)
    assert g.clock.now().physical < YEAR_2100


def test_cap_applies_to_remote_removes_and_links():
    g = mk()
    g.apply_ops([U("a", 1, 0, 1), U("b", 1, 0, 2)])
    g.apply_ops([{"type": "link", "sourceId": "a", "targetId": "b", "timestamp": far(3)}])
    assert g.nodes["a"].timestamp == Timestamp(CAP, 3)
    assert list(g.oplog)[-1]["timestamp"] == Timestamp(CAP, 3)
    g.apply_ops([{"type": "remove", "id": "b", "timestamp": far(4)}])
    assert g.oplog.tombstone("b") == Timestamp(CAP, 4)
    assert g.clock.current().physical == CAP and g.global_ts == Timestamp(CAP, 4)


def test_cap_on_upsert_and_delete_guard_compare_capped_values():
    # The tombstone is stored capped, so the guard must compare the capped upsert timestamp:
    # a far-future removal followed by an older far-future upsert still wins, like in the reference.
    g = mk()
    g.apply_ops([U("x", 1, 0, 1)])
    g.apply_ops([{"type": "remove", "id": "x", "timestamp": far(9)}])
    g.apply_ops([{"type": "upsert", "id": "x", "value": "stale", "timestamp": far(5)}])
    assert "x" not in g.nodes


# ============================================================== safety exception 2: malformed input never stored

BAD_IDS = ["", None, 5, ["a"], {"a": 1}, True]
BAD_TS = [None, {"physical": -1, "logical": 0}, {"physical": 1.5, "logical": 0}, {"physical": float("nan"), "logical": 0},
          {"physical": True, "logical": 1}, {"physical": "1", "logical": 1}, {"physical": 2**53, "logical": 0}, "ts", {"physical": 1}]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_ops_with_bad_ids_rejected(bad):
    g = mk()
    g.apply_ops([U("ok", 1, 0, 1), U("t", 1, 0, 2)])
    n = len(g.oplog)
    res = g.apply_ops([
        {"type": "upsert", "id": bad, "value": 1, "timestamp": hlc(1, 1)},
        {"type": "remove", "id": bad, "timestamp": hlc(1, 1)},
        {"type": "link", "sourceId": bad, "targetId": "ok", "timestamp": hlc(1, 1)},
        {"type": "link", "sourceId": "ok", "targetId": bad, "timestamp": hlc(1, 1)},
    ])
    assert res.rejected == 4 and not res.accepted and len(g.oplog) == n
    assert set(g.nodes) == {"ok", "t"} and g.nodes["ok"].edges == []


@pytest.mark.parametrize("bad", BAD_TS)
def test_ops_with_bad_timestamps_rejected(bad):
    g = mk()
    g.apply_ops([U("ok", 1, 0, 1), U("t", 1, 0, 2)])
    n = len(g.oplog)
    res = g.apply_ops([
        {"type": "upsert", "id": "new", "value": 1, "timestamp": bad},
        {"type": "remove", "id": "ok", "timestamp": bad},
        {"type": "link", "sourceId": "ok", "targetId": "t", "timestamp": bad},
        {"type": "upsert", "id": "nots", "value": 1},
    ])
    assert res.rejected == 4 and len(g.oplog) == n and set(g.nodes) == {"ok", "t"}


@pytest.mark.parametrize("bad", BAD_TS)
def test_full_state_bad_timestamps_rejected(bad):
    g = mk()
    g.apply_ops([U("x", 1, 0, 1)])
    res = g.merge_full_state(
        {"n": {"id": "n", "value": 1, "edges": [], "timestamp": bad}, "ok": N("ok", 1, [], 1, 1)},
        [{"type": "remove", "id": "x", "timestamp": bad}],
        bad,
    )
    assert set(g.nodes) == {"x", "ok"} and res.rejected == 2


def test_full_state_bad_ids_and_records_rejected():
    g = mk()
    res = g.merge_full_state({"": N("", 1, [], 1, 1), "s": "not a record", "ok": N("ok", 1, [], 1, 1)}, [{"type": "remove", "id": 5, "timestamp": hlc(1, 1)}, "junk"], None)
    assert set(g.nodes) == {"ok"} and res.rejected == 4
    assert mk().merge_full_state("junk", "junk", "junk").rejected >= 1


def test_non_dict_ops_rejected():
    g = mk()
    res = g.apply_ops(["upsert", 5, None, [U("a", 1)]])
    assert res.rejected == 4 and not g.nodes


# ============================================================== journal (what the store writes)


def test_journal_after_local_put_link_remove():
    g = mk()
    g.put(1, "a")
    g.put(2, "b")
    j = g.take_journal()
    assert isinstance(j, Journal) and bool(j)
    assert not j.cleared and set(j.nodes) == {"a", "b"} and j.nodes["a"].value == 1
    assert [e["id"] for e in j.oplog_appended] == ["a", "b"]
    assert j.global_ts == Timestamp(T0, 2) and j.clock == Timestamp(T0, 2) and j.oplog_capacity == 1000
    assert not g.take_journal()  # taken: now empty
    g.link("a", "b")
    j = g.take_journal()
    assert set(j.nodes) == {"a"} and j.nodes["a"].edges == ["b"]
    assert [e["type"] for e in j.oplog_appended] == ["link"]
    g.remove("b")
    j = g.take_journal()
    assert j.nodes["b"] is None and j.nodes["a"].edges == []  # delete row + stripped edge
    assert j.oplog_appended == [{"type": "remove", "id": "b", "timestamp": Timestamp(T0, 4)}]


def test_journal_after_remote_ops_and_rejections():
    g = mk()
    g.apply_ops([U("a", 1, 1, 1), U("a", 0, 0, 1), R("ghost", 1, 1)])
    j = g.take_journal()
    assert set(j.nodes) == {"a"} and len(j.oplog_appended) == 1
    g.apply_ops([U("a", 0, 0, 1)])  # rejected: nothing to write
    assert not g.take_journal()


def test_journal_after_full_state():
    g = mk()
    g.apply_ops([U("x", 1, 0, 1)])
    g.take_journal()
    g.merge_full_state({"n": N("n", 1, [], 1, 1)}, [{"type": "remove", "id": "x", "timestamp": hlc(2, 1)}], hlc(2, 1))
    j = g.take_journal()
    assert j.nodes["n"].value == 1 and j.nodes["x"] is None
    assert [e["type"] for e in j.oplog_appended] == ["upsert", "remove"]
    assert j.global_ts == TS(2, 1) and j.clock == Timestamp(T0 + 2, 3)


def test_journal_appended_bounded_by_capacity():
    g = mk(size=3)
    for i in range(10):
        g.put(i, f"n{i}")
    j = g.take_journal()
    assert [e["id"] for e in j.oplog_appended] == ["n7", "n8", "n9"] and j.oplog_capacity == 3
    assert len(j.nodes) == 10


def test_journal_after_clear():
    g = mk()
    g.put(1, "a")
    g.take_journal()
    g.clear()
    g.put(2, "b")
    j = g.take_journal()
    assert j.cleared and set(j.nodes) == {"b"} and [e["id"] for e in j.oplog_appended] == ["b"]
    assert not g.take_journal().cleared


def test_from_snapshot_restores_without_journal():
    nodes = [Node("a", 1, ["b"], TS(1, 1)), Node("b", 2, [], TS(1, 2))]
    entries = [{"type": "upsert", "id": "a", "timestamp": TS(1, 1)}, {"type": "remove", "id": "c", "timestamp": TS(1, 3)}]
    g = Graph.from_snapshot(nodes, entries, TS(1, 3), TS(1, 5), clock=HybridClock(wall=Wall()))
    assert not g.take_journal()
    assert g.clock.current() == TS(1, 5) and g.global_ts == TS(1, 3)
    assert g.oplog.tombstone("c") == TS(1, 3)
    g.remove("b")  # the incoming-edge index was rebuilt
    assert g.nodes["a"].edges == []
