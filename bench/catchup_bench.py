"""Catch-up of a fresh gdbnb peer from a gdbnb holder of N nodes (W1-shaped nodes).

``python bench/catchup_bench.py --nodes 100000,1000000 --mode session``
    sans-I/O: holder SyncSession splits its full state, every part goes through the real wire
    path (JS JSON text, zlib, JSON.parse) and a fresh receiver's SyncSession + Graph merge.
    Prints parts, sizes (max payload vs the 1 636 900-byte limit) and per-step times.

``python bench/catchup_bench.py --nodes 100000 --mode network``
    two gdbnb nodes, embedded relay, loopback aiortc: holder start -> joiner holds N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gdbnb.core.graph import Graph  # noqa: E402
from gdbnb.wire.jsjson import encode_utf8, js_dumps, js_loads  # noqa: E402
from gdbnb.wire.sync import MAX_MESSAGE_BYTES, FullStateTransfer, MergeFullState, SyncSession  # noqa: E402


def make_graph(n: int, seed: int = 1) -> Graph:
    g = Graph()
    rnd = random.Random(seed)
    words = [f"w{i}" for i in range(20)]
    for i in range(n):
        g.put({"type": "item", "i": i, "name": f"item-{i}", "tags": rnd.sample(words, 3), "score": rnd.random()})
    ids = list(g.nodes)
    for i in range(1, n // 10):
        g.link(ids[i], ids[i - 1])
    return g


def session_mode(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    g = make_graph(n)
    t_build = time.perf_counter() - t0
    holder = SyncSession(g)
    r = Graph()
    recv = SyncSession(r)
    recv.peer_joined("H", 0.0)
    (transfer,) = holder.receive("R", [{"type": "sync", "timestamp": None}], 0.0)
    assert isinstance(transfer, FullStateTransfer)
    split = encode = decode = merge = 0.0
    max_payload = total_payload = parts = 0
    it = iter(transfer)
    while True:
        t = time.perf_counter()
        try:
            s = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        raw = encode_utf8(js_dumps(s.message))
        z = zlib.compress(raw)
        payload = min(len(raw), len(z))
        t2 = time.perf_counter()
        value = js_loads(zlib.decompress(z))
        t3 = time.perf_counter()
        for a in recv.receive("H", value, 1.0):
            assert isinstance(a, MergeFullState)
            res = r.merge_full_state(a.graph_data, a.removals, a.timestamp)
            assert recv.full_state_merged(a, res, 1.0) == []
        t4 = time.perf_counter()
        split += t1 - t
        encode += t2 - t1
        decode += t3 - t2
        merge += t4 - t3
        parts += 1
        max_payload = max(max_payload, payload)
        total_payload += payload
    holder.transfer_done(transfer, 1.0)
    assert len(r.nodes) == n and r.global_ts == g.global_ts
    return {"nodes": n, "parts": parts, "max_payload": max_payload, "limit": MAX_MESSAGE_BYTES,
            "wire_bytes_per_node": round(total_payload / n, 1), "build_s": round(t_build, 2),
            "split_s": round(split, 2), "encode_zlib_s": round(encode, 2), "inflate_parse_s": round(decode, 2),
            "merge_s": round(merge, 2), "transfer_total_s": round(split + encode + decode + merge, 2)}


async def network_mode(n: int) -> dict[str, float]:
    import gdbnb
    from gdbnb.database import ChangeBatch
    from gdbnb.net.relay_server import RelayServer

    with tempfile.TemporaryDirectory() as tmp:
        async with RelayServer("127.0.0.1", 0) as relay:
            opts = dict(rtc=True, relay_urls=[relay.url], loopback=True, room_options={"announce_interval": 0.5})
            a = await gdbnb.open("bench", path=Path(tmp) / "a.sqlite", **opts)
            g = make_graph(n)
            a.graph.nodes.update(g.nodes)  # bulk load, then one commit
            for nid in g.nodes:
                a.graph._dirty[nid] = None
            a._record(ChangeBatch([], "bulk-load"))
            await a.flush()
            done = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            b = await gdbnb.open("bench", path=Path(tmp) / "b.sqlite", **opts)
            marks: dict[str, float] = {}

            def on_join(p: object) -> None:
                marks.setdefault("connected", time.perf_counter() - t0)

            def on_change(_: object) -> None:
                if len(b.graph.nodes) >= n and not done.done():
                    done.set_result(time.perf_counter() - t0)

            b.events.on("peer:join", on_join)
            b.events.on("change", on_change)
            held = await asyncio.wait_for(done, 1800)
            await a.close()
            await b.close()
            return {"nodes": n, "start_to_connected_s": round(marks.get("connected", 0), 2),
                    "start_to_holds_n_s": round(held, 2),
                    "connected_to_holds_n_s": round(held - marks.get("connected", 0), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", default="100000,1000000")
    ap.add_argument("--mode", choices=["session", "network"], default="session")
    args = ap.parse_args()
    for n in (int(x) for x in args.nodes.split(",")):
        res = session_mode(n) if args.mode == "session" else asyncio.run(network_mode(n))
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
