"""Replay of the scenarios captured from real GenosDB peers (sync-protocol.md §12, §14).

For every peer that has a ``finalStates`` entry, a fresh :class:`Graph` is fed, in capture
order, the decoded ``syncGraph`` messages that peer *received* and the local ``api`` writes the
vector records for it; the result is compared with the peer's final state.

How the replay maps the capture:

* **Wall clock.** All processes of a capture ran on one machine and ``t`` is ms from the first
  event, so ``Date.now() ~= offset + t``. The offset is recovered from the data (the smallest
  physical timestamp of a node minus the ``t`` of its first ``put``). Local writes then get the
  same timestamps as in the capture, and timestamps are compared exactly.
* **Who received what.** Frames are captured at the sender. A frame addressed to a process label
  (``B#1``) only counts while that process is alive (between its ``ready`` and ``exit``/
  ``unload``); frames sent over stale connections to dead processes are dropped.
* **Restarts.** ``B#2`` is the same peer after a restart: the graph and the oplog are persisted,
  the clock is not for browsers (logical restarts at 0) and is restored from the persisted
  globalTimestamp for GenosSRV (§6.2).
* **Peer kinds.** GenosSRV peers are replayed with ``strip_edges_on_remote_remove=True`` and
  browser peers with ``False``; edges are compared for both kinds (browsers keep dangling
  edges, §7.7). Window sizes come from the peer description (``oplogSize 5``) or the defaults
  (1000 GenosSRV, 200 browser).
* **Chromium** (``scenario-chromium-join-offline-race``): frames were captured on GenosSRV's side
  only and the browser's own ``api`` calls are not recorded. Its local writes are reconstructed
  from what it sent: its write batches and its own deltaSync windows are applied to its own
  graph when sent (an offline write shows up as a window entry with a newer timestamp and the
  current value). This cannot tell the order of writes made while offline, so for that peer
  only the final records (ids, values, edges, timestamps) are compared, which is also all the
  capture has ("map results at the end").
* Cells-mode frames (action ``c0``) are unwrapped from their text envelope (§5.8).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import HybridClock

from ..vectors import vectors_dir

_HERE = Path(__file__).resolve()


VECTORS = vectors_dir("sync")
SCENARIOS = sorted(p.name for p in VECTORS.glob("scenario-*.json")) if VECTORS else []

pytestmark = pytest.mark.skipif(VECTORS is None, reason="shared spec vectors not found (set GDBNB_SHARED_DIR)")


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text())


def _base(label: str) -> str:
    return label.split("#", 1)[0]


class _Wall:
    ms = 0

    def __call__(self) -> int:
        return self.ms


def _messages(ev: dict[str, Any]) -> list[dict[str, Any]]:
    """The syncGraph message objects of a frame event (cells envelopes unwrapped)."""
    if ev.get("action") == "syncGraph":
        payload = ev["decoded"]
    elif ev.get("payloadKind") == "text-cells-envelope":
        env = json.loads(ev["decoded"])
        data = env.get("data") or {}
        if data.get("_ch") != "syncGraph":
            return []
        payload = data.get("_d")
    else:
        return []
    if isinstance(payload, dict):
        payload = [payload]
    return [m for m in payload if isinstance(m, dict)] if isinstance(payload, list) else []


def _iter_records(sc: dict[str, Any]):
    """(id, physical) of every node record / upsert entry carried by any frame."""
    for ev in sc["events"]:
        if ev["kind"] != "frame":
            continue
        for m in _messages(ev):
            if m.get("type") == "fullStateSync":
                for i, n in (m.get("graphData") or {}).items():
                    yield i, n["timestamp"]["physical"]
            for op in [m] + list(m.get("operations") or []):
                if op.get("type") == "upsert" and isinstance(op.get("timestamp"), dict):
                    yield op["id"], op["timestamp"]["physical"]
    for st in sc["finalStates"].values():
        for i, n in st.items():
            yield i, n["timestamp"]["physical"]


def _observed_physicals(sc: dict[str, Any]) -> dict[tuple, set[int]]:
    """Physical times seen anywhere in the capture, keyed by the write that could have made them."""
    seen: dict[tuple, set[int]] = {}

    def add(key: tuple, ts: Any) -> None:
        if isinstance(ts, dict) and isinstance(ts.get("physical"), int):
            seen.setdefault(key, set()).add(ts["physical"])

    for ev in sc["events"]:
        if ev["kind"] != "frame":
            continue
        for m in _messages(ev):
            ops = [m] + list(m.get("operations") or []) + list(m.get("removals") or [])
            ops += [dict(n, type="upsert") for n in (m.get("graphData") or {}).values()]
            for op in ops:
                t = op.get("type")
                if t in ("upsert", "remove"):
                    add((t, op.get("id")), op.get("timestamp"))
                elif t == "link":
                    add(("link", op.get("sourceId"), op.get("targetId")), op.get("timestamp"))
    for st in sc["finalStates"].values():
        for i, n in st.items():
            add(("upsert", i), n["timestamp"])
            for e in n["edges"]:
                add(("link", i, e), n["timestamp"])
    return seen


def _clock_offset(sc: dict[str, Any]) -> int:
    first_put: dict[str, int] = {}
    for ev in sc["events"]:
        if ev["kind"] == "api" and ev["call"] == "put" and ev.get("id") is not None:
            first_put.setdefault(ev["id"], ev["t"])
    min_phys: dict[str, int] = {}
    for i, p in _iter_records(sc):
        min_phys[i] = min(p, min_phys.get(i, p))
    cands = [min_phys[i] - t for i, t in first_put.items() if i in min_phys]
    assert cands, "cannot recover the capture's wall clock"
    return min(cands)


def _kind(sc: dict[str, Any], peer: str) -> str:
    for ev in sc["events"]:
        if ev["kind"] == "ready" and _base(ev["peer"]) == peer:
            return ev["engine"]
    return "srv" if "GenosSRV" in sc["peers"].get(peer, "") else "web"


def _oplog_size(sc: dict[str, Any], peer: str, kind: str) -> int:
    m = re.search(r"oplogSize (\d+)", sc["peers"].get(peer, ""))
    return int(m.group(1)) if m else (1000 if kind == "srv" else 200)


def _lifetimes(sc: dict[str, Any]) -> dict[str, tuple[float, float]]:
    life: dict[str, list[float]] = {}
    for ev in sc["events"]:
        if ev["kind"] == "ready":
            life.setdefault(ev["peer"], [ev["t"], float("inf")])[0] = ev["t"]
        elif ev["kind"] in ("exit", "unload"):
            life.setdefault(ev["peer"], [float("-inf"), float("inf")])
            life[ev["peer"]][1] = min(life[ev["peer"]][1], ev["t"])
    return {k: (v[0], v[1]) for k, v in life.items()}


def replay(sc: dict[str, Any], peer: str, *, self_feed: bool = False) -> Graph:
    kind = _kind(sc, peer)
    wall = _Wall()
    offset = _clock_offset(sc)
    observed = _observed_physicals(sc)

    def write_wall(key: tuple, t: int) -> int:
        # the api event's t is logged within a ms or two of the writer's Date.now(): use the
        # physical time the write left in the capture when there is one that close
        guess = offset + t
        near = [p for p in observed.get(key, ()) if abs(p - guess) <= 3]
        return min(near, key=lambda p: (abs(p - guess), p)) if near else guess
    life = _lifetimes(sc)
    g: Graph | None = None
    current: str | None = None

    def alive(label: str, t: float) -> bool:
        lo, hi = life.get(label, (float("-inf"), float("inf")))
        return lo <= t <= hi

    def start(label: str, t: int) -> None:
        nonlocal g, current
        wall.ms = offset + t
        if g is None:
            g = Graph(_oplog_size(sc, peer, kind), HybridClock(wall=wall), kind == "srv")
        elif kind == "srv":
            g.clock = HybridClock(g.global_ts, wall=wall)  # GenosSRV restores its clock
        else:
            g.clock = HybridClock(wall=wall)  # a reloaded browser restarts at logical 0
        current = label

    def feed(msgs: list[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for m in msgs + [{"type": "__end__"}]:
            t = m.get("type")
            if t in ("upsert", "remove", "link"):
                batch.append(m)
                continue
            if batch:
                g.apply_ops(batch)
                batch = []
            if t == "deltaSync":
                g.apply_ops(m.get("operations") or [])
            elif t == "fullStateSync":
                g.merge_full_state(m.get("graphData"), m.get("removals"), m.get("timestamp"))

    for ev in sc["events"]:
        k = ev["kind"]
        if k == "ready" and _base(ev["peer"]) == peer:
            start(ev["peer"], ev["t"])
            continue
        if g is None and k in ("api", "frame") and (
            (k == "api" and _base(ev["peer"]) == peer) or (k == "frame" and _base(ev["to"]) == peer)
        ):
            start(peer, ev["t"])  # no ready event recorded for this peer
        if g is None:
            continue
        wall.ms = offset + ev["t"]
        if k == "api" and _base(ev["peer"]) == peer:
            if ev["call"] == "put":
                wall.ms = write_wall(("upsert", ev.get("id")), ev["t"])
                g.put(ev["value"], ev.get("id"))
            elif ev["call"] == "link":
                wall.ms = write_wall(("link", ev["source"], ev["target"]), ev["t"])
                g.link(ev["source"], ev["target"])
            elif ev["call"] == "remove":
                wall.ms = write_wall(("remove", ev["id"]), ev["t"])
                g.remove(ev["id"])
            else:  # pragma: no cover - not in the captures
                raise AssertionError(f"unknown api call {ev['call']}")
        elif k == "frame" and _base(ev["to"]) == peer and alive(ev["to"], ev["t"]):
            feed(_messages(ev))
        elif k == "frame" and self_feed and _base(ev["from"]) == peer:
            feed(_messages(ev))
    assert g is not None
    return g


def _records(g: Graph) -> dict[str, dict[str, Any]]:
    return {i: n.to_dict() for i, n in g.nodes.items()}


def _expected(rec: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i: {"id": n["id"], "value": n.get("value"), "edges": n["edges"], "timestamp": n["timestamp"]} for i, n in rec.items()}


CASES = []
for _name in SCENARIOS:
    for _key in _load(_name)["finalStates"]:
        CASES.append(pytest.param(_name, _key, id=f"{_name[9:-5]}:{_key.split('(')[0]}"))


#: finalStates entries that contradict the peer's own traffic (reported, not papered over).
VECTOR_ANOMALIES = {
    # B put nb at t=16308 and its own deltaSync at t=19344 (sent 600 ms before it exited) still
    # carries {upsert nb, value {"x":"fromB"}}, yet finalStates.B is {}. The dump of B's state was
    # presumably taken from a fresh process or lost; we check against B's last announced window.
    ("scenario-lost-first-sync.json", "B"),
}


def _last_announced_state(sc: dict[str, Any], peer: str) -> dict[str, dict[str, Any]]:
    """Nodes implied by the last deltaSync the peer sent (hydrated upserts carry values)."""
    last = None
    for ev in sc["events"]:
        if ev["kind"] == "frame" and _base(ev["from"]) == peer:
            for m in _messages(ev):
                if m.get("type") == "deltaSync":
                    last = m
    assert last is not None
    out: dict[str, dict[str, Any]] = {}
    for op in last["operations"]:
        if op["type"] == "upsert" and "value" in op:
            out[op["id"]] = {"id": op["id"], "value": op["value"], "edges": [], "timestamp": op["timestamp"]}
    return out


@pytest.mark.parametrize("name,key", CASES)
def test_replay_matches_final_state(name, key):
    sc = _load(name)
    peer = key.split("(")[0]
    chromium = "(" in key
    g = replay(sc, peer, self_feed=chromium)
    got, want = _records(g), _expected(sc["finalStates"][key])
    if (name, key) in VECTOR_ANOMALIES:
        assert want == {}, "vector fixed? drop it from VECTOR_ANOMALIES"
        want = _last_announced_state(sc, peer)
    assert sorted(got) == sorted(want)
    for i in want:
        assert got[i]["value"] == want[i]["value"], i
        assert got[i]["edges"] == want[i]["edges"], i
        assert got[i]["timestamp"] == want[i]["timestamp"], i


def test_every_scenario_has_a_replayable_peer_or_none_recorded():
    for name in SCENARIOS:
        sc = _load(name)
        assert isinstance(sc["finalStates"], dict)


def test_scenario_c_edges_differ_only_by_kind():
    """§12.c: the same traffic leaves z.edges [] on GenosSRV and ["x"] on the browser; replaying
    the browser's traffic with GenosSRV stripping gives GenosSRV's edges (our choice, §16)."""
    sc = _load("scenario-c-removal-races-update.json")
    web = replay(sc, "B")
    assert web.nodes["z"].edges == ["x"]
    sc_srv = json.loads(json.dumps(sc))
    for ev in sc_srv["events"]:
        if ev["kind"] == "ready" and _base(ev["peer"]) == "B":
            ev["engine"] = "srv"
    srv = replay(sc_srv, "B")
    assert srv.nodes["z"].edges == []
    assert {i: n.value for i, n in srv.nodes.items()} == {i: n.value for i, n in web.nodes.items()}
