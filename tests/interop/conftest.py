"""Fixtures that run the REAL reference GenosDB (shared/interop harness) next to gdbnb.

``reference`` (session) checks what the harness needs and skips with the reason otherwise;
``reference.namespace()`` gives an isolated network namespace and ``reference.bun_peer(...)``
starts a reference peer in it (``gdbharness.BunPeer``).
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DIR = Path(os.environ.get("GDBNB_SHARED_DIR") or Path(__file__).resolve().parents[2].parent / "shared")
INTEROP_DIR = SHARED_DIR / "interop"
DEFAULT_DIST = Path.home() / ".cache" / "gdbnb-reference" / "genosdb" / "dist"
DEFAULT_BUN = Path("/opt/gdb-interop-tools/node_modules/.bin/bun")
#: A relay nobody listens on: peers that only need their local engine never reach anyone.
DEAD_RELAY = "ws://127.0.0.1:1"


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
    def namespace(self) -> Iterator[Any]:
        self._seq += 1
        n = os.getpid() % 50_000
        with self.harness.Netns(f"gq{n}x{self._seq}", f"10.{210 + self._seq % 40}.{n % 250}") as ns:
            yield ns

    @contextmanager
    def bun_peer(
        self, ns: str, room: str = "gdbnb-test", relays: tuple[str, ...] = (DEAD_RELAY,), **kw: Any
    ) -> Iterator[Any]:
        with self.harness.BunPeer(room=room, relays=list(relays), ns=ns, **kw) as peer:
            yield peer


@pytest.fixture(scope="session")
def reference() -> Reference:
    why = _missing()
    if why:
        pytest.skip(f"reference GenosDB unavailable: {why}")
    return Reference()
