"""The network node: one Database, one relay pool, the GenosDB rooms, the sync session.

``gdbnb.open(room, rtc=True, **options)`` creates ``SyncNode(db, **options)`` and awaits
``start()``; ``db.close()`` awaits ``stop()``. The node only moves things around:

* room callbacks -> ``peer:*`` events on ``db.events`` and the session;
* ``syncGraph`` messages -> ``SyncSession.receive`` -> ``db.apply_remote_ops`` /
  ``db.merge_full_state`` (the database's single apply path) and answers;
* local ``change`` events (``origin == "local"``) -> the session's debounced write batches;
* the session's timers (sync repeats, write debounce, deferred full states) -> one timer task.

Order: incoming messages are handled one at a time in arrival order (one inbound task); small
outgoing messages leave in order from one outbound task; full-state transfers run in their
own task, one after another, so a big transfer never delays live writes or answers.
No peer input can raise out of these tasks: every step is guarded and logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Sequence

from ..wire.nostr import DEFAULT_RELAY_URLS, KeyPair, data_room_id, new_peer_id, presence_room_id
from ..wire.sync import (
    ACTION,
    SYNC_REPEATS,
    ApplyOps,
    FullStateTransfer,
    MergeFullState,
    Send,
    SyncLimits,
    SyncSession,
)

__all__ = ["SyncNode", "parse_host_port"]

log = logging.getLogger("gdbnb.node")


def parse_host_port(spec: str | int | bool, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"``, ``"[::1]:PORT"``, a port number, or True (any free port)."""
    if spec is True:
        return default_host, 0
    if isinstance(spec, int) and not isinstance(spec, bool):
        return default_host, spec
    if not isinstance(spec, str):
        raise ValueError(f"serve_relay must be 'HOST:PORT', not {spec!r}")
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "", spec
    host = host.strip("[]") or default_host
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"serve_relay must be 'HOST:PORT', not {spec!r}") from None


def _is_too_large(exc: BaseException) -> bool:
    """The frame encoder refused a message over 100 chunks (``framing.MessageTooLarge``)."""
    return type(exc).__name__ == "MessageTooLarge" or "too large" in str(exc).lower()


class SyncNode:
    """A GenosDB peer for ``db``: signaling, the data room (and presence room), sync.

    Options: ``relay_urls`` (default: GenosDB's public relays), ``serve_relay="HOST:PORT"``
    (run the embedded Nostr relay and signal through it too), ``password`` (room password: SDP
    encryption), ``ice_servers``, ``loopback`` (offer 127.0.0.1 candidates: tests, one host),
    ``presence`` (also join ``app-sync-<db>``), ``peer_type`` (declared in offers/answers),
    ``limits`` / ``sync_repeats`` (protocol bounds and timers), ``room_options`` (extra
    keyword arguments for both ``Room`` objects: announce interval, watchdog timings...).
    """

    def __init__(
        self,
        db: Any,
        *,
        relay_urls: Sequence[str] | None = None,
        serve_relay: str | int | bool | None = None,
        password: str | None = None,
        ice_servers: Sequence[dict[str, Any]] | None = None,
        loopback: bool = False,
        presence: bool = False,
        peer_type: str | None = "superpeer",
        limits: SyncLimits = SyncLimits(),
        sync_repeats: Sequence[float] = SYNC_REPEATS,
        room_options: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.peer_id = new_peer_id()
        self.keypair = KeyPair.generate()
        self.relay_url: str | None = None
        self._relay_urls = list(relay_urls) if relay_urls is not None else None
        self._serve_relay = serve_relay
        self._password = password
        self._ice_servers = list(ice_servers or ())
        self._loopback = loopback
        self._presence = presence
        self._peer_type = peer_type
        self._room_options = dict(room_options or {})
        self.session = SyncSession(db.graph, limits=limits, repeats=sync_repeats)
        self.room_id = data_room_id(db.room)
        self.presence_room_id = presence_room_id(db.room)
        self.relay_server: Any = None
        self.pool: Any = None
        self.room: Any = None
        self.presence_room: Any = None
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[Send] = asyncio.Queue()
        self._transfers: asyncio.Queue[FullStateTransfer] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: Any = None
        self._full_in: dict[str, list[int]] = {}  # peer -> [accepted, rejected, parts] of a transfer
        self._started = False
        self._stopped = False
        self.stats: dict[str, int] = {"full_served": 0, "delta_served": 0, "writes_sent": 0,
                                      "batches_applied": 0, "full_merged": 0, "send_failures": 0}

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the relay (if any), the pool and the rooms; returns at once (peers come later)."""
        if self._started:
            return
        self._started = True
        from .relay_pool import RelayPool
        from .room import Room

        if self._serve_relay not in (None, False):
            from .relay_server import RelayServer

            host, port = parse_host_port(self._serve_relay)
            self.relay_server = RelayServer(host, port)
            await self.relay_server.start()
            self.relay_url = self.relay_server.url
        urls = list(DEFAULT_RELAY_URLS) if self._relay_urls is None else list(self._relay_urls)
        if self.relay_url is not None:
            local = self.relay_url.replace("ws://0.0.0.0:", "ws://127.0.0.1:").replace("ws://[::]:", "ws://[::1]:")
            urls = [local] + [u for u in urls if u.rstrip("/") != local]  # first: never cut by the 10-relay cap
        self.pool = RelayPool(urls, self._route, on_status=self._on_relay_status)
        # No offer pool: the reference pre-gathers 5 offers because its stack waits up to 5 s
        # for ICE; aiortc builds a complete offer in milliseconds, and a pool would load aiortc
        # (~0.4 s) at start even for a node that stays alone.
        options = {"offer_pool_size": 0, **self._room_options}
        common = dict(pool=self.pool, peer_id=self.peer_id, keypair=self.keypair, password=self._password,
                      peer_type=self._peer_type, ice_servers=self._ice_servers, loopback=self._loopback,
                      **options)
        self.room = Room(
            self.room_id,
            actions=(ACTION,),
            on_peer_join=lambda p, t: self._on_join(self.room_id, p, t),
            on_peer_leave=lambda p, r: self._on_leave(self.room_id, p, r),
            on_peer_seen=lambda p, t: self._emit("peer:seen", p, t, self.room_id),
            on_peer_lost=lambda p: self._emit("peer:lost", p, None, self.room_id),
            on_message=self._on_message,
            **common,
        )
        if self._presence:
            self.presence_room = Room(
                self.presence_room_id,
                actions=(),
                on_peer_join=lambda p, t: self._on_join(self.presence_room_id, p, t),
                on_peer_leave=lambda p, r: self._on_leave(self.presence_room_id, p, r),
                on_peer_seen=lambda p, t: self._emit("peer:seen", p, t, self.presence_room_id),
                on_peer_lost=lambda p: self._emit("peer:lost", p, None, self.presence_room_id),
                **common,
            )
        self._unsubscribe = self.db.events.on("change", self._on_change)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._guard(self._inbound_loop), name="gdbnb sync inbound"),
            loop.create_task(self._guard(self._outbound_loop), name="gdbnb sync outbound"),
            loop.create_task(self._guard(self._transfer_loop), name="gdbnb full-state transfers"),
            loop.create_task(self._guard(self._timer_loop), name="gdbnb sync timers"),
        ]
        await self.pool.start()
        await self.room.start()
        if self.presence_room is not None:
            await self.presence_room.start()
        log.info("joined %s as %s (%d relay%s%s)", self.room_id, self.peer_id, len(self.pool.urls),
                 "" if len(self.pool.urls) == 1 else "s",
                 f", serving the relay at {self.relay_url}" if self.relay_url else "")

    async def stop(self, timeout: float = 5.0) -> None:
        """Flush queued writes, leave the rooms (``@_leave`` + bye), close everything. Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for s in self.session.flush_writes():
            self._outbox.put_nowait(s)
        try:
            await asyncio.wait_for(self._outbox.join(), timeout)
        except asyncio.TimeoutError:
            log.warning("leaving with %d messages unsent", self._outbox.qsize())
        for room in (self.presence_room, self.room):
            if room is not None:
                try:
                    await room.stop()
                except Exception:
                    log.exception("error while leaving %s", room.room_id)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.pool is not None:
            await self.pool.close()
        if self.relay_server is not None:
            await self.relay_server.stop()
        log.info("left %s", self.room_id)

    # ------------------------------------------------------------------ introspection

    def peers(self) -> list[dict[str, Any]]:
        """Peers with an open data channel in the data room: ``{peer, type, connected_at, last_seen}``."""
        if self.room is None:
            return []
        return [{"peer": p, "type": i.peer_type, "connected_at": i.connected_at, "last_seen": i.last_seen}
                for p, i in self.room.connected_peers().items()]

    def status(self) -> dict[str, Any]:
        """Everything the status page shows about the network, JSON-ready."""
        pool = self.pool
        relays = [{"url": u, "open": pool.is_open(i)} for i, u in enumerate(pool.urls)] if pool is not None else []
        out: dict[str, Any] = {
            "peer_id": self.peer_id,
            "peer_type": self._peer_type,
            "room": self.room_id,
            "presence_room": self.presence_room_id if self._presence else None,
            "relay_url": self.relay_url,
            "relays": relays,
            "peers": self.peers(),
            "password": self._password is not None,
            "dropped_messages": self.session.dropped,
            "stats": dict(self.stats),
        }
        if self.presence_room is not None:
            out["presence_peers"] = [{"peer": p, "type": i.peer_type} for p, i in self.presence_room.connected_peers().items()]
        return out

    # ------------------------------------------------------------------ callbacks (never raise)

    def _route(self, relay_index: int, sub_id: str, event: dict[str, Any]) -> None:
        for room in (self.room, self.presence_room):
            if room is not None and room.handle_relay_event(relay_index, sub_id, event):
                return

    def _on_relay_status(self, index: int, up: bool) -> None:
        url = self.pool.urls[index] if self.pool is not None else None
        log.debug("relay %s %s", url, "up" if up else "down")  # the CLI logs the event for operators
        self.db.events.emit("relay:up" if up else "relay:down", {"url": url, "index": index})

    def _emit(self, name: str, peer: str, peer_type: str | None, room: str, **extra: Any) -> None:
        self.db.events.emit(name, {"peer": peer, "type": peer_type, "room": room, **extra})

    def _on_join(self, room: str, peer: str, peer_type: str | None) -> None:
        log.info("peer %s (%s) connected in %s", peer, peer_type or "browser", room)
        self._emit("peer:join", peer, peer_type, room)
        if room == self.room_id and not self._stopped:
            for a in self.session.peer_joined(peer, time.monotonic()):
                self._dispatch(a)

    def _on_leave(self, room: str, peer: str, reason: str) -> None:
        rm = self.room if room == self.room_id else self.presence_room
        peer_type = rm.peer_type_of(peer) if rm is not None else None
        log.info("peer %s left %s (%s)", peer, room, reason)
        self._emit("peer:leave", peer, peer_type, room, reason=reason)
        if room == self.room_id:
            self.session.peer_left(peer)
            self._full_in.pop(peer, None)

    def _on_message(self, peer: str, message: Any) -> None:
        value = getattr(message, "value", message)
        self._inbox.put_nowait((peer, value))

    def _on_change(self, batch: Any) -> None:
        if batch.origin == "local" and batch.ops and not self._stopped:
            if self.room is None or not self.room.has_peers:
                # nobody to send to: a peer that connects later gets these writes from the
                # join handshake (our oplog window or full state), so serializing them is waste
                return
            if self.session.local_ops(batch.ops, time.monotonic()):
                self._wake.set()  # only the first write of a batch sets a new, earlier deadline

    # ------------------------------------------------------------------ actions

    def _dispatch(self, action: Any) -> None:
        if isinstance(action, Send):
            self._outbox.put_nowait(action)
        elif isinstance(action, FullStateTransfer):
            self._transfers.put_nowait(action)
        else:  # apply actions only come from the inbound task, which awaits them itself
            log.error("unexpected action %r outside the inbound task", type(action).__name__)
        self._wake.set()

    async def _guard(self, fn: Any) -> None:
        """Run a loop forever; a bug in one step is logged and the loop goes on."""
        while True:
            try:
                await fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync task failed; restarting it")
                await asyncio.sleep(0.1)

    async def _inbound_loop(self) -> None:
        while True:
            peer, value = await self._inbox.get()
            try:
                for a in self.session.receive(peer, value, time.monotonic()):
                    await self._apply(a)
            except Exception:
                log.exception("error while applying a message from %s", peer)

    async def _apply(self, a: Any) -> None:
        db = self.db
        if isinstance(a, ApplyOps):
            if not a.ops:
                return
            res = await db.apply_remote_ops(a.ops, a.peer)
            self.stats["batches_applied"] += 1
            self._applied(a.peer, a.kind, len(res.accepted), res.rejected)
        elif isinstance(a, MergeFullState):
            res = await db.merge_full_state(a.graph_data, a.removals, a.timestamp, a.peer)
            if a.part is None:
                self.stats["full_merged"] += 1
                self._applied(a.peer, "full", len(res.accepted), res.rejected, nodes=len(a.graph_data))
            else:
                acc = self._full_in.setdefault(a.peer, [0, 0, 0, 0])
                acc[0] += len(res.accepted)
                acc[1] += res.rejected
                acc[2] += 1
                acc[3] += len(a.graph_data)
                if a.part[2]:
                    self._full_in.pop(a.peer, None)
                    self.stats["full_merged"] += 1
                    self._applied(a.peer, "full", acc[0], acc[1], parts=acc[2], nodes=acc[3])
            for b in self.session.full_state_merged(a, res, time.monotonic()):
                self._dispatch(b)
        else:
            self._dispatch(a)

    def _applied(self, peer: str, kind: str, accepted: int, rejected: int, **extra: Any) -> None:
        if kind != "write" or rejected:
            log.info("sync from %s applied: %s, %d accepted, %d rejected", peer, kind, accepted, rejected)
        self.db.events.emit("sync:applied", {"peer": peer, "kind": kind, "accepted": accepted,
                                              "rejected": rejected, **extra})

    async def _send(self, s: Send) -> bool:
        try:
            await self.room.send(ACTION, s.message, s.targets)
            return True
        except Exception as e:
            self.stats["send_failures"] += 1
            if not _is_too_large(e):
                log.warning("sending a %s message failed: %s", s.kind, e)
            self.db.events.emit("sync:failed", {"kind": s.kind, "error": str(e), "targets": s.targets})
            raise

    async def _outbound_loop(self) -> None:
        while True:
            s = await self._outbox.get()
            try:
                await self._send(s)
                if s.kind == "delta":
                    self.stats["delta_served"] += 1
                    peer = s.targets[0] if s.targets else None
                    log.info("sync served to %s: delta, %d ops", peer, s.ops)
                    self.db.events.emit("sync:served", {"peer": peer, "kind": "delta", "ops": s.ops, "bytes": s.size})
                elif s.kind == "write":
                    self.stats["writes_sent"] += s.ops
            except Exception:
                pass
            finally:
                self._outbox.task_done()

    async def _transfer_loop(self) -> None:
        while True:
            t = await self._transfers.get()
            ok = True
            try:
                it = iter(t)
                while True:
                    try:
                        s = next(it)
                    except StopIteration:
                        break
                    await asyncio.sleep(0)  # let live traffic through between parts
                    try:
                        await self._send(s)
                    except Exception as e:
                        if _is_too_large(e):
                            log.info("full-state part of %d nodes too large for the encoder; splitting it", s.nodes)
                            t.retry_smaller()
                            continue
                        ok = False
                        break
            except Exception:
                ok = False
                log.exception("full-state transfer to %s failed", t.targets)
            finally:
                self.session.transfer_done(t, time.monotonic())
                self._wake.set()
            if ok:
                self.stats["full_served"] += 1
                peer = t.targets[0] if t.targets else None
                log.info("sync served to %s: full state, %d nodes in %d message%s (%s)", peer, t.nodes_sent,
                         t.parts_sent, "" if t.parts_sent == 1 else "s", t.reason)
                self.db.events.emit("sync:served", {"peer": peer, "kind": "full", "nodes": t.nodes_sent,
                                                     "bytes": t.bytes_sent, "parts": t.parts_sent,
                                                     "reason": t.reason, "skipped": t.skipped})

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()  # before reading the deadline: a wake-up after this is kept
            deadline = self.session.next_deadline()
            now = time.monotonic()
            if deadline is None or deadline > now:
                try:
                    await asyncio.wait_for(self._wake.wait(), None if deadline is None else deadline - now)
                except asyncio.TimeoutError:
                    pass
                continue
            for a in self.session.poll(now):
                self._dispatch(a)
