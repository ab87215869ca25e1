"""The GenosDB ``syncGraph`` protocol as a sans-I/O state machine (sync-protocol.md §5, §7).

``SyncSession`` reads the Graph (never writes it) and turns events into *actions* for a driver
(``gdbnb.net.node.SyncNode``): messages to send and to whom, operations to apply, full states to
merge. Time is passed in (``now``), timers are exposed as ``next_deadline()`` + ``poll(now)``.
Nothing here raises on peer input: a message that breaks a rule is dropped with one log line.

Behaviour (GenosSRV-compatible where peers differ)
--------------------------------------------------
* **Join** (§7.1): ``sync`` with our globalTimestamp at +0, +1.5, +4, +9 s, the timestamp read
  at send time. Sent to the new peer only (a broadcast makes every peer answer every join), and
  the repeats stop once that peer answered with a delta or a complete full state, or while it
  is streaming a multi-part full state to us (§2.3 allows both; it spares big rooms a second
  full state).
* **Answers** (§7.2): exactly the reference choice (``Graph.sync_answer_kind``), sent to the
  requester only, once (GenosSRV repeats every answer 2.5 s later; on an ordered reliable
  channel the repeat adds nothing, and the join-time sync repeats cover lost first frames).
* **Echo** (§7.4): after merging a *complete* full state that lacked some of our nodes we send
  ours back to that peer (GenosSRV broadcasts it, twice).
* **Full-state budget**: a full state costs O(N) to serialize. Per peer, a full state already
  in flight, or finished less than ``max(3 s, its duration)`` ago, *covers* new full-state
  requests from that peer (they are dropped: the peer's sync or echo predates what we sent);
  after that, requests within ``max(10 s, 10 × duration)`` of the last one are deferred to the
  end of that cooldown and re-evaluated with the peer's latest ``sync``. A peer spamming
  ``sync null`` therefore gets at most one full state per cooldown, and we spend at most ~10 %
  of the time serializing for it. Deltas (≤ oplog window) are never rate limited.
* **Local writes** (§5.6): 16 ms trailing debounce (plus a 100 ms max wait, which the
  reference lacks, so a steady stream still flushes), broadcast.

Big rooms: nothing we send is over the 100-chunk limit
------------------------------------------------------
A GenosRTC message is at most 100 chunks of 16 369 bytes after zlib (1 636 900 bytes,
``MAX_MESSAGE_BYTES``); the reference throws on bigger sends (a fullStateSync of ≳ 29 000 small
nodes is never sent; a write burst of that size crashes GenosSRV). We split every outgoing
message kind into parts that each are a valid message on their own:

* **write batches** and **deltaSync**: the op list is cut into several arrays / several
  deltaSync messages. Receivers apply ops in order either way (§7.3), so parts are exact.
* **fullStateSync**: cut into several fullStateSync messages (``graphData`` partitioned; the
  ``removals`` and the real ``timestamp`` only in the last part, ``timestamp: null`` before).
  Each part is a valid §7.4 merge. Parts carry an extra field ``"gdbnbPart": {"transfer": id,
  "index": i, "last": bool}`` that reference peers ignore (unknown fields are ignored, §10.8).
  A single-part full state is byte-for-byte the reference message (no extra field).

Why fullStateSync parts and not deltaSync/upsert batches as the carrier of a big state:

* an upsert carries no edges, and a ``link`` is ignored unless its timestamp is strictly newer
  than the node's: restoring edges would mean inventing timestamps (and oplog entries) on the
  receiver; upserts also go through the priority rule and keep the receiver's edges, while a
  full-state record replaces the record whole. Only fullStateSync reproduces the holder's
  records exactly, edges included;
* a receiver raises its globalTimestamp to the newest *accepted* op of a batch, so a transfer
  cut in the middle would leave it claiming to be up to date (its next ``sync`` would get a
  delta, never the rest). With null timestamps until the last part, an interrupted transfer
  leaves the receiver's globalTimestamp untouched and its next ``sync`` asks again.

What each receiver does with parts:

* **gdbnb** reads ``gdbnbPart``: no echo until the last part, then echo only if it holds nodes
  missing from the *union* of the parts (exactly the single-message rule).
* **GenosDB (browser core, GenosSRV)** merges every part correctly, but from the second part on
  it holds nodes that the part lacks, so §7.4 makes it echo its own full state after parts
  2..K (GenosSRV twice). Expected cost: that echo holds every node received so far; above the
  limit (any K ≥ 2 receiver that was fresh ends above it after part 2) the reference's send
  throws "Message too large" and the echo is not sent (logged, not fatal: the W3 bench saw
  GenosSRV survive failed full-state sends). So K-1 (×2) wasted serializations on the
  receiver: ~0.1-0.3 s each at 30k-100k nodes. Echoes that do fit come back to us and are
  merged (no-ops) and covered by the budget above, so there is no echo ping-pong. To be
  confirmed by the interop run (``shared/interop``): parts 1..K applied, final node count N.

Sizes, measured on this machine (W1-shaped nodes, 257 B of JSON, ~54 B zlib each, see
``bench/catchup_bench.py`` and tests): up to ~26 000 nodes one fullStateSync; 100 000 nodes ->
4-5 parts; 1 000 000 nodes -> ~40 parts. A single node whose record alone exceeds the limit
cannot be sent by any GenosDB peer; it is skipped with a warning (the rest is sent).

Sizing serializes every item once with the stdlib C encoder (its text is within a few bytes
of ``JSON.stringify``'s) and checks the zlib size (level 1, never smaller than the transport's
level 6 in practice) only for parts whose JSON is over the limit; the driver may still report ``MessageTooLarge`` from the encoder, and the part is then
split in two and retried (``FullStateTransfer.retry_smaller``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence, Union

from ..core.graph import ApplyResult, Graph
from ..core.hlc import parse_timestamp
from ..core.node import MAX_VALUE_DEPTH, Node
from .jsjson import encode_utf8, js_dumps

__all__ = [
    "ACTION",
    "CHUNK_PAYLOAD",
    "MAX_CHUNKS",
    "MAX_MESSAGE_BYTES",
    "PART_FIELD",
    "SYNC_REPEATS",
    "WRITE_DEBOUNCE",
    "SyncLimits",
    "Send",
    "ApplyOps",
    "MergeFullState",
    "FullStateTransfer",
    "Action",
    "SyncSession",
    "split_ops",
]

log = logging.getLogger("gdbnb.sync")

ACTION = "syncGraph"
CHUNK_PAYLOAD = 16369
MAX_CHUNKS = 100
#: The most payload bytes (after compression) one GenosRTC message can carry.
MAX_MESSAGE_BYTES = CHUNK_PAYLOAD * MAX_CHUNKS
#: Extra field of the parts of a multi-part full state (ignored by reference peers).
PART_FIELD = "gdbnbPart"
#: Re-sends of ``sync`` after a join, in seconds (GenosSRV: +1.5, +4, +9).
SYNC_REPEATS = (1.5, 4.0, 9.0)
#: Trailing debounce of local write batches (§5.6) and our max wait.
WRITE_DEBOUNCE = 0.016
WRITE_MAX_WAIT = 0.1

#: Our parts: payload bound (after zlib) with a margin for sizing error, and a cap on raw JSON.
PART_BYTES = int(MAX_MESSAGE_BYTES * 0.92)
PART_RAW_BYTES = 8 * 1024 * 1024

_OP_TYPES = frozenset({"upsert", "remove", "link"})


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """Bounds on what a peer may send and on what we produce. Defaults fit GenosDB traffic."""

    #: elements of one syncGraph array (a reference write burst of 29k puts is one array)
    max_messages: int = 200_000
    #: operations of one deltaSync (the window is 200/1000; legacy peers sent the same)
    max_ops: int = 200_000
    #: nodes of one fullStateSync part
    max_nodes: int = 2_000_000
    max_removals: int = 200_000
    max_id_length: int = 65_536
    #: our parts: payload bound (after zlib) with a safety margin, and a cap on raw JSON
    #: (receivers inflate and parse a part at once; keep each step short)
    part_bytes: int = PART_BYTES
    part_raw_bytes: int = PART_RAW_BYTES
    #: full-state budget (see module docstring)
    full_cover_min: float = 3.0
    full_cooldown_min: float = 10.0
    full_cooldown_factor: float = 10.0


# ---------------------------------------------------------------------------------- actions


@dataclass(slots=True)
class Send:
    """Send ``message`` (a syncGraph array) to ``targets`` (None: every connected peer).

    ``nodes``/``ops`` count what it carries; ``size`` is its JSON size in bytes (before zlib)
    when it was measured for splitting, else 0.
    """

    message: list[dict[str, Any]]
    targets: tuple[str, ...] | None
    kind: str  # "sync" | "write" | "delta" | "full"
    nodes: int = 0
    ops: int = 0
    size: int = 0


@dataclass(slots=True)
class ApplyOps:
    """Apply ``ops`` from ``peer`` (``db.apply_remote_ops``). ``kind``: "write" or "delta"."""

    peer: str
    ops: list[dict[str, Any]]
    kind: str


@dataclass(slots=True)
class MergeFullState:
    """Merge a fullStateSync (or one part) from ``peer``; report the result with
    ``SyncSession.full_state_merged``."""

    peer: str
    graph_data: dict[str, Any]
    removals: list[Any]
    timestamp: Any
    #: (transfer id, index, last) of a gdbnb multi-part full state, else None
    part: tuple[str, int, bool] | None = None


# ---------------------------------------------------------------------------------- sizing


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(encode_utf8(text))


#: Sizing uses the stdlib C encoder: its text differs from ``JSON.stringify`` only in a few
#: number spellings (a byte or two each), far inside the safety margin of ``part_bytes``.
_fast_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False, default=str).encode


def _fits(text: str, limit: int) -> tuple[bool, int]:
    """Whether ``text`` goes out in at most ``limit`` payload bytes; and that size."""
    n = _utf8_len(text)
    if n <= limit:
        return True, n
    z = len(zlib.compress(encode_utf8(text), 1))
    return z <= limit, z


class _Packer:
    """Greedy packing of items into parts whose joined JSON stays under a raw byte budget.

    ``encode(items)`` returns ``(payload, text)``: the items as the JSON value they become in
    the message (a list of ops, a dict of node records) and its text *without* the enclosing
    brackets. A part's text is ``prefix + ",".join(texts) + suffix``, so every item is encoded
    once for sizing, and the payloads are reused to build the message.
    """

    #: a raw size that cannot compress under the limit: such an item is skipped unseen
    budget_hard = MAX_MESSAGE_BYTES * 64

    def __init__(self, items: Sequence[Any], encode: Callable[[Sequence[Any]], tuple[Any, str]], budget: int, group: int = 256) -> None:
        self.items = items
        self.encode = encode
        self.budget = budget
        self.group = group
        self.pos = 0
        self.oversize: list[Any] = []

    def done(self) -> bool:
        return self.pos >= len(self.items)

    def next_part(self, overhead: int) -> tuple[list[Any], list[Any], list[str], int]:
        """Items, their payloads, their texts, and the raw size of the next part."""
        items: list[Any] = []
        payloads: list[Any] = []
        texts: list[str] = []
        size = overhead
        group = self.group
        n = len(self.items)
        while self.pos < n:
            g = self.items[self.pos : self.pos + group]
            payload, t = self.encode(g)
            s = _utf8_len(t) + 1
            if size + s <= self.budget:
                items.extend(g)
                payloads.append(payload)
                texts.append(t)
                size += s
                self.pos += len(g)
                group = min(group * 2, 4096)
                continue
            if len(g) > 1:
                # as many items as should fit at this group's average size, minus 10 %
                group = max(1, min(len(g) - 1, int((self.budget - size) / (s / len(g)) * 0.9)))
                continue
            if items:
                break  # the next item starts the next part
            if overhead + s > self.budget_hard:
                self.oversize.append(g[0])
                self.pos += 1
                continue
            items.extend(g)
            payloads.append(payload)
            texts.append(t)
            size += s
            self.pos += 1
            break
        self.group = max(16, group)
        return items, payloads, texts, size


def _encode_ops(ops: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    lst = list(ops)
    return lst, _fast_dumps(lst)[1:-1]


def split_ops(
    ops: Sequence[dict[str, Any]],
    wrap: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    *,
    limit: int = PART_BYTES,
    raw_cap: int = PART_RAW_BYTES,
) -> list[tuple[list[dict[str, Any]], int]]:
    """Cut ``ops`` into messages under ``limit`` payload bytes; returns ``(message, raw size)``.

    ``wrap(part_ops)`` builds the message around a part (default: the write-batch array
    itself). Every op is kept, in order; an op too big for any message is dropped (logged).
    """
    if wrap is None:
        wrap = lambda part: part  # noqa: E731
    probe_text = _fast_dumps(wrap([]))
    if len(ops) <= 64:  # common case: a few writes, one message; measure it whole
        msg = wrap(list(ops))
        text = _fast_dumps(msg)
        ok, _ = _fits(text, limit)
        if ok and _utf8_len(text) <= raw_cap:
            return [(msg, _utf8_len(text))]
    items = list(ops)
    budget = _initial_budget(_encode_ops(items[:256])[1], limit, raw_cap)
    out: list[tuple[list[dict[str, Any]], int]] = []
    pending: list[list[dict[str, Any]]] = []
    packer = _Packer(items, _encode_ops, budget)
    i = probe_text.index("[]") + 1
    while pending or not packer.done():
        if pending:
            part = pending.pop(0)
            payloads, texts = [part], [_encode_ops(part)[1]]
        else:
            part, payloads, texts, _ = packer.next_part(len(probe_text))
            if not part:
                continue
        text = probe_text[:i] + ",".join(texts) + probe_text[i:]
        ok, z = _fits(text, limit)
        if not ok:
            if len(part) == 1:
                log.warning("an operation of %d bytes exceeds the %d-byte message limit; dropped", z, limit)
                continue
            packer.budget = max(limit, int(packer.budget * limit / z * 0.9))
            half = len(part) // 2
            pending[:0] = [part[:half], part[half:]]
            continue
        out.append((wrap(list(itertools.chain.from_iterable(payloads))), _utf8_len(text)))
    for o in packer.oversize:
        log.warning("an operation too large for any message was dropped (%s)", o.get("type"))
    return out


def _encode_nodes(nodes: Sequence[Node]) -> tuple[dict[str, Any], str]:
    d = {n.id: n.to_wire() for n in nodes}
    return d, _fast_dumps(d)[1:-1]


def _initial_budget(sample: str, limit: int, raw_cap: int) -> int:
    """Raw JSON bytes per part, from the zlib ratio of a sample (never below ``limit``)."""
    raw = encode_utf8(sample)
    if len(raw) < 1024:
        return min(raw_cap, limit * 4)
    ratio = len(zlib.compress(raw, 1)) / len(raw)
    return max(limit, min(raw_cap, int(limit * 0.9 / max(ratio, 0.01))))


# ---------------------------------------------------------------------------------- full state


class FullStateTransfer:
    """A full state for ``targets``, produced lazily part by part (iterate for ``Send``s).

    The node list is snapshotted when the transfer starts (Node objects are immutable), so
    the graph may change between parts. ``retry_smaller()`` after an encoder's
    ``MessageTooLarge`` re-splits the last part in two. Call ``SyncSession.transfer_done``
    when finished (also after a failure).
    """

    def __init__(self, graph: Graph, targets: tuple[str, ...], reason: str, limits: SyncLimits, started: float) -> None:
        self.targets = targets
        self.reason = reason  # "sync" | "echo"
        self.started = started
        self.id = uuid.uuid4().hex[:12]
        self.parts_sent = 0
        self.nodes_sent = 0
        self.bytes_sent = 0
        self.skipped = 0
        self._graph = graph
        self._limits = limits
        self._nodes: list[Node] = list(graph.nodes.values())
        self._removals = [dict(e, timestamp=e["timestamp"].to_json()) for e in graph.oplog.removals()]
        self._retry: list[list[Node]] = []
        self._last: tuple[list[Node], bool] | None = None
        self._packer: _Packer | None = None

    @property
    def node_count(self) -> int:
        return len(self._nodes)

    def _message(self, nodes: Sequence[Node], last: bool, index: int, single: bool, graph_data: dict[str, Any] | None = None) -> dict[str, Any]:
        g = self._graph
        msg: dict[str, Any] = {
            "type": "fullStateSync",
            "graphData": graph_data if graph_data is not None else {n.id: n.to_wire() for n in nodes},
            "removals": self._removals if last else [],
            "timestamp": (g.global_ts.to_json() if g.global_ts else None) if last else None,
        }
        if not single:
            msg[PART_FIELD] = {"transfer": self.id, "index": index, "last": last}
        return msg

    def __iter__(self) -> Iterator[Send]:
        limit = self._limits.part_bytes
        # the common case: everything in one reference-identical message
        if len(self._nodes) <= 2000:
            msg = self._message(self._nodes, True, 0, True)
            text = _fast_dumps([msg])
            if _fits(text, limit)[0]:
                self._last = (self._nodes, True)
                yield self._sent([msg], _utf8_len(text), len(self._nodes))
                if not self._retry:
                    return
                self._nodes = []
        budget = _initial_budget(_encode_nodes(self._nodes[:512])[1], limit, self._limits.part_raw_bytes)
        packer = _Packer(self._nodes, _encode_nodes, budget)
        overhead = _utf8_len(_fast_dumps(self._removals)) + 200
        index = 0
        pending: list[list[Node]] = []
        while True:
            payloads: list[dict[str, Any]] | None = None
            if self._retry:
                part = self._retry.pop(0)
            elif pending:
                part = pending.pop(0)
            elif not packer.done():
                part, payloads, texts, _ = packer.next_part(overhead)
                if not part:
                    continue
            else:
                break
            if payloads is None:
                payload, text = _encode_nodes(part)
                payloads, texts = [payload], [text]
            last = packer.done() and not self._retry and not pending
            graph_data: dict[str, Any] = {}
            for d in payloads:
                graph_data.update(d)
            msg = self._message(part, last, index, False, graph_data)
            head = _fast_dumps([dict(msg, graphData={})])
            i = head.index('"graphData":{}') + len('"graphData":{')
            ok, z = _fits(head[:i] + ",".join(texts) + head[i:], limit)
            if not ok:
                if len(part) == 1:
                    log.warning("node %r (%d bytes) is too large for any message; not sent", part[0].id, z)
                    self.skipped += 1
                    continue
                packer.budget = max(limit, int(packer.budget * limit / z * 0.9))
                half = len(part) // 2
                pending[:0] = [part[:half], part[half:]]
                continue
            self._last = (part, last)
            index += 1
            yield self._sent([msg], len(head) + sum(map(_utf8_len, texts)), len(part))
        self.skipped += len(packer.oversize)
        for n in packer.oversize:
            log.warning("node %r is too large for any message; not sent", n.id)

    def _sent(self, message: list[dict[str, Any]], size: int, nodes: int) -> Send:
        self.parts_sent += 1
        self.nodes_sent += nodes
        self.bytes_sent += size
        return Send(message, self.targets, "full", nodes=nodes, size=size)

    def retry_smaller(self) -> None:
        """The encoder refused the last part (too large): send it again as two halves."""
        if self._last is None:
            return
        part, _ = self._last
        self.parts_sent -= 1
        self.nodes_sent -= len(part)
        if len(part) > 1:
            half = len(part) // 2
            self._retry[:0] = [part[:half], part[half:]]
        else:
            self.skipped += 1
        self._last = None


#: What ``SyncSession`` methods return, in order.
Action = Union[Send, ApplyOps, MergeFullState, FullStateTransfer]


# ---------------------------------------------------------------------------------- validation


class _Drop(Exception):
    """A message breaks a rule; the text says which."""


def _check_id(x: Any, limits: SyncLimits, what: str) -> str:
    if not isinstance(x, str) or not x or len(x) > limits.max_id_length:
        raise _Drop(f"{what} is not a non-empty string of at most {limits.max_id_length} characters")
    return x


def _check_op(op: Any, limits: SyncLimits) -> dict[str, Any] | None:
    """A well-formed op, or None for an element to skip silently (unknown type)."""
    if not isinstance(op, dict):
        raise _Drop(f"operation is a {type(op).__name__}, not an object")
    t = op.get("type")
    if t not in _OP_TYPES:
        return None
    if t == "link":
        _check_id(op.get("sourceId"), limits, "link sourceId")
        _check_id(op.get("targetId"), limits, "link targetId")
    else:
        _check_id(op.get("id"), limits, f"{t} id")
    if parse_timestamp(op.get("timestamp")) is None:
        raise _Drop(f"{t} timestamp is not {{physical, logical}} non-negative safe integers")
    return op


def _json_safe(v: Any, depth: int = 0) -> Any:
    """A value decoded from msgpack made JSON-representable like a JS peer would hold it."""
    if depth > MAX_VALUE_DEPTH + 8:
        raise _Drop("value nested too deeply")
    if v is None or isinstance(v, (str, bool)):
        return v
    if isinstance(v, int):
        return v if abs(v) <= 2**53 - 1 else float(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {str(i): b for i, b in enumerate(bytes(v))}
    if isinstance(v, dict):
        return {k if isinstance(k, str) else _js_key(k): _json_safe(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x, depth + 1) for x in v]
    return None  # msgpack extension types, dates: no JSON form


def _js_key(k: Any) -> str:
    """``String(k)`` for a non-string msgpack map key (JS objects only have string keys)."""
    if isinstance(k, bool):
        return "true" if k else "false"
    if k is None:
        return "null"
    if isinstance(k, (int, float)):
        return js_dumps(_json_safe(k))
    return type(k).__name__


def _legacy_ops(raw: Any, limits: SyncLimits) -> list[Any]:
    """``deltaSync.operations`` in a legacy form (§5.7): bytes, or ``{"0":b0,…}``."""
    import msgpack

    if isinstance(raw, dict):
        if len(raw) > limits.part_raw_bytes:
            raise _Drop("legacy operations object too large")
        try:
            data = bytes(raw[str(i)] for i in range(len(raw)))
        except (KeyError, TypeError, ValueError):
            raise _Drop("legacy operations object is not a byte array") from None
    else:
        data = bytes(raw)
    try:
        d = zlib.decompressobj(47)  # zlib or gzip, auto-detected (pako.inflate does both)
        plain = d.decompress(data, limits.part_raw_bytes * 8)
        if d.unconsumed_tail:
            raise _Drop("legacy operations inflate to too many bytes")
        ops = msgpack.unpackb(plain, raw=False, strict_map_key=False, max_bin_len=len(plain), max_str_len=len(plain))
    except _Drop:
        raise
    except Exception as e:
        raise _Drop(f"legacy operations do not decode ({e.__class__.__name__})") from None
    if not isinstance(ops, list):
        raise _Drop("legacy operations are not an array")
    return _json_safe(ops)


def _decode_binary(data: bytes) -> Any:
    """A binary syncGraph frame: msgpack of the message array (legacy, §5.7)."""
    try:
        from . import legacy  # the shared decoder, when present

        decode = legacy.decode_legacy_sync
    except (ImportError, AttributeError):
        decode = None
    if decode is not None:
        try:
            return _json_safe(decode(data))
        except _Drop:
            raise
        except Exception as e:
            raise _Drop(f"binary frame does not decode ({e.__class__.__name__}: {e})") from None
    import msgpack

    try:
        return _json_safe(msgpack.unpackb(data, raw=False, strict_map_key=False))
    except _Drop:
        raise
    except Exception as e:
        raise _Drop(f"binary frame is not msgpack ({e.__class__.__name__})") from None


# ---------------------------------------------------------------------------------- session


@dataclass(slots=True)
class _Peer:
    joined: float
    repeats: list[float] = field(default_factory=list)
    answered: bool = False
    incoming: str | None = None  # transfer id of a multi-part full state being received
    incoming_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Budget:
    """Full-state bookkeeping of one peer (kept across reconnects)."""

    in_flight: bool = False
    covered_until: float = 0.0
    cooldown_until: float = 0.0
    deferred: str | None = None  # "sync" | "echo"
    last_sync: Any = None


class SyncSession:
    """The syncGraph protocol for one Graph and every peer of the data room.

    Driver contract: call ``peer_joined`` / ``peer_left``; feed every decoded syncGraph value to
    ``receive``; feed local write ops to ``local_ops``; call ``poll(now)`` at
    ``next_deadline()``; carry out the returned actions in order; report merges with
    ``full_state_merged`` and finished transfers with ``transfer_done``.
    """

    def __init__(self, graph: Graph, *, limits: SyncLimits = SyncLimits(), repeats: Sequence[float] = SYNC_REPEATS) -> None:
        self.graph = graph
        self.limits = limits
        self.repeat_delays = tuple(repeats)
        self._peers: dict[str, _Peer] = {}
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()
        self._outbox: list[dict[str, Any]] = []
        self._flush_at: float | None = None
        self._first_queued: float | None = None
        self.dropped = 0  # messages dropped for breaking a rule (for the status page)

    # ------------------------------------------------------------------ peers

    def peer_joined(self, peer: str, now: float) -> list[Any]:
        """A data channel opened: our ``sync``, then repeats from ``poll``."""
        self._peers[peer] = _Peer(now, [now + d for d in self.repeat_delays])
        return [self._sync_send(peer)]

    def peer_left(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def peers(self) -> list[str]:
        return list(self._peers)

    def _sync_send(self, peer: str) -> Send:
        msg = [self.graph.sync_message()]
        return Send(msg, (peer,), "sync")

    def _budget(self, peer: str) -> _Budget:
        b = self._budgets.get(peer)
        if b is None:
            b = self._budgets[peer] = _Budget()
            while len(self._budgets) > 4096:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(peer)
        return b

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        times = [t for p in self._peers.values() for t in p.repeats[:1]]
        times += [b.cooldown_until for b in self._budgets.values() if b.deferred and not b.in_flight]
        if self._flush_at is not None:
            times.append(self._flush_at)
        return min(times) if times else None

    def poll(self, now: float) -> list[Any]:
        out: list[Any] = []
        if self._flush_at is not None and now >= self._flush_at:
            out.extend(self.flush_writes())
        for peer, p in self._peers.items():
            while p.repeats and p.repeats[0] <= now:
                p.repeats.pop(0)
                if not p.answered and p.incoming is None:
                    out.append(self._sync_send(peer))
        for peer, b in list(self._budgets.items()):
            if b.deferred and not b.in_flight and now >= b.cooldown_until:
                reason, b.deferred = b.deferred, None
                if peer not in self._peers:
                    continue
                if reason == "sync" and self.graph.sync_answer_kind(b.last_sync) != "full":
                    out.extend(self._answer_sync(peer, b.last_sync, now))
                    continue
                out.extend(self._request_full(peer, reason, now))
        return out

    # ------------------------------------------------------------------ local writes

    def local_ops(self, ops: Sequence[dict[str, Any]], now: float) -> bool:
        """Queue local write ops; ``poll`` flushes them after the debounce.

        True when these ops start a new batch: the flush deadline then moved earlier (later
        writes only push it back), so a driver sleeping until ``next_deadline`` must wake.
        """
        if not ops:
            return False
        self._outbox.extend(ops)
        first = self._first_queued is None
        if first:
            self._first_queued = now
        self._flush_at = min(now + WRITE_DEBOUNCE, self._first_queued + WRITE_MAX_WAIT)
        return first

    def flush_writes(self) -> list[Send]:
        """Everything queued, as broadcast write batches under the message limit."""
        ops, self._outbox = self._outbox, []
        self._flush_at = self._first_queued = None
        if not ops:
            return []
        return [Send(m, None, "write", ops=len(m), size=n) for m, n in split_ops(ops, limit=self.limits.part_bytes, raw_cap=self.limits.part_raw_bytes)]

    # ------------------------------------------------------------------ input

    def receive(self, peer: str, value: Any, now: float) -> list[Any]:
        """One decoded syncGraph message from ``peer`` -> actions. Never raises."""
        try:
            return self._receive(peer, value, now)
        except _Drop as e:
            self.dropped += 1
            log.warning("dropped a syncGraph message from %s: %s", _short(peer), e)
        except Exception:  # a bug must not cost the connection; say so loudly once
            self.dropped += 1
            log.exception("dropped a syncGraph message from %s (internal error)", _short(peer))
        return []

    def _receive(self, peer: str, value: Any, now: float) -> list[Any]:
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = _decode_binary(bytes(value))
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise _Drop(f"payload is a {type(value).__name__}, not an array of messages")
        if len(value) > self.limits.max_messages:
            raise _Drop(f"{len(value)} messages in one array (limit {self.limits.max_messages})")
        # validate everything first: a bad message is dropped whole, nothing half-applied
        plan: list[tuple[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for m in value:
            if not isinstance(m, dict):
                raise _Drop(f"element is a {type(m).__name__}, not an object")
            t = m.get("type")
            if t in _OP_TYPES:
                op = _check_op(m, self.limits)
                if op is not None:
                    batch.append(op)
                continue
            if batch:
                plan.append(("ops", batch))
                batch = []
            if t == "sync":
                ts = m.get("timestamp")
                if ts is not None and parse_timestamp(ts) is None:
                    raise _Drop("sync timestamp is neither null nor {physical, logical}")
                plan.append(("sync", ts))
            elif t == "deltaSync":
                plan.append(("delta", self._check_delta(m)))
            elif t == "fullStateSync":
                plan.append(("full", self._check_full(peer, m)))
            else:
                log.debug("skipped a syncGraph element of type %r from %s", t, _short(peer))
        if batch:
            plan.append(("ops", batch))
        out: list[Any] = []
        for kind, arg in plan:
            if kind == "ops":
                out.append(ApplyOps(peer, arg, "write"))
            elif kind == "sync":
                out.extend(self._on_sync(peer, arg, now))
            elif kind == "delta":
                self._mark_answered(peer)
                out.append(ApplyOps(peer, arg, "delta"))
            else:
                out.append(arg)
        return out

    def _check_delta(self, m: dict[str, Any]) -> list[dict[str, Any]]:
        ops = m.get("operations")
        if isinstance(ops, (dict, bytes, bytearray)):
            ops = _legacy_ops(ops, self.limits)
        if not isinstance(ops, list):
            raise _Drop("deltaSync operations is not an array")
        if len(ops) > self.limits.max_ops:
            raise _Drop(f"deltaSync with {len(ops)} operations (limit {self.limits.max_ops})")
        return [op for op in (_check_op(o, self.limits) for o in ops) if op is not None]

    def _check_full(self, peer: str, m: dict[str, Any]) -> MergeFullState:
        gd = m.get("graphData")
        if not isinstance(gd, dict):
            raise _Drop("fullStateSync graphData is not an object")
        if len(gd) > self.limits.max_nodes:
            raise _Drop(f"fullStateSync with {len(gd)} nodes (limit {self.limits.max_nodes})")
        removals = m.get("removals", [])
        if removals is None:
            removals = []
        if not isinstance(removals, list):
            raise _Drop("fullStateSync removals is not an array")
        if len(removals) > self.limits.max_removals:
            raise _Drop(f"fullStateSync with {len(removals)} removals (limit {self.limits.max_removals})")
        ts = m.get("timestamp")
        if ts is not None and parse_timestamp(ts) is None:
            raise _Drop("fullStateSync timestamp is neither null nor {physical, logical}")
        for k, rec in gd.items():
            if len(k) > self.limits.max_id_length or not isinstance(rec, dict):
                raise _Drop("fullStateSync graphData holds a record that is not an object")
        part = _part_marker(m.get(PART_FIELD))
        return MergeFullState(peer, gd, removals, ts, part)

    def _mark_answered(self, peer: str) -> None:
        p = self._peers.get(peer)
        if p is not None:
            p.answered = True

    # ------------------------------------------------------------------ answering (§7.2)

    def _on_sync(self, peer: str, ts: Any, now: float) -> list[Any]:
        b = self._budget(peer)
        b.last_sync = ts
        if b.deferred == "sync" and self.graph.sync_answer_kind(ts) != "full":
            b.deferred = None  # superseded: the peer caught up meanwhile
        return self._answer_sync(peer, ts, now)

    def _answer_sync(self, peer: str, ts: Any, now: float) -> list[Any]:
        kind = self.graph.sync_answer_kind(ts)
        if kind is None:
            return []
        if kind == "delta":
            g = self.graph
            gts = g.global_ts.to_json() if g.global_ts else None
            wrap = lambda ops: [{"type": "deltaSync", "operations": ops, "timestamp": gts}]  # noqa: E731
            parts = split_ops(g.hydrated_window(), wrap, limit=self.limits.part_bytes, raw_cap=self.limits.part_raw_bytes)
            return [Send(m, (peer,), "delta", ops=len(m[0]["operations"]), size=n) for m, n in parts]
        return self._request_full(peer, "sync", now)

    def _request_full(self, peer: str, reason: str, now: float) -> list[Any]:
        b = self._budget(peer)
        if b.in_flight or now < b.covered_until:
            log.debug("full state for %s (%s) covered by the one just sent", _short(peer), reason)
            return []
        if now < b.cooldown_until:
            if b.deferred != "echo":
                b.deferred = reason
            return []
        b.in_flight = True
        b.deferred = None
        return [FullStateTransfer(self.graph, (peer,), reason, self.limits, now)]

    def transfer_done(self, transfer: FullStateTransfer, now: float) -> None:
        """The driver handed every part to the transport (or gave up)."""
        d = max(0.0, now - transfer.started)
        lim = self.limits
        for peer in transfer.targets:
            b = self._budget(peer)
            b.in_flight = False
            b.covered_until = now + max(lim.full_cover_min, d)
            b.cooldown_until = max(b.covered_until, now + max(lim.full_cooldown_min, lim.full_cooldown_factor * d))

    # ------------------------------------------------------------------ merging (§7.4)

    def full_state_merged(self, action: MergeFullState, result: ApplyResult, now: float) -> list[Any]:
        """After ``db.merge_full_state``: maybe echo our own full state to the sender."""
        peer = action.peer
        p = self._peers.get(peer)
        if action.part is None:
            if p is not None:
                p.answered, p.incoming = True, None
            echo = result.echo_full_state
        else:
            tid, _, last = action.part
            if p is None:
                return []
            if p.incoming != tid:
                p.incoming, p.incoming_ids = tid, set()
            p.incoming_ids.update(action.graph_data)
            if not last:
                return []
            ids, p.incoming, p.incoming_ids = p.incoming_ids, None, set()
            p.answered = True
            echo = any(k not in ids for k in self.graph.nodes)
        if not echo:
            return []
        return self._request_full(peer, "echo", now)


def _part_marker(x: Any) -> tuple[str, int, bool] | None:
    if not isinstance(x, dict):
        return None
    tid, index, last = x.get("transfer"), x.get("index"), x.get("last")
    if not isinstance(tid, str) or not tid or len(tid) > 64:
        return None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0 or not isinstance(last, bool):
        return None
    return tid, index, last


def _short(peer: str) -> str:
    return peer[:8] if isinstance(peer, str) else repr(peer)
