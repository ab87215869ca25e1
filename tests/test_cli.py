"""``python -m gdbnb`` in a subprocess: start, serve, env and flags, SIGTERM, a locked store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import gdbnb
from gdbnb.cli import build_parser, resolve_config

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A ``python -m gdbnb`` process; ``start()`` waits for the ready banner."""

    def __init__(self, args: list[str], env: dict[str, str], tmp: Path) -> None:
        self.args, self.env, self.tmp = args, env, tmp
        self.proc: subprocess.Popen[str] | None = None
        self.out = ""

    def start(self, timeout: float = 20.0) -> "Node":
        self.proc = subprocess.Popen([sys.executable, "-m", "gdbnb", *self.args], env=self.env, cwd=self.tmp,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out += line
            if "API token" in line:
                return self
        self.proc.kill()
        raise AssertionError(f"no ready banner: {self.out!r} {self.proc.stderr.read() if self.proc.stderr else ''}")

    @property
    def port(self) -> int:
        return int(re.search(r"status page: http://[^:]+:(\d+)/gdb/", self.out).group(1))  # type: ignore[union-attr]

    @property
    def token(self) -> str:
        return re.search(r"API token \([^)]*\): (\S+)", self.out).group(1)  # type: ignore[union-attr]

    def http(self, path: str, method: str = "GET", body: Any = None, token: str | None = None,
             host: str = "127.0.0.1") -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{host}:{self.port}{path}", data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, str]:
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("did not exit after the signal")
        self.elapsed = time.monotonic() - t0
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GDB_") and k != "PORT"}
    e["GDB_DATA_DIR"] = str(tmp_path / "data")
    e["PYTHONPATH"] = str(ROOT)
    return e


@pytest.fixture
def nodes(tmp_path: Path, env: dict[str, str]):
    made: list[Node] = []

    def make(*args: str, **extra_env: str) -> Node:
        n = Node(list(args), {**env, **extra_env}, tmp_path)
        made.append(n)
        return n

    yield make
    for n in made:
        n.kill()


def read_store(path: Path, room: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with gdbnb.open(room, path=str(path)) as db:
            return {nid: n.to_dict()["value"] for nid, n in db.graph.nodes.items()}

    return asyncio.run(go())


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "gdbnb", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    assert out.returncode == 0
    for opt in ("--db-path", "--relay-urls", "--relay", "--no-relay", "--port", "--host", "--password", "--room",
                "--oplog-size", "--import", "--export", "--token", "--no-rtc", "--loopback", "--log-level",
                "GDB_ROOM", "GDB_DB_PATH", "GDB_RELAY_URLS", "GDB_RELAY", "PORT", "GDB_TOKEN"):
        assert opt in out.stdout, opt


def test_config_precedence():
    p = build_parser()
    env = {"GDB_ROOM": "envroom", "PORT": "9000", "GDB_RELAY": "0", "GDB_RELAY_URLS": "wss://a, wss://b ,",
           "GDB_DB_PATH": "/x/y.sqlite", "GDB_PASSWORD": "pw", "GDB_TOKEN": "t", "GDB_OPLOG_SIZE": "50"}
    c = resolve_config(p.parse_args([]), env)
    assert (c.room, c.port, c.relay, c.relay_urls, c.db_path, c.password, c.token, c.oplog_size) == (
        "envroom", 9000, False, ["wss://a", "wss://b"], "/x/y.sqlite", "pw", "t", 50)
    c = resolve_config(p.parse_args(["argroom", "--port", "1234", "--relay", "--relay-urls", "", "--token", "u"]), env)
    assert (c.room, c.port, c.relay, c.relay_urls, c.token) == ("argroom", 1234, True, [], "u")
    c = resolve_config(p.parse_args([]), {})
    assert (c.room, c.port, c.host, c.relay, c.relay_urls, c.rtc, c.db_path) == (
        "default", 8080, "127.0.0.1", True, None, True, None)
    with pytest.raises(SystemExit):
        resolve_config(p.parse_args([]), {"GDB_RELAY": "maybe"})


def test_serves_then_sigterm_flushes_and_exits_0(nodes, tmp_path):
    store = tmp_path / "s" / "store.sqlite"
    n = nodes("cliroom", "--no-rtc", "--port", "0", GDB_DB_PATH=str(store), GDB_TOKEN="tok").start()
    assert n.token == "tok"
    code, status = n.http("/gdb/api/status")
    assert code == 200 and status["room"] == "cliroom" and status["stats"]["store"] == str(store)
    assert n.http("/gdb/api/nodes", "POST", {"value": {"k": 1}, "id": "a"})[0] == 401
    for i in range(50):
        assert n.http("/gdb/api/nodes", "POST", {"value": {"k": i}, "id": f"n{i}"}, token="tok")[0] == 201
    rc, err = n.stop(signal.SIGTERM)
    assert rc == 0, err
    assert n.elapsed < 5
    assert "SIGTERM received" in err
    values = read_store(store, "cliroom")
    assert len(values) == 50 and values["n49"] == {"k": 49}


def test_sigint_exits_0_and_env_room_port(nodes, tmp_path):
    port = free_port()
    n = nodes("--no-rtc", GDB_ROOM="envroom", PORT=str(port)).start()
    assert n.port == port
    code, status = n.http("/gdb/api/status")
    assert status["room"] == "envroom"
    assert Path(status["stats"]["store"]) == tmp_path / "data" / "envroom.sqlite"  # the default data folder
    assert len(n.token) >= 32  # generated when not given
    rc, err = n.stop(signal.SIGINT)
    assert rc == 0, err


def test_second_instance_gets_a_clear_error(nodes, tmp_path):
    store = tmp_path / "shared.sqlite"
    first = nodes("r", "--no-rtc", "--port", "0", "--db-path", str(store)).start()
    second = nodes("r", "--no-rtc", "--port", "0", "--db-path", str(store))
    proc = subprocess.run([sys.executable, "-m", "gdbnb", *second.args], env=second.env, capture_output=True,
                          text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode != 0
    assert "error" in proc.stderr and "Traceback" not in proc.stderr
    assert re.search(r"lock|in use|another process", proc.stderr, re.I), proc.stderr
    assert first.http("/gdb/api/status")[0] == 200  # the first one is untouched
    assert first.stop()[0] == 0


def test_non_loopback_binding_needs_the_token_everywhere(nodes):
    n = nodes("open", "--no-rtc", "--port", "0", "--host", "0.0.0.0").start()
    assert "?token=" in n.out  # the status page URL carries it, like Jupyter's
    assert n.http("/gdb/api/status")[0] == 401
    assert n.http("/gdb/api/status", token=n.token)[0] == 200
    assert n.stop()[0] == 0


def test_export_then_import(nodes, tmp_path):
    src = tmp_path / "src.sqlite"
    n = nodes("legacy", "--no-rtc", "--port", "0", "--db-path", str(src), GDB_TOKEN="t").start()
    n.http("/gdb/api/nodes", "POST", {"value": {"name": "x"}, "id": "x"}, token="t")
    n.http("/gdb/api/nodes", "POST", {"value": [1, 2], "id": "y"}, token="t")
    n.http("/gdb/api/link", "POST", {"source": "x", "target": "y"}, token="t")
    assert n.stop()[0] == 0
    out_dir = tmp_path / "export"
    proc = subprocess.run([sys.executable, "-m", "gdbnb", "legacy", "--db-path", str(src), "--export", str(out_dir)],
                          env=n.env, capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out_dir / "legacy_graph.msgpack").exists() and (out_dir / "legacy_timestamp.json").exists()
    dst = tmp_path / "dst.sqlite"
    m = nodes("legacy", "--no-rtc", "--port", "0", "--db-path", str(dst), "--import", str(out_dir)).start()
    code, node = m.http("/gdb/api/nodes/x")
    assert code == 200 and node["value"] == {"name": "x"} and node["edges"] == ["y"]
    assert m.stop()[0] == 0
    assert read_store(dst, "legacy") == {"x": {"name": "x"}, "y": [1, 2]}


def test_rtc_with_its_own_relay_only(nodes):
    port = free_port()
    # GDB_RELAY_URLS replaces the public list: only the embedded relay is used (CI has no internet)
    n = nodes("rtcroom", "--port", str(port), "--loopback", GDB_RELAY_URLS=f"ws://127.0.0.1:{port}").start()
    assert f"ws://127.0.0.1:{port}" in n.out
    code, status = n.http("/gdb/api/status")
    assert status["network"] is True and status["peer_id"]
    assert status["relay_url"] == f"ws://127.0.0.1:{port}"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Accept": "application/json"})
    deadline = time.monotonic() + 10
    while True:  # the node's own relay client connects asynchronously after "ready"
        with urllib.request.urlopen(req, timeout=5) as r:
            health = json.loads(r.read())
        if health["connections"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert health["protocol"] == "nostr (ephemeral subset)" and health["connections"] >= 1
    rc, err = n.stop()
    assert rc == 0, err
    assert n.elapsed < 8
