"""The GenosDB data API in Python, async at the core.

Every write, local or remote, goes through ``Database._record``: the graph decides
(core/graph.py), the journal of what changed is acknowledged in the store's journal log, then ONE
``change`` event is emitted on ``db.events``. Realtime ``map``/``get`` callbacks, the SSE stream,
widgets and the network's outbox all subscribe to that event; nothing else is a source of truth.

Acknowledged writes: ``await db.put(...)`` returns once its journal is in the journal log, which
survives ``kill -9`` (see README, "Durability"). Logged writes are checkpointed into SQLite in
batches (one transaction for every write of the last ~50 ms).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from .core.graph import ApplyResult, Change, Graph, Journal
from .core.hlc import HybridClock
from .core.oplog import DEFAULT_OPLOG_SIZE
from .store.journal_log import merge_journals
from .errors import ClosedError, ValidationError
from .events import EventBus

__all__ = ["Database", "ChangeBatch", "open"]

log = logging.getLogger("gdbnb.db")

#: journals with more node rows than this are committed off the event loop
_INLINE_COMMIT_ROWS = 2000
#: how long acknowledged writes may wait in the journal log before a checkpoint into SQLite
_CHECKPOINT_DELAY = 0.05

_MAP_OPTION_KEYS = {"query", "field", "order", "$limit", "$after", "$before", "realtime", "limit", "after", "before"}

Middleware = Callable[[list[dict[str, Any]]], "list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]"]


@dataclass(slots=True)
class ChangeBatch:
    """Payload of the ``change`` event: what one apply changed, and where it came from."""

    changes: list[Change]
    origin: str  # "local", or the id of the peer the operations came from
    #: wire ops to broadcast (local writes only)
    ops: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "write"  # "write" | "ops" | "full_state" | "clear"


class Database:
    """A GenosDB graph: ``put/get/link/remove/map/clear/use`` plus persistence and sync.

    Create it with ``await gdbnb.open(room, ...)``.
    """

    def __init__(
        self,
        room: str,
        *,
        path: str | Path | None | bool = None,
        oplog_size: int = DEFAULT_OPLOG_SIZE,
        durability: str = "process",
        strip_edges_on_remote_remove: bool = True,
        rtc: bool = False,
        **rtc_options: Any,
    ) -> None:
        if not isinstance(room, str) or not room:
            raise ValidationError(f"room must be a non-empty string, not {room!r}")
        self.room = room
        self.events = EventBus()
        self._path = path
        self._durability = durability
        self._oplog_size = oplog_size
        self._strip = strip_edges_on_remote_remove
        self._rtc = rtc
        self._rtc_options = rtc_options
        self.graph = Graph(oplog_size, HybridClock(), strip_edges_on_remote_remove)
        self.store: Any = None
        self.network: Any = None
        self._middleware: list[Middleware] = []
        self._unsaved: list[Journal] = []  # logged, not yet checkpointed into SQLite
        self._unsaved_seq = 0
        self._checkpoint_handle: asyncio.TimerHandle | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._opened = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def store_path(self) -> Path | None:
        return Path(self.store.path) if self.store is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this database lives on (set once opened)."""
        return self._loop

    async def _open(self) -> "Database":
        self._loop = asyncio.get_running_loop()
        if self._path is not False and self._path != ":memory:":
            from .store.sqlite import SQLiteStore, default_store_path

            path = Path(self._path) if self._path else default_store_path(self.room)
            self.store = SQLiteStore(path, self.room, durability=self._durability)
            snap = await asyncio.to_thread(self.store.load)
            nodes = snap.nodes.values() if isinstance(snap.nodes, dict) else snap.nodes
            gc_was_enabled = gc.isenabled()
            gc.disable()  # a million small acyclic containers: collections would find nothing
            try:
                self.graph = Graph.from_snapshot(
                    nodes,
                    snap.oplog,
                    snap.global_ts,
                    snap.clock,
                    oplog_size=self._oplog_size,
                    strip_edges_on_remote_remove=self._strip,
                )
            finally:
                if gc_was_enabled:
                    gc.enable()
            # keep the loaded graph out of every later GC scan (a full scan of 1M nodes takes seconds)
            gc.freeze()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="gdbnb-store")
        self._opened = True
        if self._rtc:
            await self.start_network(**self._rtc_options)
        return self

    async def start_network(self, **rtc_options: Any) -> None:
        """Join the GenosDB room, as ``open(rtc=True)`` does.

        For callers that must open the store first (the CLI: a locked store is reported before
        any port is bound or any relay contacted).
        """
        from .net.node import SyncNode

        if self.network is not None:
            raise RuntimeError("the network is already started")
        self.network = SyncNode(self, **rtc_options)
        await self.network.start()

    async def close(self) -> None:
        """Leave the room (bye), flush every pending write, close the store. Idempotent."""
        if self._closed:
            return
        if self.network is not None:
            try:
                await self.network.stop()
            except Exception:
                log.exception("error while leaving the room")
        await self._drain()
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.store is not None:
            self.store.close()
        self.events.emit("closed", None)

    async def __aenter__(self) -> "Database":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"database {self.room!r} is closed")

    # ------------------------------------------------------------------ the single apply path

    def _record(self, batch: ChangeBatch) -> None:
        """Acknowledge and publish one write that the graph has already applied.

        The write's journal is appended to the store's journal log (one ``os.write``: this is
        the acknowledgement), queued for the next SQLite checkpoint, then ONE ``change`` event
        is emitted. Huge remote merges skip the log and go straight to a checkpoint: nobody
        waits for their acknowledgement, and the peers would send them again after a crash.
        """
        journal = self.graph.take_journal()
        error: Exception | None = None
        if self.store is not None and journal:
            self._unsaved.append(journal)
            try:
                if batch.origin == "local" or len(journal.nodes) <= _INLINE_COMMIT_ROWS:
                    self._unsaved_seq = self.store.append(journal)
            except Exception as e:  # disk full, I/O error: the caller learns it wasn't acknowledged
                log.error("journal log append failed: %s", e)
                error = e
            self._schedule_checkpoint(len(journal.nodes) > _INLINE_COMMIT_ROWS)
        self.events.emit("change", batch)
        if error is not None:
            raise error

    def _schedule_checkpoint(self, now: bool = False) -> None:
        assert self._loop is not None
        if now and self._checkpoint_handle is not None:
            self._checkpoint_handle.cancel()
            self._checkpoint_handle = None
        if self._checkpoint_handle is None:
            self._checkpoint_handle = self._loop.call_later(0 if now else _CHECKPOINT_DELAY, self._checkpoint)

    def _checkpoint(self) -> None:
        """Move the logged journals into SQLite (one transaction for all of them)."""
        self._checkpoint_handle = None
        if not self._unsaved or self.store is None:
            return
        journal = merge_journals(self._unsaved)
        upto = self._unsaved_seq
        self._unsaved = []
        if self._inflight is None and len(journal.nodes) <= _INLINE_COMMIT_ROWS:
            try:
                self.store.checkpoint(journal, upto)
            except Exception as e:
                log.error("store checkpoint failed (the journal log keeps the writes): %s", e)
            return
        self._checkpoint_in_thread(journal, upto)

    def _checkpoint_in_thread(self, journal: Journal, upto: int) -> None:
        """Large checkpoints go to the store thread; later ones queue behind them (FIFO)."""
        assert self._loop is not None and self._executor is not None
        prev = self._inflight
        loop = self._loop
        store = self.store

        async def run() -> None:
            if prev is not None:
                await asyncio.shield(prev)
            try:
                await loop.run_in_executor(self._executor, store.checkpoint, journal, upto)
            except Exception as e:
                log.error("store checkpoint failed: %s", e)

        task = loop.create_task(run())
        self._inflight = task

        def clear(t: asyncio.Future[None]) -> None:
            if self._inflight is t:
                self._inflight = None

        task.add_done_callback(clear)

    async def _drain(self) -> None:
        """Wait until everything written so far is in SQLite."""
        while self._unsaved or self._inflight is not None:
            if self._checkpoint_handle is not None:
                self._checkpoint_handle.cancel()
                self._checkpoint_handle = None
            self._checkpoint()
            if self._inflight is not None:
                await asyncio.shield(self._inflight)

    async def flush(self) -> None:
        """Wait until everything written so far is checkpointed into SQLite.

        Not needed for durability (an acknowledged write is already in the journal log).
        """
        await self._drain()

    # ------------------------------------------------------------------ local writes
    #
    # A local write is acknowledged synchronously (one journal-log append), so each has a
    # ``*_nowait`` twin for code already on the database's loop thread (realtime callbacks,
    # bulk loaders); the async methods are what most callers use.

    def put_nowait(self, value: Any, id: str | None = None) -> str:
        """:meth:`put` without the coroutine: call it on the database's loop thread."""
        self._check_open()
        node, op, changes = self.graph.put(value, id)
        self._record(ChangeBatch(changes, "local", [op]))
        return node.id

    def link_nowait(self, source_id: str, target_id: str) -> bool:
        """:meth:`link` without the coroutine: call it on the database's loop thread."""
        self._check_open()
        op, changes = self.graph.link(source_id, target_id)
        if op is None:
            return False
        self._record(ChangeBatch(changes, "local", [op]))
        return True

    def remove_nowait(self, id: str) -> bool:
        """:meth:`remove` without the coroutine: call it on the database's loop thread."""
        self._check_open()
        op, changes = self.graph.remove(id)
        if op is None:
            return False
        self._record(ChangeBatch(changes, "local", [op]))
        return True

    async def put(self, value: Any, id: str | None = None) -> str:
        """Insert or replace a node's value (edges are kept); returns its id once acknowledged."""
        return self.put_nowait(value, id)

    async def link(self, source_id: str, target_id: str) -> bool:
        """Add an edge source → target. False (and nothing sent) when an end is missing."""
        return self.link_nowait(source_id, target_id)

    async def remove(self, id: str) -> bool:
        """Remove a node and every edge pointing to it. False when it does not exist."""
        return self.remove_nowait(id)

    async def clear(self) -> None:
        """Delete every node and reset the oplog and the global timestamp (local only)."""
        self._check_open()
        changes = self.graph.clear()
        self._record(ChangeBatch(changes, "local", [], kind="clear"))

    # ------------------------------------------------------------------ reads

    async def get(self, id: str, callback: Callable[[dict[str, Any] | None], Any] | None = None) -> Any:
        """The node record ``{id, value, edges, timestamp}`` or None.

        With a callback (GenosDB's reactive get): the callback gets the node now and after every
        change of it (None once removed); returns ``{"result": node, "unsubscribe": fn}``.
        """
        self._check_open()
        if not isinstance(id, str):
            raise ValidationError(f"node id must be a string, not {id!r}")
        node = self.graph.nodes.get(id)
        result = node.to_dict() if node is not None else None
        if callback is None:
            return result

        def on_change(batch: ChangeBatch) -> None:
            for c in batch.changes:
                if c.id == id:
                    _call(callback, c.node.to_dict() if c.node is not None else None)

        unsubscribe = self.events.on("change", on_change)
        _call(callback, result)
        return {"result": result, "unsubscribe": unsubscribe}

    async def map(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Query nodes: ``map(query=None, *, field, order, limit, after, before, callback)``.

        Also accepts GenosDB's call shape ``map({"query": …, "field": …, "$limit": …}, callback)``.
        Returns ``{"results": [...], "unsubscribe": fn | None}``.
        """
        self._check_open()
        from .core.live import LiveQuery
        from .core.query import run_map

        opts = _map_options(args, kwargs)
        callback = opts.pop("callback")
        realtime = opts.pop("realtime")
        nodes = run_map(self.graph.nodes, opts["query"], field=opts["field"], order=opts["order"],
                        limit=opts["limit"], after=opts["after"], before=opts["before"],
                        lookup=self.graph.lookup_index)
        results = [n.to_dict() for n in nodes]
        if callback is None or realtime is False:
            return {"results": results, "unsubscribe": None}
        live = LiveQuery(self.graph.nodes, opts["query"], field=opts["field"], order=opts["order"],
                         limit=opts["limit"], after=opts["after"], before=opts["before"])
        for ev in live.initial():
            _call(callback, ev)

        def on_change(batch: ChangeBatch) -> None:
            for ev in live.on_changes(batch.changes):
                _call(callback, ev)

        return {"results": results, "unsubscribe": self.events.on("change", on_change)}

    def use(self, middleware: Middleware) -> None:
        """Register a middleware for incoming peer operations: ``ops -> ops`` (sync or async).

        Middlewares run in registration order on every batch of remote operations (write
        batches and deltaSync windows); returning ``[]`` discards the batch.
        """
        if not callable(middleware):
            raise ValidationError("middleware must be callable")
        self._middleware.append(middleware)

    # ------------------------------------------------------------------ remote input (the sync session)

    async def apply_remote_ops(self, ops: list[dict[str, Any]], origin: str) -> ApplyResult:
        """Apply operations received from peer ``origin`` (after the middlewares)."""
        if self._closed:
            return ApplyResult()
        for mw in self._middleware:
            try:
                out = mw(list(ops))
                if inspect.isawaitable(out):
                    out = await out
            except Exception:
                log.exception("middleware failed; batch from %s dropped", origin)
                return ApplyResult()
            if not isinstance(out, list):
                log.warning("middleware returned %s, not a list; batch from %s dropped", type(out).__name__, origin)
                return ApplyResult()
            ops = out
        res = self.graph.apply_ops(ops)
        self._record(ChangeBatch(res.changes, origin, kind="ops"))
        return res

    async def merge_full_state(self, graph_data: Any, removals: Any, timestamp: Any, origin: str) -> ApplyResult:
        if self._closed:
            return ApplyResult()
        res = self.graph.merge_full_state(graph_data, removals, timestamp)
        self._record(ChangeBatch(res.changes, origin, kind="full_state"))
        return res

    # ------------------------------------------------------------------ introspection

    def stats(self) -> dict[str, Any]:
        g = self.graph
        return {
            "room": self.room,
            "nodes": len(g.nodes),
            "edges": sum(len(n.edges) for n in g.nodes.values()),
            "oplog": len(g.oplog),
            "oplog_capacity": g.oplog.capacity,
            "global_timestamp": g.global_ts.to_json() if g.global_ts else None,
            "store": str(self.store_path) if self.store is not None else None,
        }


def _call(callback: Callable[..., Any], *args: Any) -> None:
    """Run a user callback; a coroutine callback is scheduled; errors are logged, not raised."""
    try:
        out = callback(*args)
        if inspect.isawaitable(out):
            asyncio.ensure_future(out)
    except Exception:
        log.exception("callback failed")


def _map_options(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {"query": None, "field": None, "order": "asc", "limit": None, "after": None,
                            "before": None, "callback": None, "realtime": None}
    positional: list[Any] = []
    for a in args:
        if callable(a) and not isinstance(a, dict):
            opts["callback"] = a
        else:
            positional.append(a)
    if len(positional) > 1:
        raise ValidationError("map() takes one query or options object and one callback")
    if positional:
        first = positional[0]
        if isinstance(first, dict) and first and set(first) <= _MAP_OPTION_KEYS and (
            "query" in first or any(k.startswith("$") for k in first) or "field" in first or "realtime" in first
        ):
            for k, v in first.items():
                opts[k.lstrip("$")] = v
        else:
            opts["query"] = first
    for k, v in kwargs.items():
        key = k.lstrip("$")
        if key not in opts:
            raise ValidationError(f"map() got an unknown option {k!r}")
        opts[key] = v
    if opts["order"] not in ("asc", "desc"):
        raise ValidationError(f"order must be 'asc' or 'desc', not {opts['order']!r}")
    if opts["limit"] is not None and (isinstance(opts["limit"], bool) or not isinstance(opts["limit"], int) or opts["limit"] < 0):
        raise ValidationError(f"limit must be a non-negative integer, not {opts['limit']!r}")
    return opts


class _Opening:
    """What ``gdbnb.open()`` returns: awaitable, and usable as ``async with``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def __await__(self) -> Any:
        return self._db._open().__await__()

    async def __aenter__(self) -> Database:
        return await self._db._open()

    async def __aexit__(self, *exc: Any) -> None:
        await self._db.close()


def open(room: str, *, path: str | Path | None | bool = None, rtc: bool = False, **options: Any) -> _Opening:  # noqa: A001
    """Open (or create) the database of ``room``.

    ``path``: the SQLite store file (default: ``default_store_path(room)`` in the data
    directory); ``False`` or ``":memory:"`` keeps the graph in memory only.
    ``rtc=True`` joins the GenosDB room (see ``gdbnb.net.node.SyncNode`` for the options:
    ``relay_urls``, ``serve_relay``, ``password``, ``ice_servers``, ...).
    """
    return _Opening(Database(room, path=path, rtc=rtc, **options))
