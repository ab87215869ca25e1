"""Every exception gdbnb raises on purpose, in one module (like ``websockets.exceptions``)."""

from __future__ import annotations

__all__ = [
    "GdbnbError",
    "ValidationError",
    "QueryError",
    "StoreError",
    "StoreCorruptError",
    "StoreLockedError",
    "ProtocolError",
    "ClosedError",
]


class GdbnbError(Exception):
    """Base class of every gdbnb error."""


class ValidationError(GdbnbError, ValueError):
    """A value, id or operation that gdbnb refuses (nothing was changed)."""


class QueryError(GdbnbError, ValueError):
    """A ``map`` query that cannot be run: unknown operator, bad regex, wrong operand type."""


class StoreError(GdbnbError):
    """The durable store could not be opened, read or written."""


class StoreCorruptError(StoreError):
    """A store or import file is corrupt or not ours; the message names the file."""


class StoreLockedError(StoreError):
    """Another process holds the store open."""


class ProtocolError(GdbnbError):
    """A peer or relay sent something that does not follow the GenosDB wire protocol."""


class ClosedError(GdbnbError):
    """The database was used after ``close()``."""
