"""A real crash: a child writes and acknowledges, we SIGKILL it, every acknowledged write is there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from gdbnb.store import SQLiteStore

WRITER = Path(__file__).with_name("crash_writer.py")
ROOM = "crash-room"
ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(path: Path, rnd: int, rng: random.Random) -> tuple[list[str], int]:
    """Start a writer, let it acknowledge a random number of lines, SIGKILL it.

    Returns the acknowledged node ids (including lines still in the pipe when it died) and the
    last acknowledged counter value.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), ROOM, str(rnd)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(b"ready"), proc.stderr.read() if proc.stderr else first
    lines: list[bytes] = []
    target = rng.randint(1, 3000)
    while len(lines) < target:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "writer died"
        lines.append(line)
    proc.send_signal(signal.SIGKILL)  # mid-write, wherever it is
    rest = proc.stdout.read()  # acknowledgements already written to the pipe count too
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines += rest.splitlines(keepends=True)
    ids, counter = [], 0
    for raw in lines:
        if not raw.endswith(b"\n"):
            continue  # a line cut by the kill was not fully acknowledged
        text = raw.decode().strip()
        if text.startswith("counter "):
            counter = int(text.split()[1])
        else:
            ids.append(text)
    return ids, counter


def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    path = tmp_path / "crash.sqlite"
    acked: list[str] = []
    for rnd in range(4):  # each round reopens what the previous crash left
        ids, counter = run_and_kill(path, rnd, rng)
        assert ids
        acked += ids
        with SQLiteStore(path, ROOM) as store:
            snap = store.load()
        nodes = {n.id: n for n in snap.nodes}
        missing = [i for i in acked if i not in nodes]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        for nid in acked:
            assert nodes[nid].value["id"] == nid
        if counter:
            assert nodes["counter"].value >= counter
        # nothing the writer did not try to write appeared
        assert all(k == "counter" or k.startswith("r") for k in nodes)
        assert snap.global_ts is not None and snap.clock is not None
        assert snap.global_ts >= max(n.timestamp for n in snap.nodes)
