"""gdbnb in a live GenosDB room with the REAL reference peers: GenosSRV (relay + persistent
peer), the scripted Bun peer (GenosSRV engine as a module) and the browser build in headless
Chromium, all in one network namespace (``gi1``, 10.211.1.0/24).

Covers writes in each direction (put, update with explicit id, link, remove), realtime ``map``
events both ways, and offline catch-up both ways (gdbnb restarting on its store; the Bun peer
restarting on its SQLite). gdbnb runs as ``python -m gdbnb.benchpeer`` in the namespace.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

pytestmark = pytest.mark.interop

NS, SUBNET = "gi1", "10.211.1"
SRV_PORT, WEB_PORT = 8300, 8391
ROOM = "gi1-sync"
JOIN = 60.0  # reference<->reference joins take ~10 s; gdbnb<->reference ~5 s
WAIT = 20.0


class Mesh:
    """The peers of one room; peers can be stopped and restarted on their stores."""

    def __init__(self, reference: Any, ns: Any, tmp: Path, stack: ExitStack) -> None:
        self.ref, self.ns, self.tmp, self.stack = reference, ns, tmp, stack
        self.srv = stack.enter_context(reference.genossrv(ns.name, room=ROOM, addr=ns.addr_a, port=SRV_PORT,
                                                          db=str(tmp / "srv.sqlite"), log=str(tmp / "srv.log")))
        self.relays = [self.srv.relay_url]
        self.peers: dict[str, Any] = {}
        self._stacks: dict[str, ExitStack] = {}

    def start(self, name: str) -> Any:
        s = ExitStack()
        self.stack.callback(s.close)
        if name == "gdbnb":
            p = s.enter_context(self.ref.gdbnb_peer(self.ns.name, ROOM, self.relays, db=str(self.tmp / "gdbnb.sqlite")))
        elif name == "bun":
            p = s.enter_context(self.ref.bun_peer(self.ns.name, room=ROOM, relays=tuple(self.relays),
                                                  db=str(self.tmp / "bun.sqlite")))
        elif name == "browser":
            p = s.enter_context(self.ref.browser_peer(self.ns.name, ROOM, self.relays, http_port=WEB_PORT,
                                                      profile=str(self.tmp / "profile")))
        else:
            raise ValueError(name)
        self.peers[name], self._stacks[name] = p, s
        return p

    def stop(self, name: str) -> None:
        self.peers.pop(name)
        self._stacks.pop(name).close()

    def __getitem__(self, name: str) -> Any:
        return self.peers[name]


@pytest.fixture(scope="module")
def mesh(reference: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    reference.require_browser()
    tmp = tmp_path_factory.mktemp("gi1")
    with ExitStack() as stack:
        ns = stack.enter_context(reference.namespace(NS, SUBNET))
        m = Mesh(reference, ns, tmp, stack)
        for name in ("gdbnb", "bun", "browser"):
            m.start(name)
        for name in ("gdbnb", "bun", "browser"):
            m[name].wait_peers(3, timeout=JOIN)  # GenosSRV + the two others: a full mesh
        yield m


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _writes(writer: Any, reader: Any, strips_edges: bool) -> None:
    """put, update with an explicit id, link, remove on ``writer``; each must reach ``reader``."""
    t = _tag()
    a = writer.put({"type": "w", "tag": t, "n": 1})
    reader.wait_node(a, value={"type": "w", "tag": t, "n": 1}, timeout=WAIT)
    fixed = f"fixed-{t}"
    assert writer.put({"type": "w", "tag": t, "v": "first"}, id=fixed) == fixed
    reader.wait_node(fixed, value={"v": "first"}, timeout=WAIT)
    writer.put({"type": "w", "tag": t, "v": "second", "nested": {"k": [1, 2.5, None, "é"]}}, id=fixed)
    got = reader.wait_node(fixed, value={"v": "second"}, timeout=WAIT)
    assert got["value"] == {"type": "w", "tag": t, "v": "second", "nested": {"k": [1, 2.5, None, "é"]}}
    assert writer.link(a, fixed)["applied"] is True
    reader.wait_node(a, edge=fixed, timeout=WAIT)
    assert writer.remove(fixed)["applied"] is True
    reader.wait_gone(fixed, timeout=WAIT)
    if strips_edges:  # gdbnb and the GenosSRV engine drop edges to a node removed remotely
        reader.wait_node(a, no_edge=fixed, timeout=WAIT)
    assert writer.remove(a)["applied"] is True
    reader.wait_gone(a, timeout=WAIT)


@pytest.mark.parametrize("other", ["bun", "browser"])
def test_writes_gdbnb_to_reference(mesh: Mesh, other: str) -> None:
    # the GenosSRV engine (Bun peer) strips edges on a remote remove; the browser engine keeps them
    _writes(mesh["gdbnb"], mesh[other], strips_edges=other == "bun")


@pytest.mark.parametrize("other", ["bun", "browser"])
def test_writes_reference_to_gdbnb(mesh: Mesh, other: str) -> None:
    _writes(mesh[other], mesh["gdbnb"], strips_edges=True)


def _map_event(peer: Any, sub: str, action: str, nid: str, since: int, pred: Callable[[dict], bool] = lambda e: True) -> dict:
    return peer.wait_event(lambda e: e.get("event") == "map" and e.get("sub") == sub and e.get("action") == action
                           and e.get("id") == nid and pred(e), timeout=WAIT, since=since)


@pytest.mark.parametrize("other", ["bun", "browser"])
def test_realtime_gdbnb_sees_reference(mesh: Mesh, other: str) -> None:
    g, r = mesh["gdbnb"], mesh[other]
    t = _tag()
    since = len(g.events)
    sub = g.subscribe({"type": "rt", "tag": t})["sub"]
    try:
        nid = r.put({"type": "rt", "tag": t, "v": 1})
        _map_event(g, sub, "added", nid, since, lambda e: e["value"] == {"type": "rt", "tag": t, "v": 1})
        r.put({"type": "rt", "tag": t, "v": 2}, id=nid)
        _map_event(g, sub, "updated", nid, since, lambda e: e["value"]["v"] == 2)
        other_id = r.put({"type": "rt", "tag": "not-" + t})  # outside the query: no event
        g.wait_node(other_id, timeout=WAIT)
        r.remove(nid)
        _map_event(g, sub, "removed", nid, since)
        assert not [e for e in g.events[since:] if e.get("event") == "map" and e.get("id") == other_id]
    finally:
        g.unmap(sub)


@pytest.mark.parametrize("other", ["bun", "browser"])
def test_realtime_reference_sees_gdbnb(mesh: Mesh, other: str) -> None:
    g, r = mesh["gdbnb"], mesh[other]
    t = _tag()
    since = len(r.events)
    sub = r.subscribe({"type": "rt", "tag": t})["sub"]
    try:
        nid = g.put({"type": "rt", "tag": t, "v": 1})
        _map_event(r, sub, "added", nid, since, lambda e: e["value"] == {"type": "rt", "tag": t, "v": 1})
        g.put({"type": "rt", "tag": t, "v": 2}, id=nid)
        _map_event(r, sub, "updated", nid, since, lambda e: e["value"]["v"] == 2)
        g.remove(nid)
        _map_event(r, sub, "removed", nid, since)
    finally:
        r.unmap(sub)


def test_gdbnb_catches_up_after_restart(mesh: Mesh) -> None:
    """gdbnb stops; the reference peers write, update, link, remove; gdbnb restarts on its
    store and ends up with exactly their graph for these nodes."""
    t = _tag()
    g = mesh["gdbnb"]
    keep = g.put({"type": "cu", "tag": t, "who": "before"})
    doomed = g.put({"type": "cu", "tag": t, "who": "doomed"})
    for name in ("bun", "browser"):
        mesh[name].wait_node(doomed, timeout=WAIT)
    mesh.stop("gdbnb")

    bun, web = mesh["bun"], mesh["browser"]
    b1 = bun.put({"type": "cu", "tag": t, "who": "bun"})
    w1 = web.put({"type": "cu", "tag": t, "who": "browser"})
    bun.put({"type": "cu", "tag": t, "who": "before", "updated": True}, id=keep)
    web.wait_node(keep, value={"updated": True}, timeout=WAIT)
    bun.wait_node(w1, timeout=WAIT)
    bun.link(b1, w1)
    web.wait_node(b1, edge=w1, timeout=WAIT)
    web.remove(doomed)
    bun.wait_gone(doomed, timeout=WAIT)

    g = mesh.start("gdbnb")
    assert g.get(doomed) is not None  # restarted on its own store (the remove cannot have arrived yet)
    g.wait_peers(1, timeout=JOIN)
    g.wait_node(b1, edge=w1, value={"who": "bun"}, timeout=WAIT)
    g.wait_node(w1, value={"who": "browser"}, timeout=WAIT)
    g.wait_node(keep, value={"updated": True}, timeout=WAIT)
    g.wait_gone(doomed, timeout=WAIT)
    ids = {n["id"] for n in g.map({"type": "cu", "tag": t})["results"]}
    assert ids == {keep, b1, w1}
    for name in ("gdbnb", "bun", "browser"):  # back to a full mesh for the next tests
        mesh[name].wait_peers(3, timeout=JOIN)


def test_bun_peer_catches_up_from_gdbnb(mesh: Mesh) -> None:
    """The Bun peer stops; gdbnb writes, updates, links, removes; the Bun peer restarts on its
    SQLite file and catches up (gdbnb, GenosSRV and the browser all hold the writes)."""
    t = _tag()
    g = mesh["gdbnb"]
    keep = g.put({"type": "cu2", "tag": t, "who": "before"})
    doomed = g.put({"type": "cu2", "tag": t, "who": "doomed"})
    mesh["bun"].wait_node(doomed, timeout=WAIT)
    mesh.stop("bun")

    n1 = g.put({"type": "cu2", "tag": t, "who": "gdbnb"})
    g.put({"type": "cu2", "tag": t, "who": "before", "updated": True}, id=keep)
    g.link(keep, n1)
    g.remove(doomed)
    mesh["browser"].wait_gone(doomed, timeout=WAIT)

    bun = mesh.start("bun")
    assert bun.get(doomed) is not None  # restarted on its own SQLite (the remove cannot have arrived yet)
    bun.wait_node(n1, value={"who": "gdbnb"}, timeout=JOIN)
    bun.wait_node(keep, value={"updated": True}, edge=n1, timeout=WAIT)
    bun.wait_gone(doomed, timeout=WAIT)
    ids = {n["id"] for n in bun.map({"type": "cu2", "tag": t})["results"]}
    assert ids == {keep, n1}
