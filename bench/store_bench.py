"""Store micro-benchmark: SQLiteStore commits, load and size (not a test).

    python bench/store_bench.py                 # N = 1k, 10k, 100k
    python bench/store_bench.py --million       # also N = 1M
    python bench/store_bench.py --durability full

Nodes have the shape of the shared bench's W1 items (random uuid ids, like ``put`` without
an id). Figures:

* single commits/s: one ``put`` + ``take_journal`` + ``commit`` per node, onto the N-node store
  (2 000 of them, or N if smaller), "store only" = the time inside ``commit``;
* batch nodes/s: N nodes written as journals of 1 000 nodes each;
* load: ``SQLiteStore(...)`` + ``load()`` of the N-node store, then ``Graph.from_snapshot``,
  then the first full ``gc.collect()`` (load pauses the GC, so that collection is deferred);
* bytes/node: main file + WAL after ``close()``, divided by N.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gdbnb.core.graph import Graph  # noqa: E402
from gdbnb.store import SQLiteStore  # noqa: E402

TAGS = ["red", "green", "blue", "x", "y", "z", "alpha", "beta"]


def item(rng: random.Random, i: int) -> dict:
    return {"type": "item", "i": i, "name": f"item-{i}", "tags": [rng.choice(TAGS) for _ in range(3)], "score": rng.random()}


def size_on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def bench(n: int, durability: str, workdir: Path) -> dict[str, float]:
    rng = random.Random(n)
    path = workdir / f"bench-{n}.sqlite"
    g = Graph()
    store = SQLiteStore(path, "bench", durability=durability)
    # batches of 1000
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, 1000):
        for i in range(start, min(n, start + 1000)):
            g.put(item(rng, i))
        store.commit(g.take_journal())
    batch_s, batch_cpu = time.perf_counter() - t0, time.process_time() - c0
    # single-node commits onto the N-node store
    singles = min(n, 2000)
    in_commit = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(singles):
        g.put(item(rng, n + i))
        j = g.take_journal()
        t1 = time.perf_counter()
        store.commit(j)
        in_commit += time.perf_counter() - t1
    single_s, single_cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    total = n + singles
    size = size_on_disk(path)
    # load (the OS cache is warm, as after a restart on a running machine)
    t0, c0 = time.perf_counter(), time.process_time()
    store = SQLiteStore(path, "bench")
    snap = store.load()
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    g2 = Graph.from_snapshot(snap.nodes, snap.oplog, snap.global_ts, snap.clock)
    graph_s = time.perf_counter() - t0
    assert len(g2.nodes) == total, (len(g2.nodes), total)
    # load() pauses the cyclic GC; the first full collection afterwards traverses the whole
    # graph once. Shown apart (gc.freeze() after loading avoids it).
    t0 = time.perf_counter()
    gc.collect()
    gc_s = time.perf_counter() - t0
    store.close()
    return {
        "n": n,
        "batch_nodes_per_s": n / batch_s,
        "single_per_s": singles / single_s,
        "single_store_only_per_s": singles / in_commit,
        "batch_nodes_per_cpu_s": n / batch_cpu,
        "single_per_cpu_s": singles / single_cpu,
        "load_cpu_s": load_cpu,
        "load_s": load_s,
        "from_snapshot_s": graph_s,
        "gc_s": gc_s,
        "bytes_per_node": size / total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--million", action="store_true", help="also N = 1 000 000")
    ap.add_argument("--durability", default="process", choices=["process", "full"])
    ap.add_argument("--dir", help="where to put the files (default: a temp dir, removed after)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([1_000_000] if args.million else [])
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="gdbnb-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"durability={args.durability}  python {sys.version.split()[0]}  cpus {os.cpu_count()}  dir {workdir}")
    print("wall-clock figures, then [per CPU-second of this process] (robust when the machine is busy)")
    head = (
        f"{'N':>9} | {'batch nodes/s':>22} | {'single commits/s':>19} | {'single/s (in commit)':>20} | "
        f"{'load s':>15} | {'from_snapshot s':>15} | {'1st gc s':>8} | {'bytes/node':>10}"
    )
    print(head)
    print("-" * len(head))
    try:
        for n in sizes:
            r = bench(n, args.durability, workdir)
            print(
                f"{n:>9} | {r['batch_nodes_per_s']:>9,.0f} [{r['batch_nodes_per_cpu_s']:>9,.0f}] | "
                f"{r['single_per_s']:>7,.0f} [{r['single_per_cpu_s']:>7,.0f}] | "
                f"{r['single_store_only_per_s']:>20,.0f} | {r['load_s']:>6.3f} [{r['load_cpu_s']:>6.3f}] | "
                f"{r['from_snapshot_s']:>15.3f} | {r['gc_s']:>8.3f} | {r['bytes_per_node']:>10.1f}",
                flush=True,
            )
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
