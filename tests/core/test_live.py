"""LiveQuery: realtime map events, fast path and re-run-and-diff."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import HybridClock, Timestamp
from gdbnb.core.live import LiveQuery
from gdbnb.core.query import run_map


def clock() -> HybridClock:
    return HybridClock(wall=lambda: 1_000)


def acts(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action"], e["id"]) for e in events]


def test_initial_events_in_result_order() -> None:
    g = Graph(clock=clock())
    g.put({"t": 1, "n": 2}, id="a")
    g.put({"t": 1, "n": 1}, id="b")
    g.put({"t": 2}, id="c")
    lq = LiveQuery(g.nodes, {"t": 1}, field="n")
    evs = lq.initial()
    assert acts(evs) == [("initial", "b"), ("initial", "a")]
    assert evs[0] == {"id": "b", "value": {"t": 1, "n": 1}, "edges": [], "timestamp": {"physical": 1000, "logical": 2},
                      "action": "initial"}


def test_fast_path_added_updated_removed() -> None:
    g = Graph(clock=clock())
    lq = LiveQuery(g.nodes, {"t": 1})
    assert lq.initial() == []
    _, _, ch = g.put({"t": 1}, id="a")
    assert acts(lq.on_changes(ch)) == [("added", "a")]
    _, _, ch = g.put({"t": 1, "x": 2}, id="a")
    ev = lq.on_changes(ch)
    assert acts(ev) == [("updated", "a")] and ev[0]["value"] == {"t": 1, "x": 2}
    _, _, ch = g.put({"t": 2}, id="a")  # stops matching
    ev = lq.on_changes(ch)
    assert acts(ev) == [("removed", "a")] and ev[0]["value"] is None
    assert ev[0]["timestamp"] == {"physical": 1000, "logical": 2}  # the old record's
    _, _, ch = g.put({"t": 2, "y": 1}, id="a")  # still not matching: nothing
    assert lq.on_changes(ch) == []
    _, _, ch = g.put({"t": 1}, id="a")
    _, _, ch2 = g.put({"t": 1}, id="b")
    _, ch3 = g.link("a", "b")
    assert acts(lq.on_changes(ch + ch2 + ch3)) == [("added", "a"), ("added", "b")]  # a once, as added
    _, ch = g.remove("b")  # removes b and strips a's edge to it
    assert acts(lq.on_changes(ch)) == [("updated", "a"), ("removed", "b")]
    assert lq.on_changes([]) == []


def test_fast_path_batch_compares_before_and_after() -> None:
    g = Graph(clock=clock())
    g.put({"t": 1}, id="a")
    lq = LiveQuery(g.nodes, {"t": 1})
    _, ch1 = g.remove("a")
    _, _, ch2 = g.put({"t": 1}, id="a")
    assert acts(lq.on_changes(ch1 + ch2)) == [("updated", "a")]


def test_window_enter_and_leave() -> None:
    g = Graph(clock=clock())
    for i, n in enumerate([5, 3, 8]):
        g.put({"n": n}, id=f"k{i}")
    lq = LiveQuery(g.nodes, None, field="n", limit=2)
    assert acts(lq.initial()) == [("initial", "k1"), ("initial", "k0")]
    _, _, ch = g.put({"n": 1}, id="k3")  # enters, pushes k0 out
    assert acts(lq.on_changes(ch)) == [("added", "k3"), ("removed", "k0")]
    _, _, ch = g.put({"n": 2}, id="k3")  # moves within the window
    assert acts(lq.on_changes(ch)) == [("updated", "k3")]
    _, _, ch = g.put({"n": 9}, id="k2")  # changes outside the window: nothing
    assert lq.on_changes(ch) == []
    _, ch = g.remove("k1")
    assert acts(lq.on_changes(ch)) == [("added", "k0"), ("removed", "k1")]


def test_edge_query_reacts_to_links_and_descendants() -> None:
    g = Graph(clock=clock())
    g.put({"k": "root"}, id="r")
    g.put({"t": 1}, id="a")
    g.put({"t": 1}, id="b")
    lq = LiveQuery(g.nodes, {"k": "root", "$edge": {"t": 1}})
    assert lq.initial() == []
    _, ch = g.link("r", "a")
    assert acts(lq.on_changes(ch)) == [("added", "a")]
    _, ch = g.link("a", "b")  # a's edges changed and b became reachable
    assert acts(lq.on_changes(ch)) == [("updated", "a"), ("added", "b")]
    _, _, ch = g.put({"t": 2}, id="a")  # a stops matching, b still reachable through it
    assert acts(lq.on_changes(ch)) == [("removed", "a")]
    _, ch = g.remove("a")
    assert acts(lq.on_changes(ch)) == [("removed", "b")]


def test_after_cursor_query_reruns() -> None:
    g = Graph(clock=clock())
    for i in range(3):
        g.put({"i": i}, id=f"p{i}")
    lq = LiveQuery(g.nodes, None, after="p0")
    assert acts(lq.initial()) == [("initial", "p1"), ("initial", "p2")]
    _, ch = g.remove("p0")  # the cursor is gone: empty result
    assert acts(lq.on_changes(ch)) == [("removed", "p1"), ("removed", "p2")]


OPS = st.lists(
    st.tuples(st.sampled_from(["put", "put", "link", "remove"]), st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(OPS, st.sampled_from([{"g": 1}, {"g": {"$ne": 2}}, {"g": 1, "$edge": {}}]), st.sampled_from([None, 2]))
def test_events_replay_to_the_current_result(
    ops: list[tuple[str, int, int, int]], query: dict[str, Any], limit: int | None
) -> None:
    """Applying the events to the subscriber's copy always gives the current result set."""
    g = Graph(clock=clock())
    lq = LiveQuery(g.nodes, query, field="n", limit=limit)
    seen = {e["id"]: e for e in lq.initial()}
    for op, a, b, v in ops:
        if op == "put":
            _, _, ch = g.put({"g": v % 3, "n": v}, id=f"n{a}")
        elif op == "link":
            _, ch = g.link(f"n{a}", f"n{b}")
        else:
            _, ch = g.remove(f"n{a}")
        for e in lq.on_changes(ch):
            if e["action"] == "removed":
                assert e["id"] in seen
                del seen[e["id"]]
            else:
                assert (e["id"] in seen) == (e["action"] == "updated")
                seen[e["id"]] = e
        current = run_map(g.nodes, query, field="n", limit=limit)
        assert set(seen) == {n.id for n in current}
        assert all(seen[n.id]["timestamp"] == n.timestamp.to_json() for n in current)


def test_removed_event_shape() -> None:
    g = Graph(clock=clock())
    g.put({"t": 1}, id="a")
    lq = LiveQuery(g.nodes, {"t": 1}, limit=5)
    _, ch = g.remove("a")
    (ev,) = lq.on_changes(ch)
    assert ev == {"id": "a", "value": None, "edges": [], "timestamp": Timestamp(1000, 1).to_json(), "action": "removed"}


@pytest.mark.parametrize("limit", [None, 3])
def test_results_property(limit: int | None) -> None:
    g = Graph(clock=clock())
    g.put({"t": 1}, id="a")
    assert [n.id for n in LiveQuery(g.nodes, {"t": 1}, limit=limit).results] == ["a"]
