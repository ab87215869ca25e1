"""Convergence of replicas under GenosDB's merge rules (sync-protocol.md §7.3-§7.7, §16).

THE INVARIANT (what holds, and what does not)
---------------------------------------------
World: replicas with a shared, deterministic, ticking fake wall clock (every local write reads a
fresh wall value, so every write timestamp is unique and HLC order = generation order), an
oplog window that never drops an entry, every op batch eventually delivered to every replica
(duplicates allowed, any interleaving with full-state merges).

1. Upserts only: any delivery order, duplicates and full-state merges give identical graphs
   (ids, values, edges, timestamps); each node holds the write with the highest HLC.
2. Upserts and removes, *causal* delivery (a batch is applied only after everything its writer
   had seen), no full-state merges, no two concurrent removes of one node: identical graphs.
3. Upserts, links and removes, causal delivery, no full-state merges, replicas mixing GenosSRV (strip on remote
   remove) and browser rules: if no two *concurrent* ops conflict (both write one node's record
   -- put(x), remove(x) and link(x, _) write x -- or one is remove(t) and the other link(_, t)),
   then ids, values and timestamps are identical;
   edges are identical too when every replica strips edges.

Each hypothesis is needed; the deterministic tests at the end show the counterexamples:
* two concurrent removes of one node: where the first ran, the second (newer) finds the node
  absent and is not recorded, so a concurrent upsert dated between them passes the older
  tombstone and resurrects the node there only (hypothesis found this one);
* remove delivered before the create at a peer that never had the node: not recorded, the
  create then wins there (non-causal delivery breaks even values);
* a link bumps its source's timestamp without carrying the value, so a link concurrent with an
  upsert of its source leaves different values with equal timestamps (ties keep local);
* a link concurrent with an older remove of its source keeps the node alive on some peers only;
* a remove concurrent with a newer upsert: values agree, but the resurrected node has no edges
  on the peers that applied the remove first;
* a full state's removal of a node the receiver does not hold is not recorded (§7.4), so the
  causally earlier create of that node, arriving later, resurrects it: once full states are
  merged, only invariant 1 survives (hypothesis found this one);
* a full state's removals strip no edges and its nodes keep the sender's edges (§7.4, §16), so
  edges can differ even without concurrency;
* browser peers never strip on a remote remove (§7.7).
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdbnb.core.graph import Graph
from gdbnb.core.hlc import HybridClock

T0 = 1_795_940_761_000
IDS = ["a", "b", "c"]
NREP = 3


class World:
    def __init__(self, strips: list[bool]) -> None:
        ticks = itertools.count(T0)
        wall = lambda: next(ticks)  # noqa: E731 - shared, deterministic, strictly increasing
        self.reps = [Graph(1000, HybridClock(wall=wall), s) for s in strips]
        self.batches: list[tuple[int, list[dict], frozenset[int], frozenset[tuple]]] = []
        self.known = [set() for _ in strips]  # batches whose effects each replica has seen
        self.delivered = [set() for _ in strips]
        self.full_merges = 0

    def local(self, r: int, kind: str, a: str, b: str, v: int) -> None:
        g = self.reps[r]
        # touch: ("w", id) = writes the record of id; ("p", id) = depends on / changes presence
        if kind == "put":
            _, op, _ = g.put({"v": v, "by": r}, a)
            touch = {("w", a)}
        elif kind == "link":
            op, _ = g.link(a, b)
            touch = {("w", a), ("p", b)}
        else:
            op, _ = g.remove(a)
            touch = {("w", a), ("p", a)}
        if op is None:
            return
        bid = len(self.batches)
        self.batches.append((r, [op], frozenset(self.known[r]), frozenset(touch)))
        self.known[r].add(bid)
        self.delivered[r].add(bid)

    def deliverable(self, r: int, causal: bool) -> list[int]:
        return [i for i, (o, _, deps, _) in enumerate(self.batches) if o != r and (not causal or deps <= self.known[r])]

    def deliver(self, r: int, bid: int) -> None:
        self.reps[r].apply_ops([dict(op) for op in self.batches[bid][1]])
        self.known[r].add(bid)
        self.delivered[r].add(bid)

    def full(self, src: int, dst: int) -> None:
        m = self.reps[src].full_state_message()
        self.reps[dst].merge_full_state(m["graphData"], m["removals"], m["timestamp"])
        self.known[dst] |= self.known[src]
        self.full_merges += 1

    def flush(self, rnd, causal: bool) -> None:
        """Deliver every batch to every replica that has not had it, in a random (causal) order."""
        while True:
            pending = [(r, i) for r in range(len(self.reps)) for i in self.deliverable(r, causal) if i not in self.delivered[r]]
            if not pending:
                break
            r, i = rnd.choice(pending)
            self.deliver(r, i)
        for r in range(len(self.reps)):
            assert len(self.delivered[r]) == len(self.batches)

    def concurrent_removes(self) -> bool:
        """Two concurrent removes of one node (the second is not recorded where the first ran)."""
        rm = [(i, b) for i, b in enumerate(self.batches) if b[1][0]["type"] == "remove"]
        return any(
            x[1][1][0]["id"] == y[1][1][0]["id"] and x[0] not in y[1][2] and y[0] not in x[1][2]
            for k, x in enumerate(rm) for y in rm[:k]
        )

    def concurrent_conflict(self) -> bool:
        for i, (_, _, di, ti) in enumerate(self.batches):
            for j in range(i):
                _, _, dj, tj = self.batches[j]
                if j not in di and i not in dj and _conflict(ti, tj):
                    return True
        return False


def _conflict(a: frozenset, b: frozenset) -> bool:
    """Two concurrent ops conflict when both write one record, or one needs a node present
    (link target) that the other removes. A put and a link to its node commute, and so do a
    remove of x and any write of a node holding an edge to x (stripping commutes with both)."""
    wa = {i for k, i in a if k == "w"}
    wb = {i for k, i in b if k == "w"}
    pa = {i for k, i in a if k == "p"}
    pb = {i for k, i in b if k == "p"}
    removes_a = pa & wa  # only a remove has the same id in both sets
    removes_b = pb & wb
    return bool(wa & wb or pa & removes_b or pb & removes_a)


def snapshot(g: Graph, edges: bool = True) -> dict:
    return {i: (n.value, list(n.edges) if edges else None, n.timestamp) for i, n in g.nodes.items()}


def run(world: World, steps, rnd, causal: bool, owned: bool = False) -> None:
    for st_ in steps:
        if st_[0] == "local":
            _, r, kind, a, b, v = st_
            if owned:  # replica r writes only its own ids; link targets may be anyone's
                a, b = f"{a}{r}", f"{b}{v % NREP}"
            world.local(r, kind, a, b, v)
        elif st_[0] == "deliver":
            _, r, k = st_
            cands = world.deliverable(r, causal)
            if cands:
                world.deliver(r, cands[k % len(cands)])  # may be a duplicate
        else:
            _, src, dst = st_
            if src != dst:
                world.full(src, dst)
    world.flush(rnd, causal)
    # duplicates after the fact change nothing
    for r in range(len(world.reps)):
        for i in world.deliverable(r, causal)[:5]:
            world.deliver(r, i)


rep = st.integers(0, NREP - 1)
nid = st.sampled_from(IDS)


def steps(kinds: list[str], full: bool):
    local = st.tuples(st.just("local"), rep, st.sampled_from(kinds), nid, nid, st.integers(0, 9))
    deliver = st.tuples(st.just("deliver"), rep, st.integers(0, 50))
    options = [local, local, deliver, deliver]
    if full:
        options.append(st.tuples(st.just("full"), rep, rep))
    return st.lists(st.one_of(*options), min_size=15, max_size=40)


SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(steps(["put"], full=True), st.randoms(use_true_random=False))
def test_upserts_converge_in_any_order(prog, rnd):
    w = World([True] * NREP)
    run(w, prog, rnd, causal=False)
    first = snapshot(w.reps[0])
    assert all(snapshot(g) == first for g in w.reps[1:])
    # and each node is the highest-HLC write of it
    best: dict = {}
    for _, ops, _, _ in w.batches:
        for op in ops:
            ts = (op["timestamp"]["physical"], op["timestamp"]["logical"])
            if op["id"] not in best or ts > best[op["id"]][0]:
                best[op["id"]] = (ts, op["value"])
    assert {i: (v, tuple(t)) for i, (v, _, t) in first.items()} == {i: (v, ts) for i, (ts, v) in best.items()}


@SETTINGS
@given(steps(["put", "put", "remove"], full=False), st.randoms(use_true_random=False))
def test_upserts_and_removes_converge_under_causal_delivery(prog, rnd):
    w = World([True] * NREP)
    run(w, prog, rnd, causal=True)
    if w.concurrent_removes():
        return  # outside the invariant: see test_counterexample_concurrent_removes
    first = snapshot(w.reps[0])
    assert all(snapshot(g) == first for g in w.reps[1:])


@SETTINGS
@given(
    steps(["put", "put", "link", "link", "remove"], full=False),
    st.lists(st.booleans(), min_size=NREP, max_size=NREP),
    st.randoms(use_true_random=False),
)
def test_everything_converges_without_concurrent_conflicts(prog, strips, rnd):
    w = World(strips)
    run(w, prog, rnd, causal=True, owned=True)
    if w.concurrent_conflict():
        return  # outside the invariant (see the counterexamples below)
    values = snapshot(w.reps[0], edges=False)
    assert all(snapshot(g, edges=False) == values for g in w.reps[1:])
    if all(strips):
        first = snapshot(w.reps[0])
        assert all(snapshot(g) == first for g in w.reps[1:])


@SETTINGS
@given(steps(["put", "put", "link", "link", "remove"], full=False), st.randoms(use_true_random=False))
def test_all_stripping_replicas_converge_on_edges(prog, rnd):
    w = World([True] * NREP)
    run(w, prog, rnd, causal=True, owned=True)
    if not w.concurrent_conflict():
        first = snapshot(w.reps[0])
        assert all(snapshot(g) == first for g in w.reps[1:])


def test_counterexample_concurrent_removes():
    w = _pair()
    w.local(0, "put", "a", "", 1)  # batch 0
    w.deliver(1, 0)
    w.deliver(2, 0)
    w.local(0, "remove", "a", "", 0)  # batch 1, t1
    w.local(1, "put", "a", "", 2)  # batch 2, t2 > t1, concurrent with both removes
    w.local(2, "remove", "a", "", 0)  # batch 3, t3 > t2
    w.deliver(0, 3)  # A already removed a: the newer remove is not recorded
    w.deliver(0, 2)  # t2 > A's tombstone t1: resurrected on A
    w.deliver(1, 1)
    w.deliver(1, 3)  # B: t3 > t2: removed
    w.deliver(2, 1)
    w.deliver(2, 2)  # C: tombstone t3 >= t2: blocked
    assert "a" in w.reps[0].nodes and "a" not in w.reps[1].nodes and "a" not in w.reps[2].nodes


def test_counterexample_full_state_removal_of_unknown_node_not_recorded():
    w = _pair()
    w.local(1, "put", "b", "", 1)  # batch 0
    w.local(1, "remove", "b", "", 0)  # batch 1, causally after the create
    w.full(1, 0)  # replica 0 never had b: the removal in the full state is not recorded
    w.deliver(0, 1)  # the remove op: b absent, ignored (not recorded either)
    w.deliver(0, 0)  # the older create arrives last and wins
    assert "b" in w.reps[0].nodes and "b" not in w.reps[1].nodes
    assert w.reps[0].oplog.tombstone("b") is None


# ---------------------------------------------------------------- counterexamples (documented)


def _pair(strip=True):
    return World([strip, strip, strip])


def test_counterexample_remove_before_create_without_causal_delivery():
    w = _pair()
    w.local(0, "put", "x", "", 1)
    w.deliver(1, 0)
    w.local(1, "remove", "x", "", 0)  # batch 1
    w.deliver(2, 1)  # replica 2 never had x: remove not recorded
    w.deliver(2, 0)  # the create arrives later and wins
    w.deliver(0, 1)
    assert "x" not in w.reps[0].nodes and "x" in w.reps[2].nodes


def test_counterexample_link_concurrent_with_upsert_of_source():
    w = _pair()
    w.local(0, "put", "s", "", 1)
    w.local(0, "put", "t", "", 1)
    w.deliver(1, 0)
    w.deliver(1, 1)
    w.local(1, "put", "s", "", 2)  # B updates s ...
    w.local(0, "link", "s", "t", 0)  # ... while A links s -> t (newer HLC, no value)
    w.deliver(0, 2)  # A: B's put is older than the link-bumped s: rejected
    w.deliver(1, 3)  # B: the link is newer than B's put: accepted
    a, b = w.reps[0].nodes["s"], w.reps[1].nodes["s"]
    assert a.timestamp == b.timestamp and a.edges == b.edges == ["t"]
    assert a.value != b.value  # equal timestamps, different values: never repaired


def test_counterexample_link_concurrent_with_older_remove_of_source():
    w = _pair()
    w.local(0, "put", "s", "", 1)
    w.local(0, "put", "t", "", 1)
    w.deliver(1, 0)
    w.deliver(1, 1)
    w.local(1, "remove", "s", "", 0)
    w.local(0, "link", "s", "t", 0)  # newer than the remove
    w.deliver(0, 2)  # A: s is newer than the remove: survives
    w.deliver(1, 3)  # B: source gone: link ignored
    assert "s" in w.reps[0].nodes and "s" not in w.reps[1].nodes


def test_counterexample_remove_concurrent_with_newer_upsert_edges():
    w = _pair()
    for k in ("x", "y"):
        w.local(0, "put", k, "", 1)
    w.local(0, "link", "x", "y", 0)
    for i in range(3):
        w.deliver(1, i)
    w.local(0, "remove", "x", "", 0)
    w.local(1, "put", "x", "", 7)  # newer: x comes back everywhere
    w.deliver(0, 4)
    w.deliver(1, 3)
    a, b = w.reps[0].nodes["x"], w.reps[1].nodes["x"]
    assert a.value == b.value and a.timestamp == b.timestamp
    assert a.edges == [] and b.edges == ["y"]


def test_counterexample_full_state_removal_does_not_strip():
    w = _pair()
    w.local(0, "put", "s", "", 1)
    w.local(0, "put", "t", "", 1)
    w.local(0, "link", "s", "t", 0)
    for i in range(3):
        w.deliver(1, i)
    w.local(0, "remove", "t", "", 0)  # A strips s -> t locally
    w.full(0, 1)  # B: s ties (kept with its edge), t removed without stripping
    w.deliver(1, 3)  # the remove op itself: t already gone, ignored
    assert w.reps[0].nodes["s"].edges == [] and w.reps[1].nodes["s"].edges == ["t"]
    assert snapshot(w.reps[0], edges=False) == snapshot(w.reps[1], edges=False)


def test_counterexample_browser_rule_keeps_dangling_edges():
    w = World([True, False, True])
    w.local(0, "put", "s", "", 1)
    w.local(0, "put", "t", "", 1)
    w.local(0, "link", "s", "t", 0)
    for i in range(3):
        w.deliver(1, i)
    w.local(0, "remove", "t", "", 0)
    w.deliver(1, 3)
    assert w.reps[0].nodes["s"].edges == [] and w.reps[1].nodes["s"].edges == ["t"]
