"""The JSON API over real HTTP: auth rules, 4xx JSON errors, node CRUD, map queries, rooms."""

from __future__ import annotations

import json
import urllib.parse

import pytest

import gdbnb
from gdbnb.web.auth import is_loopback_host

from .conftest import TOKEN, serve



def q(obj: object) -> str:
    return urllib.parse.quote(json.dumps(obj))


async def test_status_open_on_loopback(served):
    await served.db.put({"a": 1}, "n1")
    code, body, headers = await served.fetch("/gdb/api/status")
    assert code == 200, body
    assert body["room"] == "webroom"
    assert body["stats"]["nodes"] == 1
    assert body["network"] is False and body["peers"] == []
    assert headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("how", ["token", "bearer", "query"])
async def test_writes_need_the_token(served, how):
    code, body, _ = await served.fetch("/gdb/api/nodes", "POST", {"value": 1})
    assert code == 401 and "token" in body["error"]
    code, body, _ = await served.fetch("/gdb/api/nodes", "POST", {"value": 1}, headers={"Authorization": "token nope"})
    assert code == 403 and body == {"error": "invalid token"}
    headers, path = {}, "/gdb/api/nodes"
    if how == "token":
        headers["Authorization"] = f"token {TOKEN}"
    elif how == "bearer":
        headers["Authorization"] = f"Bearer {TOKEN}"
    else:
        path += f"?token={TOKEN}"
    code, body, _ = await served.fetch(path, "POST", {"value": {"x": 1}}, headers=headers)
    assert code == 201, body
    assert (await served.db.get(body["id"]))["value"] == {"x": 1}


async def test_delete_and_link_need_the_token(served):
    await served.db.put(1, "a")
    await served.db.put(2, "b")
    assert (await served.fetch("/gdb/api/nodes/a", "DELETE"))[0] == 401
    assert (await served.fetch("/gdb/api/link", "POST", {"source": "a", "target": "b"}))[0] == 401
    assert (await served.fetch("/gdb/api/nodes/a", "PUT", {"value": 3}))[0] == 401
    assert await served.db.get("a") is not None


async def test_non_loopback_binding_protects_everything():
    async with gdbnb.open("locked", path=False) as db:
        s = await serve(db, protect_reads=True)
        try:
            for path in ("/gdb/api/status", "/gdb/api/nodes?id=x", "/gdb/api/map", "/gdb/", "/gdb/api/rooms"):
                code, body, _ = await s.fetch(path)
                assert code == 401, (path, body)
                assert "error" in body
            assert (await s.fetch("/gdb/api/status", token=TOKEN))[0] == 200
            assert (await s.fetch(f"/gdb/api/status?token={TOKEN}"))[0] == 200
            code, _, _ = await s.fetch("/gdb/", token=TOKEN)
            assert code == 200
            # page assets hold no data: public
            assert (await s.fetch("/gdb/static/app.js"))[0] == 200
        finally:
            s.context.close()
            await s.server.stop()


async def test_dns_rebinding_host_is_refused_on_loopback(served):
    code, body, _ = await served.fetch("/gdb/api/status", headers={"Host": "evil.example:80"})
    assert code == 403 and "error" in body
    assert (await served.fetch("/gdb/api/status", headers={"Host": "evil.example"}, token=TOKEN))[0] == 200
    assert (await served.fetch("/gdb/api/status", headers={"Host": "localhost:1234"}))[0] == 200


def test_is_loopback_host():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert is_loopback_host("[::1]") and is_loopback_host("127.8.9.10")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("::") and not is_loopback_host("10.0.0.1")
    assert not is_loopback_host("example.com")


async def test_node_crud(served):
    t = TOKEN
    code, body, _ = await served.fetch("/gdb/api/nodes", "POST", {"value": {"name": "Ana"}, "id": "ana"}, token=t)
    assert (code, body) == (201, {"id": "ana"})
    code, node, _ = await served.fetch("/gdb/api/nodes/ana")
    assert code == 200 and node["id"] == "ana" and node["value"] == {"name": "Ana"} and node["edges"] == []
    assert set(node["timestamp"]) == {"physical", "logical"}
    assert (await served.fetch("/gdb/api/nodes/ana", "PUT", {"value": {"name": "Ana B"}}, token=t))[0] == 200
    await served.fetch("/gdb/api/nodes", "POST", {"value": 2, "id": "bob"}, token=t)
    code, body, _ = await served.fetch("/gdb/api/link", "POST", {"source": "ana", "target": "bob"}, token=t)
    assert code == 200 and body["linked"] is True
    code, body, _ = await served.fetch("/gdb/api/nodes?id=ana&id=nobody")
    assert body["nodes"]["ana"]["edges"] == ["bob"] and body["nodes"]["nobody"] is None
    # ids are path segments: percent-encoded ids with '/' and unicode work
    weird = "a/b ü?#"
    code, _, _ = await served.fetch("/gdb/api/nodes/" + urllib.parse.quote(weird, safe=""), "PUT", {"value": 1}, token=t)
    assert code == 200 and (await served.db.get(weird))["value"] == 1
    code, body, _ = await served.fetch("/gdb/api/nodes/bob", "DELETE", token=t)
    assert code == 200 and body["removed"] is True
    assert (await served.db.get("ana"))["edges"] == []
    code, body, _ = await served.fetch("/gdb/api/nodes/bob", "DELETE", token=t)
    assert code == 404 and "bob" in body["error"]


@pytest.mark.parametrize(
    "method,path,body,raw,status",
    [
        ("GET", "/gdb/api/nodes/missing", None, None, 404),
        ("GET", "/gdb/api/nodes", None, None, 400),
        ("POST", "/gdb/api/nodes", None, b"{not json", 400),
        ("POST", "/gdb/api/nodes", None, b"", 400),
        ("POST", "/gdb/api/nodes", [1, 2], None, 400),
        ("POST", "/gdb/api/nodes", {"val": 1}, None, 400),
        ("POST", "/gdb/api/nodes", {"value": 1, "id": 5}, None, 400),
        ("POST", "/gdb/api/nodes", None, b"[" * 100_000 + b"]" * 100_000, 400),
        ("POST", "/gdb/api/link", {"source": "x", "target": "y"}, None, 404),
        ("POST", "/gdb/api/link", {"source": 1}, None, 400),
        ("POST", "/gdb/api/map", {"query": {"$nope": 1}}, None, 400),
        ("POST", "/gdb/api/map", {"bogus": 1}, None, 400),
        ("GET", "/gdb/api/map?query=%7Bbad", None, None, 400),
        ("GET", "/gdb/api/map?limit=-1", None, None, 400),
        ("GET", "/gdb/api/nowhere", None, None, 404),
        ("GET", "/nowhere", None, None, 404),
        ("GET", "/gdb/api/rooms/other/status", None, None, 404),
        ("PATCH", "/gdb/api/nodes/x", {"value": 1}, None, 405),
    ],
)
async def test_errors_are_json_without_traceback(served, method, path, body, raw, status):
    code, out, headers = await served.fetch(path, method, body, token=TOKEN, raw_body=raw)
    assert code == status, out
    assert isinstance(out, dict) and isinstance(out.get("error"), str) and out["error"], out
    assert "Traceback" not in json.dumps(out)
    assert headers["Content-Type"].startswith("application/json")


async def test_map_queries(served):
    db = served.db
    for i in range(10):
        await db.put({"type": "item" if i % 2 else "other", "n": i}, f"i{i}")
    code, body, _ = await served.fetch("/gdb/api/map?query=" + q({"type": "item"}))
    assert code == 200 and sorted(r["id"] for r in body["results"]) == ["i1", "i3", "i5", "i7", "i9"]
    code, body, _ = await served.fetch("/gdb/api/map", "POST",
                                       {"query": {"n": {"$gte": 4}}, "field": "n", "order": "desc", "limit": 3})
    assert code == 200, body
    assert [r["value"]["n"] for r in body["results"]] == [9, 8, 7]
    assert body["count"] == 3 and body["truncated"] is False
    # GenosDB's $-prefixed option names are accepted too
    code, body, _ = await served.fetch("/gdb/api/map", "POST", {"query": {"type": "other"}, "$limit": 2})
    assert code == 200 and body["count"] == 2
    code, body, _ = await served.fetch("/gdb/api/map?field=n&order=asc&limit=2")
    assert [r["value"]["n"] for r in body["results"]] == [0, 1]
    # a map POST is a read: no token needed on loopback
    assert (await served.fetch("/gdb/api/map", "POST", {"query": {}}))[0] == 200


async def test_rooms_addressed_by_path(served):
    async with gdbnb.open("second room", path=False) as other:
        served.context.add_room(other)
        await other.put("hello", "h")
        code, body, _ = await served.fetch("/gdb/api/rooms")
        assert body == {"default": "webroom", "rooms": ["second room", "webroom"]}
        code, node, _ = await served.fetch("/gdb/api/rooms/second%20room/nodes/h")
        assert code == 200 and node["value"] == "hello"
        assert (await served.fetch("/gdb/api/nodes/h"))[0] == 404
        code, body, _ = await served.fetch("/gdb/api/rooms/second%20room/status")
        assert body["room"] == "second room"
        served.context.remove_room("second room")


async def test_sync_facade_database_on_another_loop():
    """The Jupyter extension may serve a SyncDatabase whose loop runs in a thread."""
    sdb = gdbnb.connect("threaded", path=False)
    try:
        s = await serve(sdb)
        try:
            code, body, _ = await s.fetch("/gdb/api/nodes", "POST", {"value": 42, "id": "t"}, token=TOKEN)
            assert code == 201
            assert sdb.get("t")["value"] == 42
            code, body, _ = await s.fetch("/gdb/api/map", "POST", {"query": {}})
            assert [r["id"] for r in body["results"]] == ["t"]
            assert (await s.fetch("/gdb/api/status"))[1]["stats"]["nodes"] == 1
        finally:
            s.context.close()
            await s.server.stop()
    finally:
        sdb.close()


async def test_status_page_and_redirects(served):
    code, text, headers = await served.fetch("/gdb/")
    assert code == 200 and "<title>gdbnb status</title>" in text
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    code, _, headers = await served.fetch("/gdb?room=x")
    assert code == 302 and headers["Location"] == "/gdb/?room=x"
    code, _, headers = await served.fetch("/")
    assert code == 302 and headers["Location"] == "/gdb/"
    code, text, headers = await served.fetch("/gdb/static/app.js")
    assert code == 200 and "textContent" in text and "innerHTML" not in text.replace("never innerHTML", "")
