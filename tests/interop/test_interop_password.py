"""A password room (namespace ``gi3``, 10.211.3.0/24, gdbnb's embedded relay): gdbnb and the
REAL reference peer with the same password sync both ways; a reference peer and a gdbnb with
another password never get the data (they only meet each other)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Iterator

import pytest

pytestmark = pytest.mark.interop

NS, SUBNET = "gi3", "10.211.3"
RELAY_PORT = 8320
ROOM = "gi3-password"
GOOD, BAD = "correct horse battery", "wrong horse battery"
JOIN = 60.0
WAIT = 20.0
#: how long a wrong-password peer must stay without the data once the right ones have synced
QUIET = 8.0


@pytest.fixture(scope="module")
def peers(reference: Any) -> Iterator[dict[str, Any]]:
    with ExitStack() as stack:
        ns = stack.enter_context(reference.namespace(NS, SUBNET))
        g = stack.enter_context(reference.gdbnb_peer(ns.name, ROOM, password=GOOD,
                                                     serve_relay=f"{ns.addr_a}:{RELAY_PORT}"))
        url = g.ready["relay_url"]
        bun = stack.enter_context(reference.bun_peer(ns.name, room=ROOM, relays=(url,), password=GOOD))
        bad_bun = stack.enter_context(reference.bun_peer(ns.name, room=ROOM, relays=(url,), password=BAD,
                                                         name="bun-bad"))
        bad_g = stack.enter_context(reference.gdbnb_peer(ns.name, ROOM, [url], password=BAD, name="gdbnb-bad"))
        yield {"gdbnb": g, "bun": bun, "bad_bun": bad_bun, "bad_gdbnb": bad_g}


def test_same_password_syncs(peers: dict[str, Any]) -> None:
    g, bun = peers["gdbnb"], peers["bun"]
    g.wait_peers(1, timeout=JOIN)
    bun.wait_peers(1, timeout=JOIN)
    a = g.put({"type": "secret", "from": "gdbnb"})
    bun.wait_node(a, value={"from": "gdbnb"}, timeout=WAIT)
    b = bun.put({"type": "secret", "from": "bun"})
    g.wait_node(b, value={"from": "bun"}, timeout=WAIT)
    bun.link(b, a)
    g.wait_node(b, edge=a, timeout=WAIT)


def test_wrong_password_gets_nothing(peers: dict[str, Any]) -> None:
    """The two wrong-password peers (reference + gdbnb) connect to each other — so signaling
    works for them — but never to the right-password peers, and never see their nodes."""
    g, bun, bad_bun, bad_g = peers["gdbnb"], peers["bun"], peers["bad_bun"], peers["bad_gdbnb"]
    bad_g.wait_peers(1, timeout=JOIN)  # the reference peer with the same (wrong) password
    x = bad_bun.put({"type": "other", "from": "bad-bun"})
    bad_g.wait_node(x, timeout=WAIT)
    secret = g.put({"type": "secret", "late": True})
    bun.wait_node(secret, timeout=WAIT)
    for i, p in enumerate((bad_bun, bad_g)):  # the first wait covers both
        r = p.request("wait_nodes", count=1, query={"type": "secret"}, timeout=QUIET if i == 0 else 0.5)
        assert r["ok"] is False and r["result"]["count"] == 0, r
        assert len(p.peers()["sync"]) == 1, p.peers()  # only each other
    assert len(g.peers()["sync"]) == 1 and len(bun.peers()["sync"]) == 1
    assert g.get(x) is None and bun.get(x) is None
