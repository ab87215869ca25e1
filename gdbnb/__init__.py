"""gdbnb: a persistent GenosDB peer for Python and Jupyter.

``db = await gdbnb.open(room, ...)`` (async) or ``db = gdbnb.connect(room, ...)`` (blocking).
"""

from __future__ import annotations

from .database import ChangeBatch, Database, open
from .errors import (
    ClosedError,
    GdbnbError,
    ProtocolError,
    QueryError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    ValidationError,
)
from .sync_api import SyncDatabase, connect

__version__ = "0.1.0"

__all__ = [
    "open",
    "connect",
    "Database",
    "SyncDatabase",
    "ChangeBatch",
    "GdbnbError",
    "ValidationError",
    "QueryError",
    "StoreError",
    "StoreCorruptError",
    "StoreLockedError",
    "ProtocolError",
    "ClosedError",
    "__version__",
]
