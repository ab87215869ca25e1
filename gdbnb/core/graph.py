"""The graph and GenosDB's merge rules (sync-protocol.md §7.3-§7.5).

This is where every conflict is decided. All writes, local and remote, land here; the
Database wraps each call with persistence and change events. Nodes are treated as immutable:
a change replaces the Node object, so a Change can carry both the old and the new record.

Deliberate differences from the reference, for safety (issue 2):
* every incoming timestamp is capped at now + 2 h, not only upserts' (full-state nodes,
  removes, links and a message's own timestamp too);
* an op or node whose id is not a non-empty string or whose timestamp is not a pair of finite
  non-negative integers is rejected, never stored.
Where GenosSRV and browsers differ, this follows GenosSRV: a remote remove strips the edges
pointing to the removed node (configurable).
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import ValidationError
from .hlc import DRIFT_CAP_MS, HybridClock, Timestamp, parse_timestamp
from .node import MISSING, Node, copy_json_value
from .oplog import DEFAULT_OPLOG_SIZE, OpLog, entry_to_wire

__all__ = ["Graph", "Change", "ApplyResult", "Journal", "MAX_LOOKUP_INDEXES"]

#: how many value keys ``Graph.lookup_index`` indexes at most (each costs a dict per write)
MAX_LOOKUP_INDEXES = 8


@dataclass(slots=True)
class Change:
    """One node added, updated or removed. ``node`` is the new record, ``old`` the previous one."""

    action: str  # "added" | "updated" | "removed"
    id: str
    node: Node | None
    old: Node | None


@dataclass(slots=True)
class ApplyResult:
    changes: list[Change] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    #: A received full state lacked some of our nodes: answer with our own (§7.4).
    echo_full_state: bool = False


@dataclass(slots=True)
class Journal:
    """What changed since the last ``take_journal()``: exactly what the store has to write."""

    cleared: bool
    nodes: dict[str, Node | None]  # None: delete the row
    oplog_appended: list[dict[str, Any]]
    oplog_capacity: int
    global_ts: Timestamp | None
    clock: Timestamp

    def __bool__(self) -> bool:
        return self.cleared or bool(self.nodes) or bool(self.oplog_appended)


def _valid_id(x: Any) -> bool:
    return isinstance(x, str) and x != ""


#: Returned by the per-op appliers when the op is malformed (counted in ``rejected``).
_REJECTED: Any = object()


class Graph:
    def __init__(
        self,
        oplog_size: int = DEFAULT_OPLOG_SIZE,
        clock: HybridClock | None = None,
        strip_edges_on_remote_remove: bool = True,
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self.oplog = OpLog(oplog_size)
        self.clock = clock or HybridClock()
        self.global_ts: Timestamp | None = None
        self.strip_edges_on_remote_remove = strip_edges_on_remote_remove
        # target id -> ids of the nodes holding an edge to it (for edge stripping in O(degree))
        self._incoming: dict[str, set[str]] = {}
        # value key -> {string at that key -> ids}: lookup indexes for map(), built on demand
        self._lookups: dict[str, dict[str, dict[str, None]]] = {}
        self._unindexable: set[str] = set()
        self._dirty: dict[str, None] = {}
        self._appended: deque[dict[str, Any]] = deque(maxlen=oplog_size)
        self._cleared = False

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_snapshot(
        cls,
        nodes: Iterable[Node],
        oplog_entries: Iterable[dict[str, Any]],
        global_ts: Timestamp | None,
        clock_ts: Timestamp | None = None,
        *,
        oplog_size: int = DEFAULT_OPLOG_SIZE,
        clock: HybridClock | None = None,
        strip_edges_on_remote_remove: bool = True,
    ) -> "Graph":
        g = cls(oplog_size, clock, strip_edges_on_remote_remove)
        for n in nodes:
            g.nodes[n.id] = n
            g._index_add(n.id, n.edges)
        for e in oplog_entries:
            g.oplog.append(e)
        g.global_ts = global_ts
        g.clock.restore(clock_ts or global_ts)
        return g

    # ------------------------------------------------------------------ bookkeeping

    def _index_add(self, src: str, edges: Iterable[str]) -> None:
        for t in edges:
            s = self._incoming.get(t)
            if s is None:
                self._incoming[t] = {src}
            else:
                s.add(src)

    def _index_remove(self, src: str, edges: Iterable[str]) -> None:
        for t in edges:
            s = self._incoming.get(t)
            if s is not None:
                s.discard(src)
                if not s:
                    del self._incoming[t]

    # ------------------------------------------------------------------ lookup indexes

    def lookup_index(self, key: str) -> dict[str, dict[str, None]] | None:
        """For ``map()``: ids of the nodes whose value is an object with the string ``s`` at
        ``key``, by ``s``. Built on the first call for ``key``, then kept up to date by every
        write. None (the caller scans instead) once ``MAX_LOOKUP_INDEXES`` keys are indexed,
        or when ``key`` holds too few distinct strings for lookups to pay."""
        idx = self._lookups.get(key)
        if idx is None:
            if key in self._unindexable or len(self._lookups) >= MAX_LOOKUP_INDEXES:
                return None
            idx = {}
            for n in self.nodes.values():
                v = n.value
                if type(v) is dict:
                    x = v.get(key)
                    if type(x) is str:
                        ids = idx.get(x)
                        if ids is None:
                            idx[x] = {n.id: None}
                        else:
                            ids[n.id] = None
            if len(idx) * 8 < len(self.nodes):
                # few distinct strings (a "type" field): lookups would rarely find a single
                # candidate, so the index is not worth its memory and its cost on writes
                self._unindexable.add(key)
                return None
            self._lookups[key] = idx
        return idx

    def _relookup(self, node_id: str, old: Node | None, new: Node | None) -> None:
        ov = old.value if old is not None and type(old.value) is dict else None
        nv = new.value if new is not None and type(new.value) is dict else None
        for key, idx in self._lookups.items():
            a = ov.get(key) if ov is not None else None
            b = nv.get(key) if nv is not None else None
            if a == b and type(a) is type(b):
                continue
            if type(a) is str:
                ids = idx.get(a)
                if ids is not None:
                    ids.pop(node_id, None)
                    if not ids:
                        del idx[a]
            if type(b) is str:
                ids = idx.get(b)
                if ids is None:
                    idx[b] = {node_id: None}
                else:
                    ids[node_id] = None

    def _log(self, entry: dict[str, Any]) -> None:
        self.oplog.append(entry)
        self._appended.append(entry)

    def _set(self, node: Node) -> None:
        if self._lookups:
            self._relookup(node.id, self.nodes.get(node.id), node)
        self.nodes[node.id] = node
        self._dirty[node.id] = None

    def _delete(self, node_id: str, strip_edges: bool, changes: list[Change]) -> Node:
        old = self.nodes.pop(node_id)
        if self._lookups:
            self._relookup(node_id, old, None)
        self._dirty[node_id] = None
        self._index_remove(node_id, old.edges)
        changes.append(Change("removed", node_id, None, old))
        if strip_edges:
            for src in self._incoming.pop(node_id, ()):
                n = self.nodes.get(src)
                if n is not None and node_id in n.edges:
                    new = Node(n.id, n.value, [e for e in n.edges if e != node_id], n.timestamp)
                    self._set(new)
                    changes.append(Change("updated", src, new, n))
        return old

    def _raise_global(self, ts: Timestamp | None) -> None:
        if ts is not None and (self.global_ts is None or ts > self.global_ts):
            self.global_ts = ts

    def take_journal(self) -> Journal:
        j = Journal(
            cleared=self._cleared,
            nodes={i: self.nodes.get(i) for i in self._dirty},
            oplog_appended=list(self._appended),
            oplog_capacity=self.oplog.capacity,
            global_ts=self.global_ts,
            clock=self.clock.current(),
        )
        self._dirty = {}
        self._appended.clear()
        self._cleared = False
        return j

    # ------------------------------------------------------------------ local writes (§7.5)

    def put(self, value: Any, id: str | None = None) -> tuple[Node, dict[str, Any], list[Change]]:
        if id is None:
            id = str(uuid.uuid4())
        elif not _valid_id(id):
            raise ValidationError(f"node id must be a non-empty string, not {id!r}")
        value = copy_json_value(value)
        ts = self.clock.now()
        self.global_ts = ts
        old = self.nodes.get(id)
        node = Node(id, value, old.edges if old else [], ts)
        self._set(node)  # the edge list is shared with the old record: the index is unchanged
        self._log({"type": "upsert", "id": id, "timestamp": ts})
        op = {"type": "upsert", "id": id, "value": value, "timestamp": ts.to_json()}
        return node, op, [Change("updated" if old else "added", id, node, old)]

    def link(self, source_id: str, target_id: str) -> tuple[dict[str, Any] | None, list[Change]]:
        for x in (source_id, target_id):
            if not _valid_id(x):
                raise ValidationError(f"node id must be a non-empty string, not {x!r}")
        src = self.nodes.get(source_id)
        if src is None or target_id not in self.nodes:
            return None, []
        ts = self.clock.now()
        self.global_ts = ts
        changes: list[Change] = []
        if target_id not in src.edges:
            new = Node(src.id, src.value, src.edges + [target_id], ts)
            self._set(new)
            self._index_add(source_id, (target_id,))
            changes.append(Change("updated", source_id, new, src))
        self._log({"type": "link", "sourceId": source_id, "targetId": target_id, "timestamp": ts})
        op = {"type": "link", "sourceId": source_id, "targetId": target_id, "timestamp": ts.to_json()}
        return op, changes

    def remove(self, id: str) -> tuple[dict[str, Any] | None, list[Change]]:
        if not _valid_id(id):
            raise ValidationError(f"node id must be a non-empty string, not {id!r}")
        if id not in self.nodes:
            return None, []
        ts = self.clock.now()
        self.global_ts = ts
        changes: list[Change] = []
        old = self._delete(id, True, changes)
        self._log({"type": "remove", "id": id, "timestamp": ts})
        op: dict[str, Any] = {"type": "remove", "id": id}
        if old.value is not MISSING:
            op["value"] = old.value
        op["timestamp"] = ts.to_json()
        return op, changes

    def clear(self) -> list[Change]:
        changes = [Change("removed", i, None, n) for i, n in self.nodes.items()]
        self.nodes.clear()
        self._incoming.clear()
        self._lookups.clear()
        self._unindexable.clear()
        self.oplog.clear()
        self.global_ts = None
        self._dirty = {}
        self._appended.clear()
        self._cleared = True
        return changes

    # ------------------------------------------------------------------ remote operations (§7.3)

    def apply_ops(self, ops: Iterable[Any]) -> ApplyResult:
        """Apply a write batch or a deltaSync's operations, in order."""
        res = ApplyResult()
        newest: Timestamp | None = None
        now = self.clock.wall()
        for op in ops:
            if not isinstance(op, dict):
                res.rejected += 1
                continue
            kind = op.get("type")
            raw_ts = parse_timestamp(op.get("timestamp"))
            if kind == "upsert":
                nid = op.get("id")
                if not _valid_id(nid) or raw_ts is None:
                    res.rejected += 1
                    continue
                ts = self._apply_upsert(nid, op, raw_ts, now, res)
            elif kind == "remove":
                nid = op.get("id")
                if not _valid_id(nid) or raw_ts is None:
                    res.rejected += 1
                    continue
                ts = self._apply_remove(nid, raw_ts.capped(now), res)
            elif kind == "link":
                s, t = op.get("sourceId"), op.get("targetId")
                if not _valid_id(s) or not _valid_id(t) or raw_ts is None:
                    res.rejected += 1
                    continue
                ts = self._apply_link(s, t, op, raw_ts.capped(now), res)
            else:
                continue  # unknown or non-op types are skipped, like the reference
            if ts is _REJECTED:
                res.rejected += 1
            elif ts is not None:
                res.accepted.append(op)
                if newest is None or ts > newest:
                    newest = ts
        self._raise_global(newest)
        return res

    def _apply_upsert(self, nid: str, op: dict[str, Any], ts: Timestamp, now: int, res: ApplyResult) -> Any:
        local = self.nodes.get(nid)
        # cap first: tombstones are stored capped (removes are capped too), so the delete guard
        # has to compare capped values or a far-future removal would not block an older upsert
        ts = ts.capped(now)
        if local is None:
            tomb = self.oplog.tombstone(nid)
            if tomb is not None and tomb >= ts:
                return None  # the delete guard: a newer or equal removal wins
        value = op.get("value", MISSING)
        unconditional = False
        if isinstance(value, dict) and "priority" in value:
            unconditional = value["priority"] is True and nid.startswith("user:") and "role" in value
            value = {k: v for k, v in value.items() if k != "priority"}
        if local is not None and not unconditional and ts <= local.timestamp:
            return None  # ties keep the local version
        if value is not MISSING:
            try:
                value = copy_json_value(value)  # stored data shares nothing with the message
            except ValidationError:
                return _REJECTED
        node = Node(nid, value, local.edges if local else [], ts)
        self._set(node)
        self.clock.update(ts)
        self._log({"type": "upsert", "id": nid, "timestamp": ts})
        res.changes.append(Change("updated" if local else "added", nid, node, local))
        return ts

    def _apply_remove(self, nid: str, ts: Timestamp, res: ApplyResult) -> Timestamp | None:
        local = self.nodes.get(nid)
        if local is None or local.timestamp >= ts:
            return None  # not recorded: a peer that never had the node learns no tombstone
        self._delete(nid, self.strip_edges_on_remote_remove, res.changes)
        self.clock.update(ts)
        self._log({"type": "remove", "id": nid, "timestamp": ts})
        return ts

    def _apply_link(self, s: str, t: str, op: dict[str, Any], ts: Timestamp, res: ApplyResult) -> Any:
        src = self.nodes.get(s)
        if src is None or t not in self.nodes or src.timestamp >= ts:
            return None
        # stored as {type:"link", ...op}: "type" first, extra fields kept (copied) and re-served
        entry: dict[str, Any] = {"type": "link"}
        try:
            for k, v in op.items():
                if k != "type":
                    entry[k] = v if k == "timestamp" else copy_json_value(v)
        except ValidationError:
            return _REJECTED
        entry["timestamp"] = ts
        if t not in src.edges:
            new = Node(src.id, src.value, src.edges + [t], ts)
            self._set(new)
            self._index_add(s, (t,))
            res.changes.append(Change("updated", s, new, src))
        self.clock.update(ts)
        self._log(entry)
        return ts

    # ------------------------------------------------------------------ full state (§7.4)

    def merge_full_state(self, graph_data: Any, removals: Any, timestamp: Any) -> ApplyResult:
        res = ApplyResult()
        now = self.clock.wall()
        if not isinstance(graph_data, dict):
            res.rejected += graph_data is not None
            graph_data = {}
        tombs = self.oplog.tombstones()
        limit = now + DRIFT_CAP_MS
        nodes = self.nodes
        for nid, rec in graph_data.items():  # the hot loop of a big catch-up: kept lean
            ts = parse_timestamp(rec.get("timestamp")) if type(rec) is dict else None
            if ts is None or not _valid_id(nid):
                res.rejected += 1
                continue
            if ts[0] > limit:
                ts = Timestamp(limit, ts[1])  # the drift cap (capped())
            local = nodes.get(nid)
            mine = local.timestamp if local is not None else tombs.get(nid)
            if mine is not None and mine >= ts:
                continue
            edges = rec.get("edges")
            edges = list(dict.fromkeys(e for e in edges if _valid_id(e))) if edges and type(edges) is list else []
            value = rec.get("value", MISSING)
            if value is not MISSING:
                try:
                    value = copy_json_value(value)
                except ValidationError:
                    res.rejected += 1
                    continue
            node = Node(nid, value, edges, ts)
            if local is not None and local.edges:
                self._index_remove(nid, local.edges)
            if edges:
                self._index_add(nid, edges)
            self._set(node)
            self._log({"type": "upsert", "id": nid, "timestamp": ts})
            res.changes.append(Change("updated" if local else "added", nid, node, local))
            res.accepted.append(rec)
        for r in removals if isinstance(removals, list) else ():
            ts = parse_timestamp(r.get("timestamp")) if isinstance(r, dict) else None
            rid = r.get("id") if isinstance(r, dict) else None
            if not _valid_id(rid) or ts is None:
                res.rejected += 1
                continue
            ts = ts.capped(now)
            local = self.nodes.get(rid)
            if local is not None and local.timestamp < ts:
                self._delete(rid, False, res.changes)  # the reference strips no edges here
                self._log({"type": "remove", "id": rid, "timestamp": ts})
                res.accepted.append(r)
        res.echo_full_state = any(k not in graph_data for k in self.nodes)
        msg_ts = parse_timestamp(timestamp)
        if msg_ts is not None:
            msg_ts = msg_ts.capped(now)
            self.clock.update(msg_ts)
            self._raise_global(msg_ts)
        return res

    # ------------------------------------------------------------------ answering a sync (§7.2)

    def sync_answer_kind(self, remote_ts_json: Any) -> str | None:
        """``"full"``, ``"delta"`` or None (no answer), exactly as the reference chooses."""
        ts = parse_timestamp(remote_ts_json)
        oldest = self.oplog.oldest()
        if ts is None or (oldest is not None and ts < oldest["timestamp"]):
            return "full"
        if self.oplog:
            return "delta"
        return None

    def answer_sync(self, remote_ts_json: Any) -> dict[str, Any] | None:
        """The message answering a ``sync`` carrying ``remote_ts_json`` (§7.2), or None."""
        kind = self.sync_answer_kind(remote_ts_json)
        if kind == "full":
            return self.full_state_message()
        if kind == "delta":
            return self.delta_message()
        return None

    def sync_message(self) -> dict[str, Any]:
        return {"type": "sync", "timestamp": self.global_ts.to_json() if self.global_ts else None}

    def full_state_message(self) -> dict[str, Any]:
        return {
            "type": "fullStateSync",
            "graphData": {i: n.to_wire() for i, n in self.nodes.items()},
            "removals": [entry_to_wire(e) for e in self.oplog.removals()],
            "timestamp": self.global_ts.to_json() if self.global_ts else None,
        }

    def hydrated_window(self) -> list[dict[str, Any]]:
        """The whole oplog window, upserts carrying the node's current value (§5.5)."""
        ops: list[dict[str, Any]] = []
        for e in self.oplog:
            if e["type"] == "upsert":
                d: dict[str, Any] = {"type": "upsert", "id": e["id"], "timestamp": e["timestamp"].to_json()}
                n = self.nodes.get(e["id"])
                if n is not None and n.value is not MISSING:
                    d["value"] = n.value
                ops.append(d)
            else:
                ops.append(entry_to_wire(e))
        return ops

    def delta_message(self) -> dict[str, Any]:
        return {
            "type": "deltaSync",
            "operations": self.hydrated_window(),
            "timestamp": self.global_ts.to_json() if self.global_ts else None,
        }
