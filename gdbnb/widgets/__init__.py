"""Notebook widgets (anywidget, ipywidgets-compatible) that follow a database live.

``RoomView(db)``, ``GraphView(db, query=None)``, ``QueryView(db, query=None)``; ``db`` is an async
``Database`` or a ``SyncDatabase``. Their JavaScript is vendored in ``static/`` (no CDN).
Imported lazily so that ``import gdbnb.widgets`` works without anywidget installed; using a
widget then raises ImportError naming the extra to install.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["RoomView", "GraphView", "QueryView"]

_WHERE = {"RoomView": ".room", "GraphView": ".graph", "QueryView": ".query"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'gdbnb.widgets' has no attribute {name!r}")
    try:
        module = import_module(_WHERE[name], __name__)
    except ImportError as e:
        if e.name in ("anywidget", "ipywidgets", "traitlets"):
            raise ImportError(f"gdbnb widgets need anywidget and ipywidgets: pip install 'gdbnb[jupyter]' ({e})") from e
        raise
    return getattr(module, name)
