"""Lookup indexes never change a map() result; they stay right through every kind of write."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gdbnb.core.graph import MAX_LOOKUP_INDEXES, Graph
from gdbnb.core.hlc import HybridClock
from gdbnb.core.query import compile_query, run_map

NAMES = ["a", "b", "c", "", "é"]
VALUES = st.one_of(
    st.sampled_from(NAMES),
    st.integers(-2, 2),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(NAMES), max_size=2),
)
OPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "put", "remove", "link", "remote", "full"]),
        st.integers(0, 7),
        st.dictionaries(st.sampled_from(["name", "kind", "n"]), VALUES, max_size=3),
        st.integers(0, 7),
    ),
    max_size=60,
)
QUERIES = [
    {"name": "a"},
    {"name": "b", "kind": "c"},
    {"name": "é", "$edge": {"kind": "a"}},
    {"kind": ""},
    {"name": "zzz"},
    {"name": "a", "n": {"$gt": 0}},
]


def _check(g: Graph) -> None:
    for q in QUERIES:
        cq = compile_query(q)
        scanned = [n.id for n in run_map(g.nodes, cq)]
        looked_up = [n.id for n in run_map(g.nodes, cq, lookup=g.lookup_index)]
        assert looked_up == scanned, q


@settings(max_examples=150, deadline=None)
@given(OPS, st.booleans())
def test_lookup_results_equal_scan_results(ops, index_first):
    g = Graph(clock=HybridClock(wall=lambda: 1_700_000_000_000))
    if index_first:
        g.lookup_index("name")
        g.lookup_index("kind")
    ts = 1_700_000_000_000
    for kind, i, value, j in ops:
        nid, other = f"n{i}", f"n{j}"
        if kind == "put":
            g.put(value if value else random.Random(i).choice(["text", 3, None]), nid)
        elif kind == "remove":
            g.remove(nid)
        elif kind == "link":
            g.link(nid, other)
        elif kind == "remote":
            ts += 10
            g.apply_ops([{"type": "upsert", "id": nid, "value": value, "timestamp": {"physical": ts, "logical": 0}}])
        else:
            ts += 10
            g.merge_full_state({nid: {"id": nid, "value": value, "edges": [other],
                                      "timestamp": {"physical": ts, "logical": 0}}}, [], None)
        _check(g)
    g.clear()
    _check(g)


def test_unique_lookup_skips_the_scan_and_many_matches_scan():
    g = Graph()
    for i in range(50):
        g.put({"name": f"item-{i}", "type": "item"}, f"n{i}")
    cq = compile_query({"name": "item-7", "type": "item"})
    assert [n.id for n in run_map(g.nodes, cq, lookup=g.lookup_index)] == ["n7"]
    index = g.lookup_index("name")
    assert index["item-7"] == {"n7": None}
    g.put({"name": "renamed"}, "n7")
    assert "item-7" not in index and index["renamed"] == {"n7": None}
    assert run_map(g.nodes, cq, lookup=g.lookup_index) == []
    # many candidates: the scan keeps the insertion order
    assert len(run_map(g.nodes, {"type": "item"}, lookup=g.lookup_index)) == 49


def test_indexes_are_bounded_and_only_for_selective_keys():
    g = Graph()
    keys = [f"k{i}" for i in range(MAX_LOOKUP_INDEXES + 1)]
    for j in range(20):
        g.put({**{k: f"{k}-{j}" for k in keys}, "type": "item"}, f"n{j}")
    for k in keys[:-1]:
        assert g.lookup_index(k) is not None
    assert g.lookup_index(keys[-1]) is None  # the bound
    assert [n.id for n in run_map(g.nodes, {keys[-1]: f"{keys[-1]}-3"}, lookup=g.lookup_index)] == ["n3"]
    g2 = Graph()
    for j in range(20):
        g2.put({"type": "item"}, f"n{j}")
    assert g2.lookup_index("type") is None  # one distinct string for 20 nodes: not worth it
