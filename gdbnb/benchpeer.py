"""gdbnb as a candidate peer of the side-by-side bench (``../shared/bench``) and interop harness.

``python -m gdbnb.benchpeer --room ROOM --relay ws://HOST:PORT --db PATH``

Speaks the JSON-lines peer protocol of ``shared/interop/README.md`` plus the bench additions
(``batch``, ``summary``, ``phase`` events): one command per stdin line, exactly one reply per
command in command order, events at any time. Logs go to stderr; stdout carries only protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from typing import Any, Callable

from .database import Database
from .errors import GdbnbError

__all__ = ["BenchPeer", "main"]

log = logging.getLogger("gdbnb.benchpeer")

_MAP_KEYS = ("query", "field", "order", "$limit", "$after", "$before")
_WRITES = ("put", "link", "remove")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CommandError(Exception):
    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


def _map_kwargs(c: dict[str, Any]) -> dict[str, Any]:
    o = dict(c.get("options") or {})
    for k in _MAP_KEYS:
        if k in c:
            o[k] = c[k]
    return {
        "query": o.get("query"),
        "field": o.get("field"),
        "order": o.get("order") or "asc",
        "limit": o.get("$limit"),
        "after": o.get("$after"),
        "before": o.get("$before"),
    }


def _subset(want: Any, have: Any) -> bool:
    if not isinstance(want, (dict, list)):
        return want == have
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(_subset(w, h) for w, h in zip(want, have))
    return isinstance(have, dict) and all(k in have and _subset(v, have[k]) for k, v in want.items())


class BenchPeer:
    """Runs protocol commands against one Database; ``emit`` writes one JSON line."""

    def __init__(self, db: Database, emit: Callable[[dict[str, Any]], None]) -> None:
        self.db = db
        self.emit = emit
        self.subs: dict[str, Callable[[], None]] = {}
        self._sub_seq = 0
        self.sync_peers: set[str] = set()
        self.room_peers: dict[str, str | None] = {}
        self._changed = asyncio.Event()
        db.events.on_any(self._on_event)

    def event(self, event_name: str, /, **fields: Any) -> None:
        # positional-only: "phase" events carry a ``name`` field of their own
        self.emit({"type": "event", "event": event_name, "ts": _now_ms(), **fields})

    def _on_event(self, name: str, payload: Any) -> None:
        if name == "change":
            self._changed.set()
            return
        p = payload if isinstance(payload, dict) else {}
        presence = str(p.get("room", "")).startswith("app-sync-")
        peer = p.get("peer")
        if name == "peer:join":
            if presence:
                self.room_peers[peer] = p.get("type")
                self.event("peer:join", peer=peer, peer_type=p.get("type"), channel="room")
            else:
                self.sync_peers.add(peer)
                self.event("sync:join", peer=peer, channel="sync")
            self._changed.set()
        elif name == "peer:leave":
            if presence:
                self.room_peers.pop(peer, None)
                self.event("peer:leave", peer=peer, channel="room")
            else:
                self.sync_peers.discard(peer)
                self.event("sync:leave", peer=peer, channel="sync")
        elif name == "sync:served":
            kind = p.get("kind")
            if kind == "full":
                self.event("phase", name="full_sent", nodes=p.get("nodes"), parts=p.get("parts"), bytes=p.get("bytes"),
                           peer=p.get("peer"))
            elif kind == "delta":
                self.event("phase", name="delta_sent", ops=p.get("ops"))
        elif name == "sync:applied":
            kind = p.get("kind")
            if kind == "full":
                self.event("phase", name="full_merged", nodes=p.get("accepted"), peer=p.get("peer"))
            elif kind == "delta":
                self.event("phase", name="delta_received", ops=p.get("accepted"))
        elif name == "sync:failed":
            self.event("phase", name="send_failed", message=str(p.get("error")))

    async def _until(self, check: Callable[[], tuple[bool, Any]], timeout: float) -> Any:
        """Re-check after every change (event-driven, no polling); raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            done, detail = check()
            if done:
                return detail
            left = deadline - time.monotonic()
            if left <= 0:
                raise CommandError("timeout", detail)
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.25))
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ commands

    async def run(self, c: Any) -> dict[str, Any]:
        if not isinstance(c, dict):
            return {"type": "reply", "req": None, "op": None, "ok": False, "error": "command must be a JSON object"}
        req, op = c.get("req"), c.get("op")
        fn = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if fn is None:
            return {"type": "reply", "req": req, "op": op, "ok": False, "error": f"unknown op {json.dumps(op)}"}
        try:
            result = await fn(c)
        except CommandError as e:
            reply = {"type": "reply", "req": req, "op": op, "ok": False, "error": str(e)}
            if e.detail is not None:
                reply["result"] = e.detail
            return reply
        except (GdbnbError, ValueError, TypeError, KeyError) as e:
            return {"type": "reply", "req": req, "op": op, "ok": False, "error": str(e)}
        return {"type": "reply", "req": req, "op": op, "ok": True, "result": result}

    async def op_info(self, c: dict[str, Any]) -> Any:
        net = self.db.network
        return {
            "engine": "gdbnb",
            "impl": "candidate",
            "room": self.db.room,
            "db": str(self.db.store_path) if self.db.store_path else None,
            "pid": os.getpid(),
            "peer_id": getattr(net, "peer_id", None),
            "runtime": f"python {sys.version.split()[0]}",
            "subscriptions": list(self.subs),
            "relay_url": getattr(net, "relay_url", None),
        }

    async def op_put(self, c: dict[str, Any]) -> Any:
        if "value" not in c:
            raise CommandError('put needs "value"')
        return await self.db.put(c["value"], c.get("id"))

    async def op_get(self, c: dict[str, Any]) -> Any:
        if "id" not in c:
            raise CommandError('get needs "id"')
        return await self.db.get(str(c["id"]))

    async def op_link(self, c: dict[str, Any]) -> Any:
        s, t = c.get("source", c.get("from")), c.get("target", c.get("to"))
        if s is None or t is None:
            raise CommandError('link needs "source" and "target"')
        return {"applied": await self.db.link(str(s), str(t))}

    async def op_remove(self, c: dict[str, Any]) -> Any:
        if "id" not in c:
            raise CommandError('remove needs "id"')
        return {"applied": await self.db.remove(str(c["id"]))}

    async def op_clear(self, c: dict[str, Any]) -> Any:
        await self.db.clear()
        return None

    async def op_map(self, c: dict[str, Any]) -> Any:
        kw = _map_kwargs(c)
        if c.get("summary") and not c.get("subscribe"):
            # only a count and ids are returned: run the engine's query without copying records
            t0 = time.perf_counter()
            ids = self._ids(kw)
            return {"count": len(ids), "ids": ids[:10], "elapsed_ms": (time.perf_counter() - t0) * 1000}
        if not c.get("subscribe"):
            return {"results": (await self.db.map(**kw))["results"], "sub": None}
        self._sub_seq += 1
        sub = str(c.get("sub") or f"s{self._sub_seq}")
        if sub in self.subs:
            raise CommandError(f"subscription {sub} exists")

        def cb(ev: dict[str, Any]) -> None:
            self.event("map", sub=sub, action=ev["action"], id=ev["id"], value=ev.get("value"),
                       edges=ev.get("edges", []), timestamp=ev.get("timestamp"))

        res = await self.db.map(**kw, callback=cb)
        self.subs[sub] = res["unsubscribe"] or (lambda: None)
        return {"results": res["results"], "sub": sub}

    async def op_unmap(self, c: dict[str, Any]) -> Any:
        u = self.subs.pop(str(c.get("sub")), None)
        if u is None:
            raise CommandError(f"no subscription {c.get('sub')}")
        u()
        return None

    async def op_peers(self, c: dict[str, Any]) -> Any:
        return {"room": list(self.room_peers), "sync": list(self.sync_peers), "room_types": dict(self.room_peers)}

    def _ids(self, kw: dict[str, Any]) -> list[str]:
        from .core.query import run_map

        if not kw["query"] and kw["limit"] is None and kw["after"] is None and kw["before"] is None and kw["field"] is None:
            return list(self.db.graph.nodes)  # the fast path W3 polls: everything
        return [n.id for n in run_map(self.db.graph.nodes, kw["query"], field=kw["field"], order=kw["order"],
                                      limit=kw["limit"], after=kw["after"], before=kw["before"],
                                      lookup=self.db.graph.lookup_index)]

    async def op_wait_nodes(self, c: dict[str, Any]) -> Any:
        want = int(c.get("count", 1))
        kw = _map_kwargs(c)
        exact = bool(c.get("exact"))

        def check() -> tuple[bool, Any]:
            ids = self._ids(kw)
            n = len(ids)
            ok = n == want if exact else n >= want
            return ok, {"count": n, "ids": ids[:10] if c.get("summary") else ids} if ok else {"count": n}

        return await self._until(check, float(c.get("timeout", 10)))

    async def op_wait_node(self, c: dict[str, Any]) -> Any:
        if "id" not in c:
            raise CommandError('wait_node needs "id"')
        nid, present = str(c["id"]), c.get("present", True)

        def check() -> tuple[bool, Any]:
            n = self.db.graph.nodes.get(nid)
            rec = n.to_dict() if n is not None else None
            done = rec is not None if present else rec is None
            if done and present:
                if "value" in c and not _subset(c["value"], rec["value"]):
                    done = False
                if "edge" in c and c["edge"] not in rec["edges"]:
                    done = False
                if "no_edge" in c and c["no_edge"] in rec["edges"]:
                    done = False
            return done, {"node": rec} if not done else rec

        return await self._until(check, float(c.get("timeout", 10)))

    async def op_wait_peers(self, c: dict[str, Any]) -> Any:
        want = int(c.get("count", 1))
        which = c.get("channel", "sync")

        def check() -> tuple[bool, Any]:
            n = len(self.room_peers) if which == "room" else len(self.sync_peers)
            return n >= want, {"count": n}

        return await self._until(check, float(c.get("timeout", 15)))

    async def op_sleep(self, c: dict[str, Any]) -> Any:
        await asyncio.sleep(float(c.get("timeout", 0)))
        return None

    def _write_now(self, c: dict[str, Any]) -> Any:
        """A put/link/remove, acknowledged before this returns (gdbnb writes never wait)."""
        op = c.get("op")
        if op == "put":
            return self.db.put_nowait(c["value"], c.get("id"))
        if op == "link":
            return self.db.link_nowait(str(c["source"]), str(c["target"]))
        return self.db.remove_nowait(str(c["id"]))

    async def _one(self, c: dict[str, Any]) -> Any:
        if c.get("op") in _WRITES:
            return self._write_now(c)
        r = await self.run(c)
        if not r["ok"]:
            raise CommandError(r["error"])
        return r["result"]

    async def op_batch(self, c: dict[str, Any]) -> Any:
        cmds = c.get("cmds")
        if not isinstance(cmds, list):
            raise CommandError('batch needs "cmds" (an array of commands)')
        failed, first_error = 0, None
        t0 = time.perf_counter()
        if c.get("parallel") and all(isinstance(x, dict) and x.get("op") in _WRITES for x in cmds):
            # "start all, then await all": each write is acknowledged as it starts, so starting
            # them in order is the whole job (no task per write)
            outs = []
            for x in cmds:
                try:
                    outs.append(self._write_now(x))
                except Exception as e:  # noqa: BLE001 - reported per command, like the reference
                    outs.append(e)
        elif c.get("parallel"):
            outs = await asyncio.gather(*(self._one(x) for x in cmds), return_exceptions=True)
        else:
            outs = []
            for x in cmds:
                try:
                    outs.append(self._write_now(x) if isinstance(x, dict) and x.get("op") in _WRITES else await self._one(x))
                except Exception as e:  # noqa: BLE001 - reported per command, like the reference
                    outs.append(e)
        results = []
        for o in outs:
            if isinstance(o, BaseException):
                failed += 1
                first_error = first_error or str(o)
                results.append(None)
            else:
                results.append(o)
        out = {"count": len(cmds), "ok": len(cmds) - failed, "failed": failed, "first_error": first_error,
               "elapsed_ms": (time.perf_counter() - t0) * 1000}
        if c.get("results"):
            out["results"] = results
        return out


async def _start_network(db: Database, rtc: dict[str, Any]) -> None:
    try:
        await db.start_network(**rtc)
    except Exception:
        log.exception("the network could not start")


async def _amain(args: argparse.Namespace) -> int:
    out = sys.stdout

    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
        out.flush()

    rtc: dict[str, Any] = {}
    if args.relay or args.serve_relay:
        rtc.update(relay_urls=args.relay, presence=args.presence)
        if args.serve_relay:
            rtc["serve_relay"] = args.serve_relay
        if args.loopback:
            rtc["loopback"] = True
        if args.password:
            rtc["password"] = args.password
    options: dict[str, Any] = {}
    if args.oplog_size:
        options["oplog_size"] = args.oplog_size
    from . import open as gdb_open

    db = await gdb_open(args.room, path=args.db or False, **options)
    peer = BenchPeer(db, emit)
    network: asyncio.Task[None] | None = None
    if rtc and args.serve_relay:
        await db.start_network(**rtc)  # others connect to our relay: it must be up at "ready"
    elif rtc:
        # "ready" means the store is loaded and commands are accepted; the network comes up
        # meanwhile (aiortc itself is only imported when a first peer shows up)
        network = asyncio.create_task(_start_network(db, rtc))
    relay_url = getattr(db.network, "relay_url", None)
    peer.event("ready", engine="gdbnb", room=args.room, db=args.db, pid=os.getpid(), nodes=len(db.graph.nodes),
               relay_url=relay_url)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    code = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
            except ValueError as e:
                emit({"type": "reply", "req": None, "op": None, "ok": False, "error": f"bad JSON: {e}"})
                continue
            if isinstance(cmd, dict) and cmd.get("op") == "quit":
                emit({"type": "reply", "req": cmd.get("req"), "op": "quit", "ok": True, "result": None})
                break
            emit(await peer.run(cmd))
    finally:
        if network is not None and not network.done():
            await asyncio.wait([network], timeout=10)
        await db.close()
        peer.event("exit", code=code)
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gdbnb.benchpeer", description=__doc__.splitlines()[0])
    p.add_argument("--room", required=True)
    p.add_argument("--relay", action="append", default=[], help="relay URL (repeatable, or comma-separated)")
    p.add_argument("--db", help="SQLite store path (default: in memory)")
    p.add_argument("--password")
    p.add_argument("--serve-relay", metavar="HOST:PORT", help="run the embedded Nostr relay there (and signal through it)")
    p.add_argument("--oplog-size", type=int)
    p.add_argument("--loopback", action="store_true", help="offer loopback ICE candidates")
    p.add_argument("--no-presence", dest="presence", action="store_false")
    p.add_argument("--presence", dest="presence", action="store_true")
    p.add_argument("--lifetime", type=float, help="ignored (the harness kills by PID)")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(presence=False)
    args = p.parse_args(argv)
    args.relay = [u.strip() for r in args.relay for u in r.split(",") if u.strip()]
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_amain(args))


if __name__ == "__main__":
    raise SystemExit(main())
