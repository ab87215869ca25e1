"""The write-ahead journal log: how a write is acknowledged in microseconds, not a transaction.

Each acknowledged write appends one record (the Journal of that write) to ``<store>.log`` with a
single ``os.write``; SQLite is brought up to date later, in one transaction for many writes
(a *checkpoint*), after which the log is truncated. On open, records newer than the store's
``log_seq`` are replayed into SQLite first, so nothing acknowledged is lost to a crash.

Record: ``<u32 length><u32 crc32><u64 seq>`` + one value in the store's row encoding
(store/codec.py): ``[cleared, [[id, node row | None], ...], [oplog entry, ...], capacity,
global_ts | None, clock]``. A torn or corrupt
tail (power loss mid-write) fails its CRC and ends the replay there; what follows is dropped.

Durability matches the store's: ``"process"`` survives ``kill -9`` (the bytes are in the OS page
cache once ``os.write`` returns); ``"full"`` also ``fdatasync``s each record (power loss).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from ..core.graph import Journal
from ..core.hlc import Timestamp
from ..core.node import MISSING, Node
from ..errors import StoreError
from .codec import RowPacker, node_row, unpack_row

__all__ = ["JournalLog", "merge_journals"]

_HEADER = struct.Struct("<IIQ")
_MAX_RECORD = 1 << 31


def merge_journals(journals: list[Journal]) -> Journal:
    """Several journals, oldest first, as one (later node states win; a clear resets)."""
    if len(journals) == 1:
        return journals[0]
    last = journals[-1]
    cleared = False
    nodes: dict[str, Node | None] = {}
    ops: deque[dict[str, Any]] = deque(maxlen=last.oplog_capacity)
    for j in journals:
        if j.cleared:
            cleared = True
            nodes = {}
            ops.clear()
        nodes.update(j.nodes)
        ops.extend(j.oplog_appended)
    return Journal(cleared, nodes, list(ops), last.oplog_capacity, last.global_ts, last.clock)


def _ts(ts: Timestamp | None) -> list[int] | None:
    return None if ts is None else [ts[0], ts[1]]


class JournalLog:
    """Append-only log of journals next to a store file. Used from one thread at a time."""

    def __init__(self, path: str | os.PathLike[str], *, durability: str = "process") -> None:
        self.path = Path(path)
        self._sync = durability == "full"
        self._packer = RowPacker()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as e:
            raise StoreError(f"cannot open the journal log {self.path}: {e}") from e
        self.last_seq = 0
        self.size = os.fstat(self._fd).st_size

    # ------------------------------------------------------------------ writing

    def encode(self, journal: Journal) -> bytes:
        rows = [[i, None if n is None else node_row(n)] for i, n in journal.nodes.items()]
        ops = [dict(e, timestamp=[e["timestamp"][0], e["timestamp"][1]]) for e in journal.oplog_appended]
        return self._packer.pack([journal.cleared, rows, ops, journal.oplog_capacity,
                                  _ts(journal.global_ts), _ts(journal.clock)])

    def append(self, journal: Journal, seq: int) -> None:
        """Write one record; when this returns the journal is acknowledged (see module doc)."""
        body = self.encode(journal)
        record = _HEADER.pack(len(body), zlib.crc32(body), seq) + body
        try:
            n = os.write(self._fd, record)
            while n < len(record):  # a short write to a regular file only happens on a full disk
                n += os.write(self._fd, record[n:])
            if self._sync:
                os.fdatasync(self._fd)
        except OSError as e:
            raise StoreError(f"cannot write the journal log {self.path}: {e}") from e
        self.last_seq = seq
        self.size += len(record)

    def truncate(self) -> None:
        """Forget every record (they are all in SQLite now)."""
        if self.size:
            os.ftruncate(self._fd, 0)
            self.size = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # ------------------------------------------------------------------ reading (on open)

    def records(self) -> Iterator[tuple[int, Journal]]:
        """Every intact record from the start; stops at the first torn or corrupt one."""
        with open(self.path, "rb") as f:
            data = f.read()
        pos = 0
        while pos + _HEADER.size <= len(data):
            length, crc, seq = _HEADER.unpack_from(data, pos)
            start = pos + _HEADER.size
            body = data[start:start + length]
            if length > _MAX_RECORD or len(body) < length or zlib.crc32(body) != crc:
                break
            yield seq, self._decode(body)
            pos = start + length
            self.last_seq = seq

    def _decode(self, body: bytes) -> Journal:
        cleared, rows, ops, capacity, g, c = unpack_row(body)
        nodes: dict[str, Node | None] = {}
        for node_id, r in rows:
            nodes[node_id] = None if r is None else Node(node_id, r[3] if len(r) > 3 else MISSING, r[2], Timestamp(r[0], r[1]))
        oplog = []
        for e in ops:
            p, l = e["timestamp"]
            if type(p) is not int or type(l) is not int:
                raise ValueError("bad oplog timestamp")
            e["timestamp"] = Timestamp(p, l)
            oplog.append(e)
        return Journal(
            bool(cleared),
            nodes,
            oplog,
            int(capacity),
            Timestamp(*g) if g is not None else None,
            Timestamp(*c),
        )
