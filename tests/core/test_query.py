"""compile_query / run_map: operators, JS semantics, $edge, sorting and pagination."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gdbnb.core.hlc import Timestamp
from gdbnb.core.jsvalues import (
    collation_key,
    js_less,
    js_to_number,
    js_to_string,
    text_normalize,
    utf16_less,
)
from gdbnb.core.node import MISSING, Node
from gdbnb.core.query import compile_query, run_map
from gdbnb.errors import QueryError


def graph(*items: tuple[str, Any], links: tuple[tuple[str, str], ...] = ()) -> dict[str, Node]:
    nodes = {nid: Node(nid, v, [], Timestamp(1000, i + 1)) for i, (nid, v) in enumerate(items)}
    for s, t in links:
        n = nodes[s]
        nodes[s] = Node(n.id, n.value, n.edges + [t], n.timestamp)
    return nodes


def ids(nodes: dict[str, Node], query: Any = None, **kw: Any) -> list[str]:
    return [n.id for n in run_map(nodes, query, **kw)]


PEOPLE = graph(
    ("a", {"type": "p", "name": "Alice", "age": 31, "tags": ["x", "y"], "addr": {"city": "Paris"}}),
    ("b", {"type": "p", "name": "bob", "age": "25", "tags": ["y"]}),
    ("c", {"type": "p", "name": "Émile", "age": None, "note": "Café crème!"}),
    ("d", {"type": "q", "name": "dora", "age": True}),
    ("e", "a plain string"),
    ("f", {"type": "q", "name": "Fay", "age": [40], "id": "shadow"}),
)


@pytest.mark.parametrize(
    "query, expected",
    [
        (None, ["a", "b", "c", "d", "e", "f"]),
        ({}, ["a", "b", "c", "d", "e", "f"]),
        ({"type": "p"}, ["a", "b", "c"]),
        ({"type": {"$eq": "q"}}, ["d", "f"]),
        ({"type": {"$ne": "p"}}, ["d", "e", "f"]),  # missing fields match $ne
        ({"age": {"$gt": 30}}, ["a", "f"]),  # [40] compares as "40" -> 40
        ({"age": {"$gt": 20}}, ["a", "b", "f"]),  # "25" > 20 numerically
        ({"age": {"$lt": 1}}, ["c"]),  # null is 0, true is 1, missing never compares
        ({"age": {"$lte": 1}}, ["c", "d"]),
        ({"age": {"$gte": "30"}}, ["a", "f"]),
        ({"name": {"$gt": "a"}}, ["b", "c", "d"]),  # code units: "É" (U+00C9) > "a"
        ({"name": {"$lt": "a"}}, ["a", "f"]),
        ({"age": {"$between": [25, 31]}}, ["a", "b"]),
        ({"age": None}, ["c"]),
        ({"age": True}, ["d"]),
        ({"age": 1}, []),  # strict equality: true !== 1
        ({"age": 31.0}, ["a"]),
        ({"tags": "x"}, []),  # no implicit array membership
        ({"tags": {"$in": ["x", "z"]}}, ["a"]),
        ({"name": {"$in": ["bob", "dora"]}}, ["b", "d"]),
        ({"age": {"$exists": True}}, ["a", "b", "c", "d", "f"]),  # null exists
        ({"age": {"$exists": False}}, ["e"]),
        ({"note": {"$exists": 1}}, ["c"]),
        ({"tags.1": "y"}, ["a"]),
        ({"tags.length": 1}, ["b"]),
        ({"addr.city": "Paris"}, ["a"]),
        ({"addr.city.x": "Paris"}, []),
        ({"id": "c"}, ["c"]),  # falls back to the node record
        ({"id": "f"}, []),  # ... but the value's own "id" wins
        ({"id": "shadow"}, ["f"]),
        ({"timestamp.logical": {"$gte": 5}}, ["e", "f"]),
        ({"value": "a plain string"}, ["e"]),
        ({"name": {"$text": "EMILE"}}, ["c"]),
        ({"note": {"$text": "cafe creme"}}, ["c"]),
        ({"tags": {"$text": "Y"}}, ["a", "b"]),
        ({"missing": {"$text": "undefined"}}, ["a", "b", "c", "d", "e", "f"]),
        ({"name": {"$like": "%o%"}}, ["b", "d"]),
        ({"name": {"$like": "_ob"}}, ["b"]),
        ({"name": {"$like": "a.ice"}}, ["a"]),  # the rest of a $like pattern is regex syntax
        ({"name": {"$regex": "^[a-c]"}}, ["a", "b"]),  # always case-insensitive
        ({"name": {"$regex": {"$regex": "y$"}}}, ["f"]),
        ({"age": {"$regex": "2"}}, ["b"]),  # only strings: "25" but not [40]
        ({"name": {"$startsWith": "F"}}, ["f"]),
        ({"name": {"$endsWith": "a"}}, ["d"]),
        ({"name": {"$contains": "li"}}, ["a"]),
        ({"$or": [{"type": "q"}, {"age": 31}]}, ["a", "d", "f"]),
        ({"$and": [{"type": "p"}, {"age": {"$exists": True}}, {"age": {"$ne": None}}]}, ["a", "b"]),
        ({"$not": {"type": "p"}}, ["d", "e", "f"]),
        ({"age": {"$or": [{"$lt": 1}, {"$gt": 30}]}}, ["a", "c", "f"]),
        ({"age": {"$not": {"$gt": 20}}}, ["c", "d", "e"]),
        ({"addr": {"$and": [{"city": "Paris"}]}}, ["a"]),
        ({"name": {}}, ["a", "b", "c", "d", "e", "f"]),
    ],
)
def test_filters(query: Any, expected: list[str]) -> None:
    assert ids(PEOPLE, query) == expected


@pytest.mark.parametrize(
    "query, message",
    [
        ({"a": {"$foo": 1}}, "unknown operator"),
        ({"a": {"city": "x"}}, "dotted key"),
        ({"$gt": 1}, "top-level"),
        ({"a": {"$in": "x"}}, "$in needs a list"),
        ({"a": {"$between": [1]}}, "$between"),
        ({"a": {"$between": [1, 2, 3]}}, "$between"),
        ({"a": {"$regex": "("}}, "invalid regular expression"),
        ({"a": {"$like": 5}}, "$like"),
        ({"a": {"$gt": [1]}}, "$gt"),
        ({"a": {"$eq": {"x": 1}}}, "$eq"),
        ({"$or": {"a": 1}}, "$or"),
        ({"$not": [1]}, "$not"),
        ({"$edge": "x"}, "$edge"),
        ({"a": {"$edge": {}}}, "$edge"),
        ({"a": [1, 2]}, "$in"),
        ({"a": {"$text": ["x"]}}, "$text"),
        ([1], "object"),
    ],
)
def test_bad_queries_raise(query: Any, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("$", r"\$")):
        compile_query(query)


@pytest.mark.parametrize(
    "kw",
    [{"order": "ASC"}, {"limit": -1}, {"limit": True}, {"limit": 2.5}, {"field": 3}, {"after": 3}],
)
def test_bad_options_raise(kw: dict[str, Any]) -> None:
    with pytest.raises(QueryError):
        run_map(PEOPLE, None, **kw)


def test_matches_and_compiled_query_reuse() -> None:
    cq = compile_query({"type": "p", "age": {"$gt": 30}})
    assert [n.id for n in PEOPLE.values() if cq.matches(n)] == ["a"]
    assert ids(PEOPLE, cq) == ["a"]
    assert not cq.uses_edges and cq.edge is None


# ----------------------------------------------------------------------------- $edge

CHAIN = graph(
    ("root", {"k": "root"}),
    ("x", {"type": "t", "n": 1}),
    ("y", {"type": "u", "n": 2}),
    ("z", {"type": "t", "n": 3}),
    ("w", {"type": "t", "n": 4}),
    links=(("root", "x"), ("x", "y"), ("y", "z"), ("z", "x"), ("z", "root"), ("x", "w"), ("y", "gone")),
)


def test_edge_traversal_is_breadth_first_cycle_safe_and_excludes_start() -> None:
    assert ids(CHAIN, {"k": "root", "$edge": {}}) == ["x", "y", "w", "z"]
    assert ids(CHAIN, {"k": "root", "$edge": {"type": "t"}}) == ["x", "w", "z"]
    assert ids(CHAIN, {"k": "none", "$edge": {}}) == []
    assert ids(CHAIN, {"n": 4, "$edge": {}}) == []  # no edges


def test_edge_with_several_start_nodes_dedups_in_start_order() -> None:
    # start nodes x, z (in graph order); each may reach the other and root
    assert ids(CHAIN, {"type": "t", "n": {"$lt": 4}, "$edge": {}}) == ["y", "w", "z", "root", "x"]


def test_nested_edge_is_a_predicate() -> None:
    q = {"$or": [{"$edge": {"n": 4}}, {"k": "root"}]}
    assert ids(CHAIN, q) == ["root", "x", "y", "z"]
    cq = compile_query(q)
    assert cq.uses_edges
    assert cq.matches(CHAIN["y"], CHAIN) and not cq.matches(CHAIN["y"])


def test_edge_results_sorted_and_limited() -> None:
    assert ids(CHAIN, {"k": "root", "$edge": {"type": "t"}}, field="n", order="desc", limit=2) == ["w", "z"]


def test_long_chain_edge() -> None:
    items = [(f"i{i}", {"type": "item", "name": f"item-{i}"}) for i in range(300)]
    g = graph(*items, links=tuple((f"i{i}", f"i{i + 1}") for i in range(299)) + (("i299", "i0"),))
    assert ids(g, {"name": "item-100", "$edge": {"type": "item"}}) == [f"i{i}" for i in [*range(101, 300), *range(100)]]


# ----------------------------------------------------------------------------- order


def test_results_without_field_follow_js_object_key_order() -> None:
    g = graph(("b", 1), ("10", 1), ("a", 1), ("2", 1), ("01", 1), ("4294967295", 1))
    assert ids(g) == ["2", "10", "b", "a", "01", "4294967295"]


SORTABLE = graph(
    ("a", {"s": "b", "n": 3, "m": "x"}),
    ("b", {"s": "A", "n": 1.5}),
    ("c", {"s": "a", "n": -2, "m": 5}),
    ("d", {"s": "B", "m": None}),
    ("e", {"s": "a", "n": 0}),
    ("f", {"s": "_z", "n": True}),
)


def test_sort_strings_by_locale_compare() -> None:
    assert ids(SORTABLE, field="s") == ["f", "c", "e", "b", "a", "d"]
    # desc reverses the comparator: ties keep insertion order
    assert ids(SORTABLE, field="s", order="desc") == ["d", "a", "b", "c", "e", "f"]


def test_sort_numbers_missing_is_zero_and_ties_stable() -> None:
    assert ids(SORTABLE, field="n") == ["c", "d", "e", "f", "b", "a"]
    assert ids(SORTABLE, field="n", order="desc") == ["a", "b", "f", "d", "e", "c"]
    assert ids(SORTABLE, field="n", order="desc", limit=2) == ["a", "b"]
    assert ids(SORTABLE, field="n", limit=3) == ["c", "d", "e"]


def test_sort_mixed_types_uses_the_js_comparator() -> None:
    # "x" vs numbers is NaN ("equal"): the order is whatever the sort algorithm makes of an
    # inconsistent comparator; these are bun's answers for the same comparator
    assert ids(SORTABLE, field="m") == ["a", "b", "d", "e", "f", "c"]
    assert ids(SORTABLE, field="m", order="desc") == ["a", "c", "b", "d", "e", "f"]
    assert ids(SORTABLE, field="missing") == ["a", "b", "c", "d", "e", "f"]


def test_pagination() -> None:
    assert ids(SORTABLE, field="n", after="e") == ["f", "b", "a"]
    assert ids(SORTABLE, field="n", after="e", limit=2) == ["f", "b"]
    assert ids(SORTABLE, field="n", before="b") == ["c", "d", "e", "f"]
    # $before + $limit keeps the FIRST items before the cursor (reference behaviour)
    assert ids(SORTABLE, field="n", before="b", limit=2) == ["c", "d"]
    assert ids(SORTABLE, field="n", after="d", before="b") == ["e", "f"]
    assert ids(SORTABLE, field="n", after="b", before="d") == []
    assert ids(SORTABLE, field="n", after="nope") == []
    assert ids(SORTABLE, before="nope") == []
    assert ids(SORTABLE, after="c", limit=1) == ["d"]
    assert ids(SORTABLE, limit=0) == ids(SORTABLE)  # $limit 0 means no limit
    assert ids(SORTABLE, after="", before="") == ids(SORTABLE)
    assert ids(SORTABLE, field="", limit=2) == ["a", "b"]


def test_heap_path_equals_full_sort() -> None:
    import random

    rnd = random.Random(5)
    g = graph(*[(f"n{i}", {"v": rnd.choice([1, 2, 3, 2.5, None])}) for i in range(200)])
    for order in ("asc", "desc"):
        full = ids(g, field="v", order=order)
        assert ids(g, field="v", order=order, limit=17) == full[:17]


# ----------------------------------------------------------------------------- JS helpers


def test_js_to_string_and_number() -> None:
    assert [js_to_string(v) for v in [MISSING, None, True, 1.0, 0.1, 1e21, 1e-7, [1, None, [2, "x"]], {}]] == [
        "undefined", "null", "true", "1", "0.1", "1e+21", "1e-7", "1,,2,x", "[object Object]",
    ]
    assert [js_to_number(v) for v in ["", " 12 ", "0x1f", "1e3", "-Infinity", [7], [], False]] == [
        0, 12, 31, 1000, float("-inf"), 7, 0, 0,
    ]
    for bad in ["abc", "1_000", "inf", "nan", [1, 2], {}, MISSING]:
        assert js_to_number(bad) != js_to_number(bad)


def test_js_less() -> None:
    assert js_less("10", "9") is True
    assert js_less("10", 9) is False
    assert js_less(None, 1) is True
    assert js_less(MISSING, 1) is None
    assert js_less([2], 10) is True


def test_text_normalize() -> None:
    assert text_normalize("Ça, c'est l'ÉTÉ!") == "ca cest lete"
    assert text_normalize("Straße 中文") == "strae "
    assert text_normalize(12.5) == "125"


@given(st.text(), st.text())
def test_utf16_less_matches_code_unit_order(a: str, b: str) -> None:
    assert utf16_less(a, b) == (a.encode("utf-16-be") < b.encode("utf-16-be"))


def test_utf16_order_differs_from_code_points() -> None:
    assert utf16_less("\U0001F600", "\uFF01") and "\U0001F600" > "\uFF01"


def test_collation_key_ascii_order() -> None:
    words = ["b", "a", "B", "A", "_", "-", "1", "10", "9", " ", "ab", "a b", "a-b", "aB", "Ab", "", "$", "~"]
    assert sorted(words, key=collation_key) == [
        "", " ", "_", "-", "~", "$", "1", "10", "9", "a", "A", "a b", "a-b", "ab", "aB", "Ab", "b", "B",
    ]


def test_collation_key_accents_and_scripts() -> None:
    words = ["é", "e", "E", "è", "f", "ß", "ss", "st", "z", "Ω", "中", "ｚ", "Z"]
    assert sorted(words, key=collation_key) == ["e", "E", "é", "è", "f", "ss", "ß", "st", "z", "ｚ", "Z", "Ω", "中"]
    assert collation_key("a\u0301") == collation_key("á")


ASCII_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)


@given(ASCII_TEXT, ASCII_TEXT)
def test_collation_key_ascii_is_consistent_with_case_folding(a: str, b: str) -> None:
    # primary order never depends on case: if a < b ignoring case at primary level, case cannot flip it
    pa, pb = collation_key(a)[0], collation_key(b)[0]
    assert (pa == pb) == (collation_key(a.lower())[0] == collation_key(b.lower())[0])
