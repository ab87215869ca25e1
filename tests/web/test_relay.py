"""The embedded relay on the web server's port (Tornado driving ``RelayHub``)."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

import gdbnb
from gdbnb.net.relay_server import RelayHub
from gdbnb.web.auth import TokenAuth
from gdbnb.web.context import GdbWebContext
from gdbnb.web.server import WebServer, make_app
from gdbnb.wire.nostr import KeyPair, make_event, topic_kind

from .conftest import Served


async def _serve(relay: RelayHub | None) -> Served:
    db = await gdbnb.open("relayroom", path=False)
    context = GdbWebContext(auth=TokenAuth("t", protect_reads=False))
    context.add_room(db)
    server = WebServer(make_app(context, relay=relay), "127.0.0.1", 0)
    await server.start()
    return Served(db, context, server)


async def _stop(s: Served) -> None:
    s.context.close()
    await s.server.stop()
    await s.db.close()


async def test_relay_shares_the_http_port():
    hub = RelayHub()
    s = await _serve(hub)
    try:
        url = f"ws://127.0.0.1:{s.server.port}"
        topic = "some-topic"
        async with connect(url) as a, connect(url) as b:
            await a.send(json.dumps(["REQ", "sub-a", {"kinds": [topic_kind(topic)], "#x": [topic]}]))
            assert json.loads(await asyncio.wait_for(a.recv(), 5)) == ["EOSE", "sub-a"]
            ev = make_event(KeyPair.generate(), topic, "hello")
            await b.send(json.dumps(["EVENT", ev]))
            assert json.loads(await asyncio.wait_for(b.recv(), 5)) == ["OK", ev["id"], True, ""]
            got = json.loads(await asyncio.wait_for(a.recv(), 5))
            assert got[0] == "EVENT" and got[1] == "sub-a" and got[2]["id"] == ev["id"]
            bad = dict(ev, content="tampered")
            await b.send(json.dumps(["EVENT", bad]))
            assert json.loads(await asyncio.wait_for(b.recv(), 5))[2] is False
            assert hub.stats.connections == 2
        # health JSON, GenosSRV's fields; browsers are redirected to the page
        code, health, _ = await s.fetch("/", headers={"Accept": "application/json"})
        assert code == 200 and health["protocol"] == "nostr (ephemeral subset)"
        assert health["events"] == 1 and health["dropped"] == 1
        code, _, headers = await s.fetch("/", headers={"Accept": "text/html"})
        assert code == 302 and headers["Location"] == "/gdb/"
        await asyncio.sleep(0.05)
        assert hub.stats.connections == 0  # disconnects are noticed
    finally:
        await _stop(s)


async def test_relay_off():
    s = await _serve(None)
    try:
        code, body, _ = await s.fetch("/", headers={"Accept": "application/json"})
        assert code == 404 and "relay" in body["error"]
    finally:
        await _stop(s)
