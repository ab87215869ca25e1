"""Node records ``{id, value, edges, timestamp}`` (sync-protocol.md §6.1) and JSON value checks."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ValidationError
from .hlc import Timestamp

__all__ = ["MISSING", "Node", "copy_json_value", "clone_value", "MAX_VALUE_DEPTH"]

#: Nesting allowed in a node value; deeper values are refused (local) or dropped (remote).
MAX_VALUE_DEPTH = 200


class _Missing:
    """The value of a node created from a hydrated delta entry without ``value`` (JS undefined)."""

    _instance: "_Missing | None" = None

    def __new__(cls) -> "_Missing":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class Node:
    """One graph node. ``edges`` holds target ids without duplicates, in insertion order."""

    __slots__ = ("id", "value", "edges", "timestamp")

    def __init__(self, id: str, value: Any, edges: list[str], timestamp: Timestamp) -> None:
        self.id = id
        self.value = value
        self.edges = edges
        self.timestamp = timestamp

    def to_dict(self) -> dict[str, Any]:
        """The public record: a fresh dict (``value`` is None when the node has none)."""
        return {
            "id": self.id,
            "value": None if self.value is MISSING else clone_value(self.value),
            "edges": list(self.edges),
            "timestamp": self.timestamp.to_json(),
        }

    def to_wire(self) -> dict[str, Any]:
        """The record as GenosDB puts it on the wire (``value`` dropped when undefined)."""
        d: dict[str, Any] = {"id": self.id}
        if self.value is not MISSING:
            d["value"] = self.value
        d["edges"] = self.edges
        d["timestamp"] = self.timestamp.to_json()
        return d

    def __repr__(self) -> str:
        return f"Node({self.id!r}, {self.value!r}, edges={self.edges!r}, ts={tuple(self.timestamp)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        return (self.id, self.value, self.edges, self.timestamp) == (
            other.id,
            other.value,
            other.edges,
            other.timestamp,
        )


def copy_json_value(value: Any, _depth: int = 0) -> Any:
    """A deep copy of a JSON-compatible value, or ValidationError naming what is wrong.

    Accepted: dict with str keys, list/tuple, str, int, finite float, bool, None. This runs on
    every local write, so scalars inside containers are handled inline (exact type checks
    first; subclasses such as numpy scalars take the slower general path).
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if _depth > MAX_VALUE_DEPTH:
        raise ValidationError(f"value nested deeper than {MAX_VALUE_DEPTH} levels")
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                if not isinstance(k, str):
                    raise ValidationError(f"value has a non-string key {k!r}; JSON object keys are strings")
                k = str(k)
            tv = type(v)
            if tv is str or tv is int or tv is bool or v is None or (tv is float and math.isfinite(v)):
                out[k] = v
            else:
                out[k] = copy_json_value(v, _depth + 1)
        return out
    if t is list or t is tuple:
        return [
            v if (type(v) is str or type(v) is int or v is None or (type(v) is float and math.isfinite(v)))
            else copy_json_value(v, _depth + 1)
            for v in value
        ]
    return _copy_general(value, _depth)


def _copy_general(value: Any, depth: int) -> Any:
    """The slow path: subclasses of the JSON types, non-finite floats, and errors."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"value contains a non-finite number ({value!r}), which JSON cannot carry")
        return float(value)
    if isinstance(value, dict):
        return copy_json_value(dict(value), depth)
    if isinstance(value, (list, tuple)):
        return copy_json_value(list(value), depth)
    raise ValidationError(f"value of type {type(value).__name__} is not JSON-serializable")


def clone_value(value: Any) -> Any:
    """A fast deep copy of an already valid JSON value (so callers cannot mutate stored data)."""
    if isinstance(value, dict):
        return {k: clone_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone_value(v) for v in value]
    return value
