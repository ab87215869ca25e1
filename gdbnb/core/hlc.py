"""GenosDB's hybrid logical clock (sync-protocol.md §6.2).

The logical counter never resets when physical time advances: in this build it is a per-peer
Lamport counter. Timestamps order by physical, then logical; tuple comparison gives exactly that.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, NamedTuple

__all__ = ["Timestamp", "HybridClock", "DRIFT_CAP_MS", "wall_ms", "parse_timestamp"]

#: Incoming timestamps further than this ahead of our wall clock are capped (2 hours).
DRIFT_CAP_MS = 7_200_000

# JS Number.MAX_SAFE_INTEGER: bigger integers cannot round-trip through a JS peer.
_MAX_SAFE = 2**53 - 1


def wall_ms() -> int:
    """Milliseconds since the epoch, like JavaScript's ``Date.now()``."""
    return time.time_ns() // 1_000_000


class Timestamp(NamedTuple):
    """An HLC value. Tuple order is the protocol's total order."""

    physical: int
    logical: int

    def to_json(self) -> dict[str, int]:
        return {"physical": self.physical, "logical": self.logical}

    def capped(self, now_ms: int) -> "Timestamp":
        """This timestamp with its physical part capped at ``now + 2 h`` (logical kept)."""
        limit = now_ms + DRIFT_CAP_MS
        return Timestamp(limit, self.logical) if self.physical > limit else self


def _as_int(x: Any) -> int | None:
    # bool is an int subclass in Python but not a number in JS: refuse it.
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x if 0 <= x <= _MAX_SAFE else None
    if isinstance(x, float) and math.isfinite(x) and x >= 0 and x == int(x) and x <= _MAX_SAFE:
        return int(x)
    return None


def parse_timestamp(obj: Any) -> Timestamp | None:
    """``{"physical": int, "logical": int}`` -> Timestamp, or None when malformed.

    Both parts must be finite non-negative integers (floats with an integral value are accepted,
    since JS has only one number type).
    """
    if type(obj) is dict:  # the wire's common case, checked without helper calls
        p, l = obj.get("physical"), obj.get("logical")
        if type(p) is int and type(l) is int and 0 <= p <= _MAX_SAFE and 0 <= l <= _MAX_SAFE:
            return Timestamp(p, l)
    if isinstance(obj, Timestamp):
        # re-validate: a Timestamp built by hand is not trusted more than a wire dict
        if type(obj.physical) is int and type(obj.logical) is int and _as_int(obj.physical) is not None and _as_int(obj.logical) is not None:
            return obj
        return None
    if not isinstance(obj, dict):
        return None
    p = _as_int(obj.get("physical"))
    l = _as_int(obj.get("logical"))
    if p is None or l is None:
        return None
    return Timestamp(p, l)


class HybridClock:
    """``now()`` for local writes, ``update(remote)`` for accepted remote timestamps."""

    __slots__ = ("physical", "logical", "_wall")

    def __init__(self, start: Timestamp | None = None, wall: Callable[[], int] = wall_ms) -> None:
        self._wall = wall
        if start is None:
            self.physical, self.logical = wall(), 0
        else:
            self.physical, self.logical = max(start.physical, wall()), start.logical

    def now(self) -> Timestamp:
        self.physical = max(self.physical, self._wall())
        self.logical += 1
        return Timestamp(self.physical, self.logical)

    def update(self, remote: Timestamp) -> None:
        self.physical = max(self.physical, remote.physical)
        self.logical = max(self.logical, remote.logical) + 1

    def wall(self) -> int:
        return self._wall()

    def current(self) -> Timestamp:
        return Timestamp(self.physical, self.logical)

    def restore(self, ts: Timestamp | None) -> None:
        """Restore from a persisted globalTimestamp (GenosSRV does this on start)."""
        if ts is not None:
            self.physical = max(self.physical, ts.physical)
            self.logical = max(self.logical, ts.logical)
