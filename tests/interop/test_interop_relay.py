"""gdbnb's embedded Nostr relay as the ONLY relay of a room with the REAL GenosSRV program and
the REAL browser build (namespace ``gi2``, 10.211.2.0/24); then gdbnb alone serves the whole
graph to a brand-new browser once every other peer is gone."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any, Iterator

import pytest

from .conftest import genossrv_nodes, graph_of

pytestmark = pytest.mark.interop

NS, SUBNET = "gi2", "10.211.2"
RELAY_PORT, SRV_PORT, WEB_PORT, WEB2_PORT = 8310, 8311, 8392, 8393
ROOM = "gi2-relay"
JOIN = 60.0
WAIT = 20.0


@pytest.fixture(scope="module")
def room(reference: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reference.require_browser()
    tmp = tmp_path_factory.mktemp("gi2")
    with ExitStack() as stack:
        ns = stack.enter_context(reference.namespace(NS, SUBNET))
        g = stack.enter_context(reference.gdbnb_peer(ns.name, ROOM, db=str(tmp / "gdbnb.sqlite"),
                                                     serve_relay=f"{ns.addr_a}:{RELAY_PORT}"))
        url = g.ready.get("relay_url")
        assert url == f"ws://{ns.addr_a}:{RELAY_PORT}", g.ready
        srv = reference.harness.GenosSrv(room=ROOM, ns=ns.name, port=SRV_PORT, addr=ns.addr_a, relay=False,
                                         relay_urls=[url], db=str(tmp / "srv.sqlite"), log=str(tmp / "srv.log"))
        stack.callback(srv.stop)
        srv.start()
        web_stack = stack.enter_context(ExitStack())
        web = web_stack.enter_context(reference.browser_peer(ns.name, ROOM, [url], http_port=WEB_PORT,
                                                             profile=str(tmp / "profile1")))
        yield {"ns": ns, "tmp": tmp, "gdbnb": g, "srv": srv, "web": web, "web_stack": web_stack, "url": url}


def test_embedded_relay_is_the_only_relay(room: dict[str, Any]) -> None:
    """GenosSRV and the browser signal only through gdbnb's relay: all three connect, writes
    flow both ways, and GenosSRV's own store ends up with both sides' nodes."""
    g, web, srv = room["gdbnb"], room["web"], room["srv"]
    g.wait_peers(2, timeout=JOIN)  # GenosSRV + browser
    web.wait_peers(2, timeout=JOIN)  # gdbnb + GenosSRV: the reference peers met through our relay
    # GenosSRV is not scriptable: its log is the only signal that it joined (it lags a little)
    deadline = time.monotonic() + JOIN
    while srv.log_text().count("Peer connected:") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert srv.log_text().count("Peer connected:") >= 2, srv.log_text()[-2000:]

    b = web.put({"type": "er", "from": "browser"})
    gid = g.put({"type": "er", "from": "gdbnb"}, id="er-gdbnb")
    g.wait_node(b, value={"from": "browser"}, timeout=WAIT)
    web.wait_node(gid, value={"from": "gdbnb"}, timeout=WAIT)
    web.link(b, gid)
    g.wait_node(b, edge=gid, timeout=WAIT)
    g.put({"type": "er", "from": "gdbnb", "v": 2}, id=gid)
    web.wait_node(gid, value={"v": 2}, timeout=WAIT)

    # GenosSRV is not scriptable: read what it saves to its SQLite (debounced, saveDelay 200 ms;
    # it does not flush on SIGTERM, so watch the file before stopping it)
    want = {b: {"type": "er", "from": "browser"}, gid: {"type": "er", "from": "gdbnb", "v": 2}}
    deadline = time.monotonic() + WAIT
    held: dict[str, Any] = {}
    while time.monotonic() < deadline:
        held = genossrv_nodes(srv.db, ROOM)
        if all(held.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.2)
    assert {k: held.get(k) for k in want} == want, held
    srv.stop()


def test_gdbnb_alone_serves_a_fresh_browser(reference: Any, room: dict[str, Any]) -> None:
    """Every other peer gone (GenosSRV stopped above, the browser quits): a brand-new browser
    (new profile, new origin) whose only relay is gdbnb's gets the whole graph from gdbnb."""
    g, web, ns, tmp = room["gdbnb"], room["web"], room["ns"], room["tmp"]
    room["srv"].stop()  # (already stopped by the test above when it passed)
    ids = [web.put({"type": "solo", "i": i, "text": f"n{i} ünïcødé"}) for i in range(20)]
    for i in range(0, 19, 2):
        web.link(ids[i], ids[i + 1])
    web.remove(ids[19])
    g.wait_gone(ids[19], timeout=WAIT)
    g.wait_node(ids[0], edge=ids[1], timeout=WAIT)
    g.wait_node(ids[16], edge=ids[17], timeout=WAIT)
    room["web_stack"].close()  # the first browser quits
    want = graph_of(g)
    assert len(want) >= 21

    with reference.browser_peer(ns.name, ROOM, [room["url"]], http_port=WEB2_PORT,
                                profile=str(tmp / "profile2"), name="browser2") as fresh:
        fresh.wait_peers(1, timeout=JOIN)
        fresh.wait_nodes(len(want), exact=True, timeout=WAIT)
        assert graph_of(fresh) == want
        edges = {n["id"]: n["edges"] for n in fresh.map({"type": "solo"})["results"]}
        for i in range(0, 17, 2):
            assert edges[ids[i]] == [ids[i + 1]]
        assert fresh.peers()["sync"] and len(fresh.peers()["sync"]) == 1  # gdbnb only
