"""The embedded relay: GenosSRV's probe transcript replayed over real sockets, plus hostile input."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gdbnb.net.relay_server import RelayFullError, RelayHub, RelayLimits, RelayServer
from gdbnb.wire import nostr

from ..vectors import vectors_dir


VECTORS = vectors_dir("signaling")
needs_vectors = pytest.mark.skipif(VECTORS is None, reason="signaling vectors not found")

TIMEOUT = 5.0


async def http_get(port: int, path: str = "/") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ln)}
    body = await reader.readexactly(int(headers["content-length"]))
    writer.close()
    return int(status_line.split()[1]), headers, body


async def recv(ws: ClientConnection) -> str:
    msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(msg, str)
    return msg


async def drain_until_sync(ws: ClientConnection) -> list[str]:
    """Everything the relay queued for ``ws`` before now.

    Works because the relay handles a connection's messages in order and fans an event out
    before it answers OK: a fresh REQ's EOSE comes after anything already queued.
    """
    await ws.send('["REQ","~sync",{"kinds":[-1]}]')
    got = []
    while (msg := await recv(ws)) != '["EOSE","~sync"]':
        got.append(msg)
    return got


@pytest.fixture
async def relay():
    async with RelayServer() as server:
        yield server


@needs_vectors
async def test_probe_transcript_replayed(relay: RelayServer) -> None:
    probe = json.loads((VECTORS / "relay-embedded.json").read_text("utf-8"))["cases"]  # type: ignore[operator]

    def health(body: str) -> dict:
        d = json.loads(body)
        assert list(d) == ["relay", "protocol", "connections", "events", "dropped"]
        assert d["protocol"] == "nostr (ephemeral subset)"
        return d

    status, headers, body = await http_get(relay.port)
    assert status == 200 and headers["content-type"] == "application/json"
    first = health(body.decode())
    assert health(probe[0]["response_body"])["relay"] == "GenosSRV embedded relay"
    assert first == {"relay": "gdbnb embedded relay", "protocol": "nostr (ephemeral subset)",
                     "connections": 0, "events": 0, "dropped": 0}
    assert health((await http_get(relay.port, "/any/other/path"))[2].decode()) == first

    async with connect(relay.url) as a, connect(relay.url) as b, connect(relay.url) as c:
        accepted = rejected = 0
        for case in probe[2:]:
            if "sent_by_A" in case:
                for text in case["sent_by_A"]:
                    await a.send(text)
                assert [await recv(a) for _ in case["received_by_A"]] == case["received_by_A"]
                continue
            if "received_by_B_after_REQ" in case:  # the probe did not record B's REQ text
                await b.send('["REQ","bs",{"#x":["echo"]}]')
                assert [await recv(b)] == case["received_by_B_after_REQ"]
            if "received_by_A_after_CLOSE" in case:
                await a.send('["CLOSE","s1"]')
                await a.send('["CLOSE","s4"]')
                assert await drain_until_sync(a) == case["received_by_A_after_CLOSE"]
            if "sent_by_B" in case:
                await b.send(case["sent_by_B"])
                got_b = [await recv(b) for _ in case["received_by_B"]]
                assert got_b == case["received_by_B"], case["case"]
                assert await drain_until_sync(a) == case.get("received_by_A", []), case["case"]
                assert await drain_until_sync(b) == [], case["case"]
                if json.loads(got_b[0])[2]:
                    accepted += 1
                else:
                    rejected += 1
            if "received_by_C" in case:
                if "sent_by_C" in case:
                    for text in case["sent_by_C"]:
                        await c.send(text)
                else:
                    await c.send('["REQ","late",{"#x":["t1","t3","t5","zz","echo"]}]')
                assert await drain_until_sync(c) == case["received_by_C"], case["case"]
        assert (accepted, rejected) == (8, 3)
        last = health((await http_get(relay.port))[2].decode())
        # The probe's counters include GenosSRV's own peer (one more connection, its announces).
        ref = health(probe[-1]["response_body"])
        assert last["dropped"] == ref["dropped"] == 3
        assert last == {**first, "connections": 3, "events": accepted, "dropped": 3}
        assert relay.stats.connections == 3 and relay.stats.events == 8


async def test_health_counts_and_stop(relay: RelayServer) -> None:
    assert relay.url == f"ws://127.0.0.1:{relay.port}"
    async with connect(relay.url + "/whatever"):
        assert json.loads((await http_get(relay.port))[2])["connections"] == 1
    await relay.stop()
    await relay.stop()  # idempotent
    with pytest.raises(RuntimeError):
        relay.port  # noqa: B018


async def test_fanout_live_events(relay: RelayServer) -> None:
    kp = nostr.KeyPair()
    topic = nostr.root_topic(nostr.APP_ID, nostr.data_room_id("t"))
    async with connect(relay.url) as a, connect(relay.url) as b:
        await a.send(nostr.encode_req("root", topic))
        await b.send(nostr.encode_req("root-b", topic))
        await b.send(nostr.encode_req("other", "different-topic"))
        assert await recv(a) == '["EOSE","root"]'
        assert [await recv(b), await recv(b)] == ['["EOSE","root-b"]', '["EOSE","other"]']
        ev = nostr.make_event(kp, topic, nostr.announce_content("peerA"))
        await a.send(nostr.encode_event(ev))
        assert await recv(a) == f'["OK","{ev["id"]}",true,""]'
        assert json.loads(await recv(a)) == ["EVENT", "root", ev]  # own event echoed
        assert json.loads(await recv(b)) == ["EVENT", "root-b", ev]
        # an old event (created_at below since - 60) is accepted but not delivered
        old = nostr.make_event(kp, topic, "x", created_at=nostr.now_s() - 3600)
        await a.send(nostr.encode_event(old))
        assert json.loads(await recv(a))[:3] == ["OK", old["id"], True]
        assert await drain_until_sync(a) == [] and await drain_until_sync(b) == []


async def test_hostile_input_keeps_connection_and_server(relay: RelayServer) -> None:
    async with connect(relay.url, max_size=None) as ws:
        for junk in [
            "not json", "{}", "[]", "null", "5", '"s"', "[" * 100_000, '{"a":' * 20_000,
            '["REQ"]', '["REQ",{}]', '["EVENT"]', '["EVENT",[]]', '["CLOSE",1]', "[NaN]",
            '["REQ","x",{"kinds":"1"}]', '["REQ","y",{"since":"now"}]', '["REQ","z",{"#x":[1]}]',
            '["REQ","w",[]]', '["EVENT",{"id":5}]', '["EVENT",{"kind":1,"id":"' + "a" * 64 + '"}]',
        ]:
            await ws.send(junk)
        await ws.send(b"\xff\x00binary garbage")
        await ws.send(json.dumps(["EVENT", {"id": "x", "content": "\ud800"}]))
        await ws.send('["REQ","\\ud800",{}]')  # lone surrogate in a sub id
        got = await drain_until_sync(ws)
        assert got == [
            '["CLOSED","x","invalid: kinds must be a list of numbers"]',
            '["CLOSED","y","invalid: since must be a number"]',
            '["CLOSED","z","invalid: #x must be a list of strings"]',
            '["CLOSED","w","invalid: filter is not an object"]',
            '["OK","",false,"invalid: bad signature"]',
            '["OK","' + "a" * 64 + '",false,"invalid: bad signature"]',
            '["OK","x",false,"invalid: bad signature"]',
            '["EOSE","\\ud800"]',
        ]
        # a frame above max_message_size is refused by the WebSocket layer (close 1009)
        await ws.send("[" + " " * relay.limits.max_message_size + "]")
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    async with connect(relay.url) as ws:  # the server is fine
        assert await drain_until_sync(ws) == []
    assert relay.stats.dropped == 3 and relay.stats.ignored >= 10


async def test_max_connections_refused_over_http() -> None:
    async with RelayServer(limits=RelayLimits(max_connections=1)) as relay:
        async with connect(relay.url) as ws:
            with pytest.raises(InvalidStatus) as info:
                async with connect(relay.url):
                    pass
            assert info.value.response.status_code == 503
            assert await drain_until_sync(ws) == []
        assert relay.stats.refused_connections == 1


# --- the hub without sockets -----------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_hub_limits() -> None:
    clock = FakeClock()
    limits = RelayLimits(max_subscriptions=2, max_filter_values=3, max_sub_id_length=8,
                         max_connections=2, rate=10, burst=5, max_message_size=100)
    hub = RelayHub(limits, clock=clock)
    out: list[str] = []
    conn = hub.connect(out.append)
    hub.connect(out.append)
    with pytest.raises(RelayFullError):
        hub.connect(out.append)
    assert hub.stats.refused_connections == 1

    conn.receive('["REQ","a",{}]')
    conn.receive('["REQ","b",{}]')
    conn.receive('["REQ","c",{}]')  # third subscription
    conn.receive('["REQ","a",{"kinds":[1]}]')  # replacing is fine
    conn.receive('["REQ","toolongsubid",{}]')
    assert out == ['["EOSE","a"]', '["EOSE","b"]', '["CLOSED","c","error: too many subscriptions"]', '["EOSE","a"]']
    assert list(conn.subscriptions) == ["a", "b"]
    out.clear()
    # rate: the burst of 5 is spent; refill at 10/s
    conn.receive('["REQ","d",{}]')
    assert out == [] and hub.stats.rate_limited == 1
    clock.t += 0.5
    conn.receive('["REQ","b",{"#x":["1","2","3","4"]}]')
    conn.receive('["REQ","a",{"kinds":[1,2,3,4]}]')
    assert out == ['["CLOSED","b","error: too many #x values"]', '["CLOSED","a","error: too many kinds"]']
    assert conn.subscriptions == {}
    conn.receive("[" + " " * 200 + "]")
    assert hub.stats.oversized == 1

    hub.disconnect(conn)
    hub.disconnect(conn)
    assert hub.stats.connections == 1
    conn.receive('["REQ","a",{}]')  # after disconnect: ignored
    assert len(out) == 2


def test_hub_survives_failing_send() -> None:
    hub = RelayHub()

    def broken(text: str) -> None:
        raise RuntimeError("closed")

    ok: list[str] = []
    bad = hub.connect(broken)
    good = hub.connect(ok.append)
    bad.receive('["REQ","s",{}]')
    good.receive('["REQ","s",{}]')
    ev = nostr.make_event(nostr.KeyPair(), "t", "hi")
    bad.receive(nostr.encode_event(ev))
    assert ok == ['["EOSE","s"]', '["EVENT","s",' + nostr.dumps(ev) + "]"]
    assert hub.stats.events == 1


def test_hub_first_matching_subscription_wins() -> None:
    hub = RelayHub()
    out: list[str] = []
    conn = hub.connect(out.append)
    conn.receive('["REQ","first",{"#x":["t"]}]')
    conn.receive('["REQ","second",{}]')
    conn.receive('["REQ","first",{"#x":["t"],"kinds":[' + str(nostr.topic_kind("t")) + "]}]")  # keeps its place
    ev = nostr.make_event(nostr.KeyPair(), "t", "hi")
    conn.receive(nostr.encode_event(ev))
    assert [json.loads(m)[:2] for m in out[3:]] == [["OK", ev["id"]], ["EVENT", "first"]]
