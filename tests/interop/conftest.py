"""Fixtures that run the REAL reference GenosDB (shared/interop harness) next to gdbnb.

``reference`` (session) checks what the harness needs and skips with the reason otherwise;
``reference.namespace()`` gives an isolated network namespace, and in it:

* ``reference.bun_peer(ns, room=…)`` — a reference peer (``gdbharness.BunPeer``);
* ``reference.genossrv(ns, room=…)`` — the reference GenosSRV program (``gdbharness.GenosSrv``);
* ``reference.browser_peer(ns, room=…, relays=…)`` — the reference browser build in headless
  Chromium (``gdbharness.BrowserPeer``; skips when Chromium is missing);
* ``reference.bench_peer(ns, room=…)`` — the reference peer of ``shared/bench`` (adds ``batch``);
* ``reference.gdbnb_peer(ns, room=…)`` — gdbnb itself (``python -m gdbnb.benchpeer``) behind the
  same JSON-lines protocol, as a subprocess in the namespace (aiortc skips loopback addresses:
  the namespace's veth addresses are what makes WebRTC work).

Every process is stopped by PID when its context exits; the namespace is deleted (which kills
whatever is left in it) when ``namespace()`` exits.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DIR = Path(os.environ.get("GDBNB_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared")
INTEROP_DIR = SHARED_DIR / "interop"
DEFAULT_DIST = Path.home() / ".cache" / "gdbnb-reference" / "genosdb" / "dist"
DEFAULT_BUN = Path("/opt/gdb-interop-tools/node_modules/.bin/bun")
#: A relay nobody listens on: peers that only need their local engine never reach anyone.
DEAD_RELAY = "ws://127.0.0.1:1"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")


def _chromium() -> str | None:
    c = os.environ.get("CHROMIUM")
    if c:
        return c if Path(c).exists() else None
    return next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), None)


def _missing() -> str | None:
    """Why the reference cannot run here, or None."""
    if not (INTEROP_DIR / "gdbharness.py").is_file():
        return f"no interop harness at {INTEROP_DIR} (set GDBNB_SHARED_DIR)"
    dist = Path(os.environ.get("GENOSDB_DIST") or DEFAULT_DIST)
    if not (dist / "genossrv.min.js").is_file():
        return f"no GenosDB bundle at {dist} (set GENOSDB_DIST)"
    bun = os.environ.get("BUN") or shutil.which("bun") or (str(DEFAULT_BUN) if DEFAULT_BUN.exists() else None)
    if not bun or not Path(bun).exists():
        return "bun not found (run shared/interop/setup.sh or set BUN)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 (ip) is not installed"
    try:
        import subprocess

        subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`ip netns` does not work here: {e}"
    os.environ.setdefault("GENOSDB_DIST", str(dist))
    os.environ.setdefault("BUN", bun)
    return None


class Reference:
    """Access to the interop harness; namespaces are numbered per process to avoid clashes."""

    def __init__(self) -> None:
        if str(INTEROP_DIR) not in sys.path:
            sys.path.insert(0, str(INTEROP_DIR))
        import gdbharness

        self.harness: Any = gdbharness
        self._seq = 0

    @contextmanager
    def namespace(self, name: str | None = None, subnet: str | None = None) -> Iterator[Any]:
        """A fresh namespace (``name``/``subnet`` like ``gi1``/``10.211.1``; default: numbered per
        process). A stale one of the same name (a killed run) is deleted first."""
        self._seq += 1
        n = os.getpid() % 50_000
        name = name or f"gq{n}x{self._seq}"
        subnet = subnet or f"10.{210 + self._seq % 40}.{n % 250}"
        ns = self.harness.Netns(name, subnet)
        ns.down()
        try:
            yield ns.up()
        finally:
            ns.down()

    @contextmanager
    def bun_peer(
        self, ns: str, room: str = "gdbnb-test", relays: tuple[str, ...] = (DEAD_RELAY,), **kw: Any
    ) -> Iterator[Any]:
        with self.harness.BunPeer(room=room, relays=list(relays), ns=ns, **kw) as peer:
            yield peer

    @contextmanager
    def genossrv(self, ns: str, room: str = "gdbnb-test", **kw: Any) -> Iterator[Any]:
        srv = self.harness.GenosSrv(room=room, ns=ns, **kw)
        try:
            yield srv.start()
        finally:
            srv.stop()

    def require_browser(self) -> None:
        if _chromium() is None:
            pytest.skip("Chromium not found (apt-get install chromium, or set CHROMIUM)")

    @contextmanager
    def browser_peer(self, ns: str, room: str, relays: tuple[str, ...] | list[str], **kw: Any) -> Iterator[Any]:
        self.require_browser()
        os.environ.setdefault("CHROMIUM", _chromium() or "")
        with ExitStack() as stack:
            try:
                peer = stack.enter_context(self.harness.BrowserPeer(room=room, relays=list(relays), ns=ns, **kw))
            except self.harness.HarnessError as e:
                # Headless Chromium now and then dies before the page is ready (seen once in ~10
                # full runs, with an empty stderr): one more start; a second failure is reported.
                warnings.warn(f"the reference browser peer did not start, retrying once: {e}")
                peer = stack.enter_context(self.harness.BrowserPeer(room=room, relays=list(relays), ns=ns, **kw))
            yield peer

    def require_bench_peer(self) -> Path:
        p = SHARED_DIR / "bench" / "ref-peer.mjs"
        if not p.is_file():
            pytest.skip(f"no bench reference peer at {p}")
        return p

    @contextmanager
    def bench_peer(
        self, ns: str, room: str, relays: tuple[str, ...] | list[str], db: str | None = None,
        name: str = "refbench", extra: tuple[str, ...] = (), **kw: Any,
    ) -> Iterator[Any]:
        """The reference peer of shared/bench (the Bun peer + ``batch``, ``summary`` waits)."""
        script = self.require_bench_peer()
        argv = [self.harness.find_bun(), str(script), "--room", room, "--interop", str(INTEROP_DIR),
                "--lifetime", "600"]
        for r in relays:
            argv += ["--relay", r]
        if db:
            argv += ["--db", db]
        argv += list(extra)
        env = dict(os.environ, GENOSDB_DIST=self.harness.genosdb_dist())
        with self.harness.Peer(argv, name, env=env, ns=ns, **kw) as peer:
            yield peer

    @contextmanager
    def gdbnb_peer(
        self, ns: str, room: str, relays: tuple[str, ...] | list[str] = (), db: str | None = None,
        password: str | None = None, serve_relay: str | None = None, name: str = "gdbnb",
        extra: tuple[str, ...] = (), **kw: Any,
    ) -> Iterator[Any]:
        """gdbnb (``python -m gdbnb.benchpeer``) as a JSON-lines peer inside ``ns``."""
        argv = [sys.executable, "-m", "gdbnb.benchpeer", "--room", room]
        for r in relays:
            argv += ["--relay", r]
        if db:
            argv += ["--db", db]
        if password:
            argv += ["--password", password]
        if serve_relay:
            argv += ["--serve-relay", serve_relay]
        argv += list(extra)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.harness.Peer(argv, name, env=env, ns=ns, **kw) as peer:
            yield peer


def graph_of(peer: Any, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{id: value}`` of what ``peer`` holds (``map`` with ``query``)."""
    return {n["id"]: n["value"] for n in peer.map(query or {})["results"]}


def genossrv_nodes(db_path: str | Path, room: str) -> dict[str, Any]:
    """``{id: value}`` from a stopped GenosSRV's SQLite file (table ``kv``, key ``ROOM:graph``:
    zlib-deflated MessagePack map id -> node record)."""
    import sqlite3
    import zlib

    import msgpack

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT value FROM kv WHERE key = ?", (f"{room}:graph",)).fetchone()
    finally:
        con.close()
    if row is None:
        return {}
    data = msgpack.unpackb(zlib.decompress(row[0]), strict_map_key=False)
    return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in (data or {}).items()}


@pytest.fixture(scope="session")
def reference() -> Reference:
    why = _missing()
    if why:
        pytest.skip(f"reference GenosDB unavailable: {why}")
    return Reference()
