"""Child process of test_crash.py: writes through Graph + SQLiteStore and acknowledges each write.

Usage: python crash_writer.py <store path> <room> <round>

Every line printed is an acknowledgement: it is written only after ``commit`` returned.
``<id>`` for a new node; ``counter <n>`` after the node "counter" was set to n. Every 7th
step commits a batch of 20 nodes in one journal. Runs until killed.
"""

from __future__ import annotations

import sys

from gdbnb.core.graph import Graph
from gdbnb.store import SQLiteStore


def main() -> None:
    path, room, rnd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SQLiteStore(path, room)
    snap = store.load()
    g = Graph.from_snapshot(snap.nodes, snap.oplog, snap.global_ts, snap.clock)
    out = sys.stdout
    out.write(f"ready {len(g.nodes)}\n")
    out.flush()
    i = 0
    while True:
        i += 1
        if i % 7 == 0:
            ids = [f"r{rnd}-{i}-{k}" for k in range(20)]
            for nid in ids:
                g.put({"round": rnd, "i": i, "id": nid}, id=nid)
            store.commit(g.take_journal())
            out.write("".join(f"{nid}\n" for nid in ids))
        else:
            nid = f"r{rnd}-{i}"
            g.put({"round": rnd, "i": i, "id": nid}, id=nid)
            if i % 3 == 0:
                g.put(i, id="counter")
                store.commit(g.take_journal())
                out.write(f"{nid}\ncounter {i}\n")
            else:
                store.commit(g.take_journal())
                out.write(f"{nid}\n")
        out.flush()


if __name__ == "__main__":
    main()
