"""Fixtures of the web tests: a real Tornado server on a free port, in the test's loop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

import gdbnb
from gdbnb.web.auth import TokenAuth
from gdbnb.web.context import GdbWebContext
from gdbnb.web.server import WebServer, make_app

TOKEN = "test-token-123"


@dataclass
class Served:
    db: Any
    context: GdbWebContext
    server: WebServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def fetch(self, path: str, method: str = "GET", body: Any = None, token: str | None = None,
                    headers: dict[str, str] | None = None, raw_body: bytes | None = None) -> tuple[int, Any, Any]:
        """``(status, parsed JSON or text, headers)``; never raises on HTTP errors."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"token {token}"
        data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        req = HTTPRequest(self.base + path, method=method, body=data, headers=h, allow_nonstandard_methods=True,
                          follow_redirects=False, request_timeout=10)
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            resp = e.response
            assert resp is not None
        text = resp.body.decode() if resp.body else ""
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
        return resp.code, parsed, resp.headers


async def serve(db: Any, *, protect_reads: bool = False, **ctx: Any) -> Served:
    context = GdbWebContext(auth=TokenAuth(TOKEN, protect_reads=protect_reads), **ctx)
    context.add_room(db, default=True)
    server = WebServer(make_app(context), "127.0.0.1", 0)
    await server.start()
    return Served(db, context, server)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    async with gdbnb.open("webroom", path=False) as db:
        s = await serve(db)
        try:
            yield s
        finally:
            s.context.close()
            await s.server.stop()


class SSEClient:
    """A minimal SSE client over a raw socket (HTTP/1.0: the body is the bare stream)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: str) -> None:
        self.reader, self.writer, self.headers = reader, writer, headers
        self.comments: list[str] = []

    @classmethod
    async def connect(cls, port: int, path: str = "/gdb/events", last_event_id: str | None = None,
                      extra: dict[str, str] | None = None) -> "SSEClient":
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.0", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        if last_event_id:
            lines.append(f"Last-Event-ID: {last_event_id}")
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return cls(reader, writer, head.decode())

    @property
    def status(self) -> int:
        return int(self.headers.split(" ", 2)[1])

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any] | None:
        """The next event ``{id, event, data}`` (data parsed), or None at end of stream."""
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                return None
            text = line.decode().rstrip("\n")
            if text == "":
                if "event" in fields or "data" in fields:
                    return {"id": fields.get("id"), "event": fields.get("event", "message"),
                            "data": json.loads(fields["data"]) if "data" in fields else None}
                continue
            if text.startswith(":"):
                self.comments.append(text[1:].strip())
                continue
            key, _, value = text.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value

    async def events(self, n: int, timeout: float = 5.0, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        out = []
        while len(out) < n:
            ev = await self.next_event(timeout)
            assert ev is not None, f"stream ended after {out}"
            if ev["event"] not in skip:
                out.append(ev)
        return out

    def close(self) -> None:
        self.writer.close()


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
