"""A real crash: a child acknowledges writes through the Database, is SIGKILLed, nothing is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import gdbnb

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    import gdbnb

    async def main(path):
        db = await gdbnb.open("crash", path=path)
        i = 0
        while True:
            nid = await db.put({"i": i, "pad": "x" * (i % 50)})
            if i % 7 == 0:
                await db.link(nid, nid)
            # the id is printed only after put() returned: an acknowledged write
            sys.stdout.write(f"{nid} {i}\\n")
            sys.stdout.flush()
            i += 1
            if i % 100 == 0:
                await asyncio.sleep(0)  # let checkpoints run, as a live node would

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_acknowledged_writes_survive_sigkill(tmp_path):
    path = tmp_path / "crash.sqlite"
    rounds = 3
    acknowledged: dict[str, int] = {}
    for r in range(rounds):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        stop_after = random.Random(r).randint(200, 3000)
        for n, line in enumerate(child.stdout):
            nid, i = line.split()
            acknowledged[nid] = int(i)
            if n >= stop_after:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    async with gdbnb.open("crash", path=path) as db:
        missing = [nid for nid in acknowledged if nid not in db.graph.nodes]
        assert not missing, f"{len(missing)} acknowledged writes lost"
        for nid, i in acknowledged.items():
            assert db.graph.nodes[nid].value["i"] == i
