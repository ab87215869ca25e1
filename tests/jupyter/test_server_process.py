"""A real ``jupyter server`` process keeping a room, and a gdbnb node syncing with it through
the relay mounted in that server; then SIGINT / SIGTERM and a clean exit."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

import gdbnb

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token-5f1c"
ROOM_OPTIONS = {"announce_interval": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """``python -m jupyter_server`` with its own config, data and runtime folders."""

    def __init__(self, tmp: Path, *args: str, gdb: dict[str, Any]) -> None:
        self.tmp, self.port = tmp, free_port()
        self.data_dir = tmp / "gdbdata"
        config = tmp / "config"
        config.mkdir()
        # the shipped jupyter_server_config.d JSON enables the extension; the rest is per test
        shutil.copytree(ROOT / "jupyter_server_ext" / "jupyter_server_config.d", config / "jupyter_server_config.d")
        (config / "jupyter_server_config.json").write_text(json.dumps(
            {"GdbnbExtension": {"data_dir": str(self.data_dir), **gdb}}))
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "JUPYTER_CONFIG_DIR": str(config),
                    "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
                    "JUPYTER_PLATFORM_DIRS": "0"}
        self.args = [sys.executable, "-m", "jupyter_server", f"--port={self.port}", "--port-retries=0",
                     "--no-browser", "--allow-root", f"--IdentityProvider.token={TOKEN}",
                     f"--ServerApp.root_dir={tmp}", "--ServerApp.ip=127.0.0.1", *args]
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "JupyterServer":
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.args, env=self.env, cwd=self.tmp, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def api(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        req = HTTPRequest(f"http://127.0.0.1:{self.port}/{path}", method=method,
                          headers={"Authorization": f"token {TOKEN}"}, request_timeout=5,
                          body=json.dumps(body) if body is not None else None)
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            if e.response is None:
                raise
            resp = e.response
        return resp.code, json.loads(resp.body) if resp.body else None

    async def wait_ready(self, room: str, timeout: float = 30) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None and self.proc.poll() is None, self.output
            try:
                code, status = await self.api(f"gdb/api/rooms/{room}/status")
                if code == 200:
                    return status  # type: ignore[no-any-return]
            except (OSError, HTTPClientError):
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"room {room!r} never served:\n{self.output}")

    async def stop(self, sig: int, timeout: float = 15) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"the server did not stop within {timeout} s:\n{self.output}")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


async def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


async def test_sync_through_the_relay_mounted_in_jupyter(tmp_path: Path) -> None:
    server = JupyterServer(tmp_path, "--GdbnbExtension.rooms=e2e", "--GdbnbExtension.loopback=True",
                           gdb={"relay_urls": [], "node_options": {"room_options": ROOM_OPTIONS}}).start()
    try:
        status = await server.wait_ready("e2e")
        assert status["network"] and status["relay_url"] == f"ws://127.0.0.1:{server.port}/gdb/relay"
        relay = f"ws://127.0.0.1:{server.port}/gdb/relay?token={TOKEN}"
        async with await gdbnb.open("e2e", rtc=True, relay_urls=[relay], loopback=True,
                                    path=tmp_path / "local.sqlite", room_options=ROOM_OPTIONS) as db:
            await db.put({"from": "python"}, "a")

            async def jupyter_has_a() -> bool:
                code, node = await server.api("gdb/api/rooms/e2e/nodes/a")
                return code == 200 and node["value"] == {"from": "python"}

            await eventually(jupyter_has_a, 30, "the Jupyter side sees the local write")
            code, _ = await server.api("gdb/api/rooms/e2e/nodes/b", "PUT", {"value": {"from": "jupyter"}})
            assert code == 200

            async def local_has_b() -> bool:
                node = await db.get("b")
                return node is not None and node["value"] == {"from": "jupyter"}

            await eventually(local_has_b, 20, "the local node sees the Jupyter write")
            code, peers = await server.api("gdb/api/rooms/e2e/peers")
            server_peer = status["peer_id"]
            assert db.network.peer_id in [p["peer"] for p in peers["peers"]]
            left: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            def on_leave(p: dict[str, Any]) -> None:
                if p.get("peer") == server_peer and not left.done():
                    left.set_result(p)

            db.events.on("peer:leave", on_leave)
            t0 = time.monotonic()
            assert await server.stop(signal.SIGINT) == 0, server.output  # no terminal: SIGINT is a clean stop
            assert time.monotonic() - t0 < 10
            assert (await asyncio.wait_for(left, 5))["reason"] == "leave"  # it said bye (@_leave)
        assert "room 'e2e' closed" in server.output
    finally:
        server.kill()
    # the store was flushed and released: it opens here with both writes
    async with gdbnb.open("e2e", path=server.data_dir / "e2e.sqlite") as again:
        assert (await again.get("a"))["value"] == {"from": "python"}
        assert (await again.get("b"))["value"] == {"from": "jupyter"}


async def test_sigterm_stops_cleanly_and_extension_is_listed(tmp_path: Path) -> None:
    server = JupyterServer(tmp_path, gdb={"rooms": ["t1", "t2"], "rtc": False}).start()
    try:
        await server.wait_ready("t2")
        code, _ = await server.api("gdb/api/rooms/t1/nodes/x", "PUT", {"value": 1})
        assert code == 200
        assert await server.stop(signal.SIGTERM) == 0, server.output
    finally:
        server.kill()
    async with gdbnb.open("t1", path=server.data_dir / "t1.sqlite") as again:
        assert (await again.get("x"))["value"] == 1
    # `jupyter server extension list` reads the shipped JSON and validates the module
    out = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"], env=server.env,
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert "gdbnb.jupyter" in text and "enabled" in text and "OK" in text.split("gdbnb.jupyter", 2)[-1], text
