"""The extension inside a real ServerApp (pytest-jupyter): loading, auth, SSE, rooms, shutdown."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from gdbnb.jupyter.app import GdbnbExtension

NO_AUTH = {"Authorization": ""}


async def fetch(jp_fetch: Any, *parts: str, **kw: Any) -> tuple[int, Any]:
    """``(status, parsed JSON or text)``; HTTP errors are answers, not exceptions."""
    if "json" in kw:
        kw["body"] = json.dumps(kw.pop("json"))
    try:
        r = await jp_fetch(*parts, **kw)
    except HTTPClientError as e:
        r = e.response
        assert r is not None, e
    text = r.body.decode() if r.body else ""
    try:
        return r.code, json.loads(text)
    except ValueError:
        return r.code, text


async def test_loaded_with_its_rooms_and_defaults(gdb_app: GdbnbExtension, jp_fetch: Any, tmp_path: Path) -> None:
    assert gdb_app.name == "gdbnb"
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms")
    assert code == 200 and body == {"default": "alpha", "rooms": ["alpha"]}
    code, status = await fetch(jp_fetch, "gdb", "api", "status")
    assert code == 200 and status["room"] == "alpha"
    assert status["stats"]["store"] == str(tmp_path / "gdbdata" / "alpha.sqlite")
    assert status["relay_url"].endswith("/a%40b/gdb/relay")  # under the server's base URL
    # defaults of the traits that tests do not set
    fresh = GdbnbExtension()
    assert fresh.data_dir.endswith("/gdbnb") and fresh.relay_urls is None and fresh.rooms == []
    assert fresh.embedded_relay and fresh.relay_requires_auth and fresh.autostart and fresh.oplog_size == 1000


async def test_every_handler_needs_jupyter_auth(gdb_app: GdbnbExtension, jp_fetch: Any) -> None:
    reads = [("gdb/",), ("gdb", "api", "rooms"), ("gdb", "api", "status"), ("gdb", "api", "peers"),
             ("gdb", "api", "recent"), ("gdb", "api", "rooms", "alpha", "status"), ("gdb", "events")]
    for parts in reads:
        code, body = await fetch(jp_fetch, *parts, headers=NO_AUTH)
        assert code == 403, (parts, code, body)
    code, _ = await fetch(jp_fetch, "gdb", "api", "nodes", method="POST", json={"value": 1}, headers=NO_AUTH)
    assert code == 403
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "x"}, headers=NO_AUTH)
    assert code == 403
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", "alpha", method="DELETE", headers=NO_AUTH)
    assert code == 403
    code, _ = await fetch(jp_fetch, "gdb", "api", "status", headers={"Authorization": "token wrong"})
    assert code == 403
    # with the token
    code, page = await fetch(jp_fetch, "gdb/")
    assert code == 200 and "static/app.js" in page
    code, body = await fetch(jp_fetch, "gdb", "api", "nodes", method="POST", json={"value": {"n": 1}, "id": "k"})
    assert code == 201 and body == {"id": "k"}
    code, node = await fetch(jp_fetch, "gdb", "api", "nodes", "k")
    assert code == 200 and node["value"] == {"n": 1}


#: (action, resource) pairs ReadOnlyAuthorizer was asked about
SEEN: list[tuple[str, str]] = []


class ReadOnlyAuthorizer(Authorizer):
    """Jupyter's authorizer hook: ``gdbnb`` may be read, not written."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "gdbnb":
            SEEN.append((action, resource))
            return action == "read"
        return True


@pytest.fixture
def read_only_authorizer(jp_server_config: dict[str, Any]) -> None:
    jp_server_config["ServerApp"]["authorizer_class"] = f"{__name__}.ReadOnlyAuthorizer"


async def test_authorizer_sees_the_gdbnb_resource(read_only_authorizer: None, gdb_app: GdbnbExtension,
                                                  jp_fetch: Any) -> None:
    SEEN.clear()
    code, _ = await fetch(jp_fetch, "gdb", "api", "status")
    assert code == 200 and ("read", "gdbnb") in SEEN
    code, body = await fetch(jp_fetch, "gdb", "api", "nodes", method="POST", json={"value": 1})
    assert code == 403 and "write" in body["error"]
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "beta"})
    assert code == 403


async def test_sse_streams_changes(gdb_app: GdbnbExtension, jp_fetch: Any) -> None:
    chunks: list[bytes] = []
    got = asyncio.Event()

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        if b"node:added" in b"".join(chunks):
            got.set()

    stream = asyncio.ensure_future(jp_fetch("gdb", "events", streaming_callback=on_chunk, request_timeout=30))
    try:
        hub = gdb_app.context.hub("alpha")
        for _ in range(100):
            if hub.clients:
                break
            await asyncio.sleep(0.05)
        assert hub.clients == 1
        code, _ = await fetch(jp_fetch, "gdb", "api", "nodes", "s1", method="PUT", json={"value": "hello"})
        assert code == 200
        await asyncio.wait_for(got.wait(), 10)
        text = b"".join(chunks).decode()
        assert "event: node:added" in text and '"id":"s1"' in text
    finally:
        stream.cancel()


async def test_rooms_join_and_leave_through_the_api(gdb_app: GdbnbExtension, jp_fetch: Any, tmp_path: Path) -> None:
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "beta"})
    assert code == 201 and body["room"] == "beta" and body["created"] is True
    assert body["store"] == str(tmp_path / "gdbdata" / "beta.sqlite")
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "beta"})
    assert code == 200 and body["created"] is False  # idempotent
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "beta", "password": "x"})
    assert code == 409  # another password: leave first
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms")
    assert body["rooms"] == ["alpha", "beta"]
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", "beta", "nodes", "b1", method="PUT", json={"value": 2})
    assert code == 200
    db = gdb_app.manager.databases["beta"]
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms", "beta", method="DELETE")
    assert code == 200 and body == {"room": "beta", "left": True}
    assert db.closed and "beta" not in gdb_app.context.rooms
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", "beta", "status")
    assert code == 404
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", "beta", method="DELETE")
    assert code == 404
    for bad in ({"room": ""}, {"room": 5}, {"room": "x" * 300}, {"nope": 1}, {"room": "a", "password": 3}):
        code, body = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json=bad)
        assert code == 400, (bad, body)
    # rejoining reopens the store with what it held
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "beta"})
    assert code == 201
    code, node = await fetch(jp_fetch, "gdb", "api", "rooms", "beta", "nodes", "b1")
    assert code == 200 and node["value"] == 2


async def test_relay_is_mounted_behind_auth(gdb_app: GdbnbExtension, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("gdb", "relay")  # token in the Authorization header
    try:
        await ws.write_message(json.dumps(["REQ", "s", {"kinds": [20000]}]))
        assert json.loads(await asyncio.wait_for(ws.read_message(), 5)) == ["EOSE", "s"]
    finally:
        ws.close()
    with pytest.raises(HTTPClientError) as e:
        await jp_ws_fetch("gdb", "relay", headers=NO_AUTH)
    assert e.value.code == 403
    with pytest.raises(HTTPClientError) as e:  # a wrong internal key is no key
        await jp_ws_fetch("gdb", "relay", headers=NO_AUTH, params={"gdbnb_key": "guess"})
    assert e.value.code == 403
    assert any(r["open"] for r in gdb_app.manager.databases["alpha"].network.status()["relays"])  # own nodes: the key


@pytest.fixture
def open_relay(gdb_config: dict[str, Any]) -> None:
    gdb_config["relay_requires_auth"] = False


async def test_relay_open_when_configured(open_relay: None, gdb_app: GdbnbExtension, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("gdb", "relay", headers={**NO_AUTH, "Origin": "https://some.app"})
    try:
        await ws.write_message(json.dumps(["REQ", "s", {"kinds": [20000]}]))
        assert json.loads(await asyncio.wait_for(ws.read_message(), 5)) == ["EOSE", "s"]
    finally:
        ws.close()


@pytest.fixture
def jp_argv() -> list[str]:
    return []


@pytest.fixture
def cli_config(gdb_config: dict[str, Any], jp_argv: list[str]) -> None:
    gdb_config.pop("rooms")
    jp_argv += ["--GdbnbExtension.rooms=one", "--GdbnbExtension.rooms=two", "--GdbnbExtension.oplog_size=7",
                "--GdbnbExtension.rtc=False"]


async def test_configured_from_the_command_line(cli_config: None, gdb_app: GdbnbExtension, jp_fetch: Any) -> None:
    assert gdb_app.rooms == ["one", "two"] and gdb_app.oplog_size == 7
    code, body = await fetch(jp_fetch, "gdb", "api", "rooms")
    assert body["rooms"] == ["one", "two"]
    code, status = await fetch(jp_fetch, "gdb", "api", "rooms", "two", "status")
    assert status["network"] is False and status["stats"]["oplog_capacity"] == 7
    assert GdbnbExtension(rooms=["['a', 'b']"]).rooms == ["a", "b"]  # a list literal given as one string


async def test_shutdown_closes_rooms_and_streams(gdb_app: GdbnbExtension, jp_serverapp: Any, jp_fetch: Any) -> None:
    db = gdb_app.manager.databases["alpha"]
    await db.put({"x": 1}, "kept")
    stream_done = asyncio.ensure_future(jp_fetch("gdb", "events", streaming_callback=lambda c: None,
                                                 request_timeout=30))
    for _ in range(100):
        if gdb_app.context.hub("alpha").clients:
            break
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await jp_serverapp.extension_manager.stop_all_extensions()
    assert loop.time() - t0 < 5
    assert db.closed and db.network is not None and gdb_app.context.rooms == {}
    await asyncio.wait_for(stream_done, 5)  # the SSE response ended
    code, _ = await fetch(jp_fetch, "gdb", "api", "rooms", method="POST", json={"room": "late"})
    assert code == 503
    import gdbnb

    async with gdbnb.open("alpha", path=db.store_path) as again:  # the store lock was released
        assert (await again.get("kept"))["value"] == {"x": 1}
