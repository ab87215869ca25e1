"""The same data in the reference GenosDB and in our engine: ``map`` must give the same ids in
the same order, for static queries and for realtime events."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from gdbnb.core.graph import Graph
from gdbnb.core.live import LiveQuery
from gdbnb.core.query import run_map

pytestmark = pytest.mark.interop

NODES: list[tuple[str, Any]] = [
    ("n1", {"type": "item", "name": "Alice", "score": 0.9, "tags": ["a", "b"], "age": 31,
            "addr": {"city": "Paris"}}),
    ("n2", {"type": "item", "name": "bob", "score": 0.2, "tags": ["b"], "age": "25", "addr": {"city": "Lyon"}}),
    ("n3", {"type": "item", "name": "Émile", "score": 0.5, "tags": [], "age": None, "note": "Café crème, s'il vous plaît!"}),
    ("n4", {"type": "other", "name": "alice", "score": "0.7", "age": True}),
    ("n5", {"type": "other", "name": "Zoë", "score": 10, "tags": ["c", "a"], "age": 7}),
    ("10", {"type": "item", "name": "ten", "score": 1, "age": [5]}),
    ("2", {"type": "item", "name": "two", "score": -3, "age": 40}),
    ("n6", {"type": "item", "name": "item-100", "score": 0.5, "age": 19}),
    ("n7", {"type": "item", "name": "item_20", "age": 18, "note": "e-mail me at X@example.com"}),
    ("n8", {"type": "item", "name": "ITEM-3", "score": 0.5, "tags": ["x", "y"], "age": 65}),
    ("n9", "just a string"),
    ("n10", {"type": "item", "name": "a b", "score": 2}),
    ("n11", {"type": "item", "name": "a-b", "score": 2, "id": "shadow"}),
    ("n12", {"type": "item", "name": "", "score": 0}),
    ("n13", {"type": "item", "name": "😀 smile", "score": 3}),
    ("n14", {"type": "item", "name": "ab", "score": 1.5}),
]
LINKS = [
    ("n1", "n2"), ("n2", "n3"), ("n3", "n1"), ("n3", "n5"), ("n5", "n6"), ("n6", "n5"), ("n4", "n7"), ("n7", "n8"),
    ("n8", "10"),
]

SORTS: list[dict[str, Any]] = [
    {"field": "name"},
    {"field": "name", "order": "desc"},
    {"field": "score"},
    {"field": "score", "order": "desc", "$limit": 4},
    {"field": "age", "query": {"age": {"$exists": True}, "type": "item"}},
    {"field": "missing"},
    {"field": "addr.city", "order": "desc"},
    {"field": "name", "$after": "n6", "$limit": 3},
    {"field": "name", "$before": "n6", "$limit": 3},
    {"field": "name", "$after": "n2", "$before": "n14"},
    {"field": "name", "$after": "nope"},
    {"$limit": 3},
    {"$after": "n5", "$limit": 2},
    {"$limit": 0},
]

QUERIES: list[dict[str, Any]] = [
    {},
    {"type": "item"},
    {"type": "item", "score": {"$gt": 0.5}},
    {"score": {"$gte": 0.5}},
    {"score": {"$lt": "1"}},
    {"age": {"$gt": 20}},
    {"age": {"$lte": "30"}},
    {"age": {"$between": [18, 40]}},
    {"name": {"$gt": "a"}},
    {"name": {"$lt": "b"}},
    {"name": {"$between": ["a", "z"]}},
    {"age": {"$ne": 7}},
    {"age": {"$eq": None}},
    {"age": None},
    {"age": 7},
    {"age": True},
    {"age": 1},
    {"tags": "a"},
    {"tags": {"$in": ["a", "z"]}},
    {"name": {"$in": ["bob", "two"]}},
    {"age": {"$exists": False}},
    {"note": {"$exists": True}},
    {"tags.0": "b"},
    {"tags.length": 2},
    {"addr.city": "Paris"},
    {"id": "n3"},
    {"id": "shadow"},
    {"id": {"$in": ["n1", "10"]}},
    {"timestamp.logical": {"$gt": 0}, "type": "other"},
    {"name": {"$text": "emile"}},
    {"note": {"$text": "CAFE CREME"}},
    {"note": {"$text": "email"}},
    {"note": {"$text": "sil vous"}},
    {"tags": {"$text": "A"}},
    {"missing": {"$text": "undef"}},
    {"name": {"$like": "ali%"}},
    {"name": {"$like": "item_%"}},
    {"name": {"$like": "_o_"}},
    {"name": {"$regex": "^item-\\d+$"}},
    {"name": {"$regex": "B$"}},
    {"note": {"$regex": "@example\\.com$"}},
    {"name": {"$startsWith": "it"}},
    {"name": {"$contains": "li"}},
    {"$or": [{"score": {"$gt": 1}}, {"name": "bob"}]},
    {"$and": [{"type": "item"}, {"age": {"$gte": 18}}, {"age": {"$lte": 40}}]},
    {"$not": {"type": "item"}},
    {"age": {"$or": [{"$lt": 10}, {"$gt": 60}]}},
    {"age": {"$not": {"$gt": 20}}},
    {"name": "Alice", "$edge": {}},
    {"name": "Alice", "$edge": {"type": "item"}},
    {"type": "other", "$edge": {"score": {"$gt": 0}}},
    {"$edge": {"type": "item"}},
    {"name": "Zoë", "$edge": {}},
    {"$or": [{"$edge": {"name": "two"}}, {"name": "two"}]},
]


@pytest.fixture(scope="module")
def loaded(reference: Any) -> Iterator[tuple[Any, Graph]]:
    g = Graph()
    with reference.namespace() as ns, reference.bun_peer(ns.name) as peer:
        for nid, value in NODES:
            peer.put(value, id=nid)
            g.put(value, id=nid)
        for s, t in LINKS:
            peer.link(s, t)
            g.link(s, t)
        yield peer, g


def _ref_ids(peer: Any, **opts: Any) -> list[str]:
    return [n["id"] for n in peer.call("map", options=opts)["results"]]


def _our_ids(g: Graph, opts: dict[str, Any]) -> list[str]:
    o = dict(opts)
    kw = {
        "field": o.pop("field", None), "order": o.pop("order", "asc"), "limit": o.pop("$limit", None),
        "after": o.pop("$after", None), "before": o.pop("$before", None),
    }
    return [n.id for n in run_map(g.nodes, o.pop("query", None), **kw)]


def test_filters_match_reference(loaded: tuple[Any, Graph]) -> None:
    peer, g = loaded
    diffs = []
    for q in QUERIES:
        want, got = _ref_ids(peer, query=q), _our_ids(g, {"query": q})
        if want != got:
            diffs.append((q, want, got))
    assert diffs == []


def test_sorting_and_pagination_match_reference(loaded: tuple[Any, Graph]) -> None:
    peer, g = loaded
    diffs = []
    for opts in SORTS:
        want, got = _ref_ids(peer, **opts), _our_ids(g, opts)
        if want != got:
            diffs.append((opts, want, got))
    assert diffs == []


WORDS = ["a", "A", "b", "B", "ab", "aB", "Ab", "a b", "a-b", "a_b", "a.b", "a1", "a10", "a2", "_x", "-x", "~", "$", "0",
         "9", "10", "é", "e", "E", "è", "ä", "z", "Z", "ß", "ss", "straße", "œuvre", "Ørsted", "ｚ", "Ω", "ж", "中", "😀", ""]


def test_string_collation_matches_reference(reference: Any) -> None:
    g = Graph()
    with reference.namespace() as ns, reference.bun_peer(ns.name, room="gdbnb-coll") as peer:
        for i, w in enumerate(WORDS):
            peer.put({"w": w}, id=f"w{i}")
            g.put({"w": w}, id=f"w{i}")
        for order in ("asc", "desc"):
            want = [n["value"]["w"] for n in peer.call("map", options={"field": "w", "order": order})["results"]]
            got = [n.value["w"] for n in run_map(g.nodes, field="w", order=order)]
            assert got == want


def _strip(ev: dict[str, Any]) -> tuple[str, str, Any]:
    return ev["action"], ev["id"], ev["value"]


@pytest.mark.parametrize(
    "opts",
    [
        {"query": {"type": "t"}},
        {"query": {"type": "t"}, "field": "n", "$limit": 2},
        {"query": {"k": "root", "$edge": {"type": "t"}}},
    ],
    ids=["plain", "window", "edge"],
)
def test_realtime_events_match_reference(reference: Any, opts: dict[str, Any]) -> None:
    g = Graph()
    steps: list[tuple[str, tuple[Any, ...]]] = [
        ("put", ({"k": "root"}, "r")),
        ("put", ({"type": "t", "n": 5}, "a")),
        ("put", ({"type": "t", "n": 3}, "b")),
        ("link", ("r", "a")),
        ("put", ({"type": "t", "n": 1}, "c")),
        ("link", ("a", "c")),
        ("put", ({"type": "t", "n": 9}, "b")),
        ("put", ({"type": "u", "n": 0}, "a")),
        ("remove", ("c",)),
        ("put", ({"type": "t", "n": 2}, "a")),
    ]
    with reference.namespace() as ns, reference.bun_peer(ns.name, room="gdbnb-live") as peer:
        res = peer.call("map", subscribe=True, options=opts)
        live = LiveQuery(g.nodes, opts.get("query"), opts.get("field"), "asc", opts.get("$limit"))
        assert [n["id"] for n in res["results"]] == [n.id for n in live.results]
        ours: list[tuple[str, str, Any]] = []
        for i, (op, args) in enumerate(steps):
            if op == "put":
                _, _, changes = g.put(args[0], id=args[1])
                peer.put(args[0], id=args[1])
            elif op == "link":
                _, changes = g.link(*args)
                peer.link(*args)
            else:
                _, changes = g.remove(*args)
                peer.remove(*args)
            ours += [_strip(e) for e in live.on_changes(changes)]
            peer.call("sleep", timeout=0.05)  # let the reference's debounced notification run
        peer.call("sleep", timeout=0.2)
        theirs = [_strip(e) for e in peer.events if e.get("event") == "map" and e["action"] != "initial"]
        assert ours == theirs
