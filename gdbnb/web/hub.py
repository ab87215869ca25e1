"""Server-Sent Events fan-out: one subscription to a Database's bus, many HTTP clients.

Each bus event is turned into zero or more :class:`SseEvent` once (serialised once, whatever
the number of clients), numbered, kept in a bounded replay buffer (for ``Last-Event-ID``) and
put on every client's bounded queue. A client whose queue is full is dropped (its stream is
closed; the browser reconnects and resumes from the buffer): a slow reader never slows the
node, and memory per client is bounded.

Ids are ``<epoch>-<seq>``: the epoch changes with every hub, so an id from a previous run (or
one older than the buffer) is detected and answered with a ``reset`` event instead of a silent
gap.

Thread-safety: the hub lives on the web server's loop. A Database on another loop (the
blocking facade's background thread) emits on its own thread; those events hop to the hub's
loop with ``call_soon_threadsafe`` before touching any queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

__all__ = ["SseEvent", "EventHub", "Subscription", "BULK_THRESHOLD", "event_payloads"]

log = logging.getLogger("gdbnb.web.sse")

#: a change batch larger than this is announced as one ``nodes:bulk`` event, not per node
BULK_THRESHOLD = 200

_PEER_EVENTS = ("peer:join", "peer:leave", "peer:seen", "peer:lost")
_PASS_THROUGH = ("sync:served", "sync:applied", "sync:failed", "relay:up", "relay:down")


@dataclass(frozen=True, slots=True)
class SseEvent:
    id: str
    event: str
    data: str  # JSON text (one line)

    def encode(self) -> bytes:
        return f"id: {self.id}\nevent: {self.event}\ndata: {self.data}\n\n".encode()

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event": self.event, "data": json.loads(self.data)}


def _jsonable(x: Any) -> Any:
    """Best effort for payloads of other layers (dataclasses, sets, objects with as_dict)."""
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in x]
    for attr in ("as_dict", "to_dict", "_asdict"):
        fn = getattr(x, attr, None)
        if callable(fn):
            try:
                return _jsonable(fn())
            except Exception:
                break
    if hasattr(x, "__dataclass_fields__"):
        return {k: _jsonable(getattr(x, k)) for k in x.__dataclass_fields__}
    return str(x)


def event_payloads(name: str, payload: Any, room: str) -> list[tuple[str, dict[str, Any]]]:
    """Map one bus event to the SSE events it produces: ``[(event_name, data), ...]``."""
    if name == "change":
        changes = getattr(payload, "changes", None) or []
        origin = getattr(payload, "origin", "local")
        kind = getattr(payload, "kind", "write")
        if kind == "clear" or len(changes) > BULK_THRESHOLD:
            counts: dict[str, int] = {}
            for c in changes:
                counts[c.action] = counts.get(c.action, 0) + 1
            return [("nodes:bulk", {"room": room, "origin": origin, "kind": kind, "counts": counts})]
        out = []
        for c in changes:
            node = c.node.to_dict() if c.node is not None else None
            out.append((f"node:{c.action}", {"room": room, "id": c.id, "node": node, "origin": origin, "kind": kind}))
        return out
    if name in _PEER_EVENTS or name in _PASS_THROUGH:
        data = _jsonable(payload) if isinstance(payload, dict) else {"value": _jsonable(payload)}
        data.setdefault("room", room)
        return [(name, data)]
    return []


class Subscription:
    """One SSE client: a bounded queue fed by the hub. ``await get()`` returns None once closed."""

    def __init__(self, hub: "EventHub", maxsize: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[SseEvent | None] = asyncio.Queue(maxsize + 1)  # +1: room for the close marker
        self._maxsize = maxsize
        #: replayed events (Last-Event-ID), served before the live queue; bounded by the hub's buffer
        self._backlog: deque[SseEvent] = deque()
        self.closed = False
        self.dropped = False
        self.on_drop: Callable[[], None] | None = None

    def _offer(self, ev: SseEvent) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._maxsize:
            self.dropped = True
            log.info("SSE client too slow (%d events queued): dropped", self._maxsize)
            self.close()
            if self.on_drop is not None:
                try:
                    self.on_drop()
                except Exception:
                    log.debug("on_drop failed", exc_info=True)
            return
        self._queue.put_nowait(ev)

    async def get(self) -> SseEvent | None:
        if self._backlog and not self.closed:
            return self._backlog.popleft()
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def get_nowait(self) -> SseEvent | None:
        """The next queued event, or None when the queue is empty (or closed)."""
        if self._backlog and not self.closed:
            return self._backlog.popleft()
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        """Unsubscribe (idempotent); a pending ``get`` wakes up with None."""
        if self.closed:
            return
        self.closed = True
        self._hub._subs.discard(self)
        self._queue.put_nowait(None)


class EventHub:
    """Bus events of one Database as numbered SSE events, with a replay buffer."""

    def __init__(self, db: Any, *, buffer_size: int = 1000, client_queue: int = 1000) -> None:
        self.db = db
        self.room: str = db.room
        self.epoch = secrets.token_hex(4)
        self.buffer: deque[SseEvent] = deque(maxlen=buffer_size)
        self.client_queue = client_queue
        self._seq = 0
        self._subs: set[Subscription] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self.counters = {"sync_served": 0, "sync_applied": 0, "events": 0, "dropped_clients": 0}

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Subscribe to the database's bus; call on the loop that serves HTTP."""
        if self._unsubscribe is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._unsubscribe = self.db.events.on_any(self._on_bus)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for sub in list(self._subs):
            sub.close()

    @property
    def clients(self) -> int:
        return len(self._subs)

    # -------------------------------------------------------------- input

    def _on_bus(self, name: str, payload: Any) -> None:
        if name == "sync:served":
            self.counters["sync_served"] += 1
        elif name == "sync:applied":
            self.counters["sync_applied"] += 1
        items = event_payloads(name, payload, self.room)
        if not items:
            return
        if self._thread is not None and threading.get_ident() != self._thread and self._loop is not None:
            self._loop.call_soon_threadsafe(self._publish_all, items)
        else:
            self._publish_all(items)

    def publish(self, event: str, data: dict[str, Any]) -> SseEvent:
        """Number, buffer and fan out one event (hub loop only)."""
        self._seq += 1
        ev = SseEvent(f"{self.epoch}-{self._seq}", event, json.dumps(data, separators=(",", ":"), default=str))
        self.buffer.append(ev)
        self.counters["events"] += 1
        for sub in list(self._subs):
            sub._offer(ev)
            if sub.dropped:
                self.counters["dropped_clients"] += 1
        return ev

    def _publish_all(self, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        for event, data in items:
            self.publish(event, data)

    # -------------------------------------------------------------- output

    def subscribe(self, last_event_id: str | None = None) -> Subscription:
        """A new client; with ``last_event_id`` the buffered events after it are queued first.

        An id the buffer cannot resume from (older epoch, evicted, malformed) queues a
        ``reset`` event: the client should reload its state.
        """
        sub = Subscription(self, self.client_queue)
        backlog, ok = self.since(last_event_id) if last_event_id else ([], True)
        if not ok:
            # carries the current id: after reloading its state the client resumes from here
            reset = SseEvent(self.last_event_id, "reset", json.dumps({"room": self.room, "reason": "cannot resume"}))
            backlog = [reset]
        sub._backlog.extend(backlog)
        self._subs.add(sub)
        return sub

    def since(self, last_event_id: str) -> tuple[list[SseEvent], bool]:
        """Buffered events after ``last_event_id``, and whether the resume is gapless."""
        epoch, _, seq_text = last_event_id.strip().rpartition("-")
        try:
            seq = int(seq_text)
        except ValueError:
            return [], False
        if epoch != self.epoch or seq > self._seq:
            return [], False
        events = [ev for ev in self.buffer if _seq_of(ev) > seq]
        first = _seq_of(self.buffer[0]) if self.buffer else self._seq + 1
        gapless = seq >= first - 1
        return events, gapless

    def recent(self, limit: int = 50, events: Iterable[str] | None = None) -> list[SseEvent]:
        wanted = set(events) if events is not None else None
        out = [ev for ev in self.buffer if wanted is None or ev.event in wanted]
        return out[-limit:] if limit > 0 else []

    @property
    def last_event_id(self) -> str:
        return f"{self.epoch}-{self._seq}"


def _seq_of(ev: SseEvent) -> int:
    return int(ev.id.rpartition("-")[2])
