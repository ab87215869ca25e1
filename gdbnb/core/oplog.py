"""The oplog window (sync-protocol.md §6.3): append order, fixed capacity, removes as tombstones."""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

from .hlc import Timestamp

__all__ = ["OpLog", "entry_to_wire", "DEFAULT_OPLOG_SIZE"]

#: GenosSRV's window; browsers use 200.
DEFAULT_OPLOG_SIZE = 1000


def entry_to_wire(entry: dict[str, Any]) -> dict[str, Any]:
    """An oplog entry as JSON (its Timestamp turned into ``{"physical", "logical"}``)."""
    out = dict(entry)
    out["timestamp"] = entry["timestamp"].to_json()
    return out


class OpLog:
    """Append-ordered window of ``capacity`` entries; the oldest fall out first.

    Keeps an index of the ``remove`` entries in the window so the delete guard (§7.3) and
    full-state merges (§7.4) look tombstones up in O(1).
    """

    __slots__ = ("capacity", "_entries", "_tombstones")

    def __init__(self, capacity: int = DEFAULT_OPLOG_SIZE, entries: list[dict[str, Any]] | None = None) -> None:
        if capacity < 1:
            raise ValueError("oplog capacity must be at least 1")
        self.capacity = capacity
        self._entries: deque[dict[str, Any]] = deque()
        self._tombstones: dict[str, list[Timestamp]] = {}
        for e in entries or ():
            self.append(e)

    def append(self, entry: dict[str, Any]) -> None:
        if len(self._entries) >= self.capacity:
            old = self._entries.popleft()
            if old["type"] == "remove":
                stamps = self._tombstones[old["id"]]
                stamps.remove(old["timestamp"])
                if not stamps:
                    del self._tombstones[old["id"]]
        self._entries.append(entry)
        if entry["type"] == "remove":
            self._tombstones.setdefault(entry["id"], []).append(entry["timestamp"])

    def tombstone(self, node_id: str) -> Timestamp | None:
        """Newest removal timestamp of ``node_id`` still in the window."""
        stamps = self._tombstones.get(node_id)
        return max(stamps) if stamps else None

    def tombstones(self) -> dict[str, Timestamp]:
        return {k: max(v) for k, v in self._tombstones.items()}

    def removals(self) -> list[dict[str, Any]]:
        """The remove entries of the window, in log order (a full state's ``removals``)."""
        return [e for e in self._entries if e["type"] == "remove"]

    def oldest(self) -> dict[str, Any] | None:
        return self._entries[0] if self._entries else None

    def clear(self) -> None:
        self._entries.clear()
        self._tombstones.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)
